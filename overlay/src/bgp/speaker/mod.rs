//! The speaker: peers' sessions, the RIB, route-target policy, route
//! reflection and graceful restart composed behind one sans-I/O interface.
//!
//! ```text
//!  driver ──connected/received/closed/poll_timers(now)──▶ Speaker ──▶ Output queue
//!          ◀── Connect / Send(bytes) / Close / Route(event) / EndOfRib ──┘
//! ```
//! Bytes in: framed and decoded per connection with the session's
//! negotiated context; decode errors become the NOTIFICATION the RFC
//! prescribes. UPDATEs go into the RIB; best-path changes go out as route
//! events for the tenants that import them (by route target) and into
//! each established peer's pending set (the Adj-RIB-Out), which is packed
//! into UPDATEs at most once per MRAI.
//!
//! Here: the configuration, the inputs and outputs, and the calls the
//! driver makes. Beside it: `neighbor` (per-neighbor sessions, collisions),
//! `update` (received UPDATEs into the RIB, route events), `export`
//! (Adj-RIB-Out, reflection rules, MRAI).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::fsm::{Event, Fsm, GracefulRestartConfig, SessionConfig, State};
use super::gr::{SelectionDeferral, selection_complete};
use super::packet::{
    DecodeError, ErrorAction, Family, Message, Origin, PathAttributes, RouteRefresh, VpnPrefix,
};
use super::policy::{Policy, TenantId, VrfConfig};
use super::rib::{LOCAL, Path, Rib, Source, SourceInfo};
use crate::packet::Label;

mod export;
mod neighbor;
mod show;
#[cfg(test)]
mod tests;
mod update;

pub use show::RibPath;

use export::{ExternalCache, ReflectedCache};
use neighbor::{Connection, Neighbor};
use update::imported;

/// A configured neighbor (BGP peer, RFC 4271 §1.1), by position (0-based)
/// in the speaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NeighborId(pub u16);

/// A TCP connection, numbered by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Settings of the local speaker.
#[derive(Debug, Clone)]
pub struct SpeakerConfig {
    /// Our AS (every peer is in it: iBGP).
    pub local_as: u32,
    /// Our BGP Identifier.
    pub router_id: Ipv4Addr,
    /// Next hop of the routes we originate (the node's tunnel address).
    pub next_hop: IpAddr,
    /// Hold time we offer.
    pub hold_time: u16,
    /// First connect retry interval (backs off to `connect_retry_max`).
    pub connect_retry: Duration,
    /// Connect retry back-off bound.
    pub connect_retry_max: Duration,
    /// Minimum interval between UPDATE bursts to one peer (RFC 4271 §9.2.1.1).
    pub mrai: Duration,
    /// Graceful restart, if offered.
    pub graceful_restart: Option<GracefulRestartConfig>,
    /// How long to wait for End-of-RIB from a peer that came back from a
    /// restart before dropping its remaining stale routes (RFC 4724 §4.2).
    pub stale_routes_time: Duration,
    /// After our own restart (`graceful_restart.restarting`), how long to
    /// hold every peer's initial UPDATEs and End-of-RIB while waiting for
    /// all peers to come up and send End-of-RIB: the Selection_Deferral_Timer
    /// of RFC 4724 §4.1. Keep it below the peers' stale-routes time, or a
    /// peer that never returns makes the others drop the routes they kept.
    pub selection_deferral_time: Duration,
    /// Route reflector cluster id: when set, we reflect routes between
    /// clients and non-clients (RFC 4456 §6). Usually our router id.
    pub cluster_id: Option<Ipv4Addr>,
    /// Families we offer.
    pub families: Vec<Family>,
}

/// One configured neighbor.
#[derive(Debug, Clone)]
pub struct NeighborConfig {
    /// The peer's address (connections from elsewhere are refused).
    pub address: IpAddr,
    /// The peer is a route reflection client of ours (RFC 4456).
    pub rr_client: bool,
    /// Only accept connections from this peer.
    pub passive: bool,
    /// The peer's AS; `None` (or our own AS): iBGP. Another AS makes the
    /// session eBGP (RFC 4271 §9.1.3, §5.1): our AS prepended, next hop
    /// self, no LOCAL_PREF or MED sent, routes with our AS refused.
    pub remote_as: Option<u32>,
}

/// Something the driver must do, or hear.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Open a TCP connection to the peer and report it with
    /// [`Speaker::connected`] or [`Speaker::connect_failed`].
    Connect {
        /// The peer.
        peer: NeighborId,
        /// Its address.
        address: IpAddr,
    },
    /// Write these bytes to the connection.
    Send {
        /// The connection.
        conn: ConnId,
        /// One or more whole messages.
        bytes: Vec<u8>,
    },
    /// Close the connection once what was sent before is written.
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// A tenant's best route to a prefix changed.
    Route(RouteEvent),
    /// A peer's session changed state.
    SessionState {
        /// The peer.
        peer: NeighborId,
        /// The new state.
        state: State,
    },
    /// A peer finished sending its routes of a family (RFC 4724 §2): routes
    /// not re-learned since its restart are gone.
    EndOfRib {
        /// The peer.
        peer: NeighborId,
        /// The family.
        family: Family,
    },
    /// An UPDATE with a fault that did not reset the session. RFC 7606 §6
    /// asks for a log naming the routes involved with the whole message,
    /// so the fault can be traced to the speaker that made it.
    MalformedUpdate {
        /// The peer.
        peer: NeighborId,
        /// What was wrong (the first fault of the strongest action).
        reason: DecodeError,
        /// What was done: treat-as-withdraw or attribute discard.
        action: ErrorAction,
        /// The routes the UPDATE announced.
        routes: Vec<VpnPrefix>,
        /// The whole message, header included.
        message: Vec<u8>,
    },
}

/// A change of a tenant's best route to a VPN prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEvent {
    /// The tenant that imports the route.
    pub tenant: TenantId,
    /// Route distinguisher and prefix.
    pub prefix: VpnPrefix,
    /// The route now, or None when it is gone from the tenant.
    pub route: Option<ImportedRoute>,
}

/// A learned route as the data plane needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedRoute {
    /// Where to tunnel packets (the advertiser's tunnel address).
    pub next_hop: IpAddr,
    /// The label to push.
    pub label: Label,
    /// All path attributes (route targets, originator, ...).
    pub attributes: Arc<PathAttributes>,
}

/// A neighbor's status for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborStatus {
    /// The peer's address.
    pub address: IpAddr,
    /// Session state.
    pub state: State,
    /// Its BGP Identifier once known.
    pub router_id: Option<Ipv4Addr>,
    /// Routes we hold from it.
    pub routes_received: usize,
    /// Routes of it kept stale across its restart.
    pub stale: bool,
}

/// Why the speaker refused an API call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpeakerError {
    /// The tenant has no VRF configured.
    #[error("tenant {0} has no VRF configured")]
    UnknownTenant(TenantId),
    /// Too many peers for the source numbering.
    #[error("too many peers")]
    TooManyPeers,
}

/// The BGP speaker. See the module documentation.
pub struct Speaker {
    config: SpeakerConfig,
    peers: Vec<Neighbor>,
    conns: HashMap<ConnId, Connection>,
    rib: Rib,
    policy: Policy,
    /// Our own routes: prefix -> (tenant, label).
    local: HashMap<VpnPrefix, (TenantId, Label)>,
    outputs: VecDeque<Output>,
    /// Reflected copies of attribute sets (ORIGINATOR_ID, CLUSTER_LIST
    /// added), keyed by the original's address; the original is kept in the
    /// value so that address cannot be reused while the entry lives.
    reflected: ReflectedCache,
    external_cache: ExternalCache,
    /// Route selection is deferred after our restart (RFC 4724 §4.1).
    deferral: SelectionDeferral,
}

impl Speaker {
    /// A speaker with no peers.
    pub fn new(config: SpeakerConfig) -> Speaker {
        Speaker {
            peers: Vec::new(),
            conns: HashMap::new(),
            rib: Rib::new(),
            policy: Policy::default(),
            local: HashMap::new(),
            outputs: VecDeque::new(),
            reflected: HashMap::new(),
            external_cache: HashMap::new(),
            deferral: SelectionDeferral::new(config_restarting(&config)),
            config,
        }
    }

    /// Whether we still hold updates after our restart (RFC 4724 §4.1).
    pub fn deferring(&self) -> bool {
        self.deferral.is_deferring()
    }

    /// The configuration.
    pub fn config(&self) -> &SpeakerConfig {
        &self.config
    }

    /// Adds a peer and starts its session.
    pub fn add_peer(
        &mut self,
        config: NeighborConfig,
        now: Instant,
    ) -> Result<NeighborId, SpeakerError> {
        let id =
            NeighborId(u16::try_from(self.peers.len()).map_err(|_| SpeakerError::TooManyPeers)?);
        if id.0 == u16::MAX {
            return Err(SpeakerError::TooManyPeers);
        }
        let session = SessionConfig {
            local_as: self.config.local_as,
            router_id: self.config.router_id,
            remote_as: config.remote_as.unwrap_or(self.config.local_as),
            hold_time: self.config.hold_time,
            families: self.config.families.clone(),
            graceful_restart: self.config.graceful_restart,
            next_hop_afi: match self.config.next_hop {
                IpAddr::V4(_) => super::packet::iana::afi::IPV4,
                IpAddr::V6(_) => super::packet::iana::afi::IPV6,
            },
            passive: config.passive,
            connect_retry: self.config.connect_retry,
            connect_retry_max: self.config.connect_retry_max,
        };
        self.peers.push(Neighbor {
            fsm: Fsm::new(&session),
            config,
            session,
            conn: None,
            rival: None,
            up: None,
            pending: HashSet::new(),
            sent: HashSet::new(),
            next_flush: None,
            last_flush: None,
            eor_due: Vec::new(),
            stale_until: None,
            stale_families: Vec::new(),
            eor_received: Vec::new(),
            router_id: None,
        });
        self.deferral
            .neighbor_added(now, self.config.selection_deferral_time);
        self.fsm_event(id, None, Event::ManualStart, now);
        Ok(id)
    }

    /// The peer configured with this address.
    pub fn peer_by_address(&self, address: IpAddr) -> Option<NeighborId> {
        self.peers
            .iter()
            .position(|p| p.config.address == address)
            .map(|i| NeighborId(i as u16))
    }

    /// Status of every peer.
    pub fn peer_status(&self) -> Vec<NeighborStatus> {
        self.peers
            .iter()
            .enumerate()
            .map(|(i, p)| NeighborStatus {
                address: p.config.address,
                state: p.fsm.state(),
                router_id: p.router_id,
                routes_received: self.rib.count_from(source_of(NeighborId(i as u16))),
                stale: p.stale_until.is_some(),
            })
            .collect()
    }

    /// The routes this node advertises: (VPN prefix, tenant, label).
    pub fn advertised(&self) -> impl Iterator<Item = (VpnPrefix, TenantId, Label)> + '_ {
        self.local.iter().map(|(p, (t, l))| (*p, *t, *l))
    }

    /// The RIB (for inspection).
    pub fn rib(&self) -> &Rib {
        &self.rib
    }

    /// Adds or replaces a VRF, and reports the routes it now imports.
    pub fn set_vrf(&mut self, vrf: VrfConfig) {
        let tenant = vrf.tenant;
        self.policy.set_vrf(vrf);
        let mut events = Vec::new();
        for (prefix, best) in self.rib.iter_best() {
            if best.source != LOCAL && self.policy.importers(&best.attrs).contains(&tenant) {
                events.push(Output::Route(RouteEvent {
                    tenant,
                    prefix: *prefix,
                    route: Some(imported(best)),
                }));
            }
        }
        self.outputs.extend(events);
    }

    /// Advertises `prefix` in `tenant` with `label`, under the VRF's RD and
    /// export route targets, next hop our tunnel address.
    pub fn advertise(
        &mut self,
        tenant: TenantId,
        prefix: IpNet,
        label: Label,
        now: Instant,
    ) -> Result<(), SpeakerError> {
        let vpn = self.local_vpn_prefix(tenant, prefix)?;
        let attrs = PathAttributes {
            origin: Origin::Igp,
            local_pref: Some(100),
            next_hop: Some(self.config.next_hop),
            ext_communities: self.policy.export_communities(tenant),
            ..PathAttributes::default()
        };
        let attrs = self.rib.intern(attrs);
        self.local.insert(vpn, (tenant, label));
        let path = Path {
            attrs,
            label,
            source: LOCAL,
            stale: false,
            since: now,
        };
        let change = self.rib.update(vpn, path, &self.source_info());
        if let Some(c) = change {
            self.best_changed(c, now);
        }
        self.flush_due(now);
        Ok(())
    }

    /// `prefix` under the RD of `tenant`'s VRF (RFC 4364 §4.2).
    fn local_vpn_prefix(&self, tenant: TenantId, prefix: IpNet) -> Result<VpnPrefix, SpeakerError> {
        let vrf = self
            .policy
            .vrf(tenant)
            .ok_or(SpeakerError::UnknownTenant(tenant))?;
        Ok(VpnPrefix::new(vrf.rd, prefix))
    }

    /// Withdraws a prefix advertised with [`Speaker::advertise`].
    pub fn withdraw(
        &mut self,
        tenant: TenantId,
        prefix: IpNet,
        now: Instant,
    ) -> Result<(), SpeakerError> {
        let vpn = self.local_vpn_prefix(tenant, prefix)?;
        self.local.remove(&vpn);
        if let Some(c) = self.rib.withdraw(&vpn, LOCAL, &self.source_info()) {
            self.best_changed(c, now);
        }
        self.flush_due(now);
        Ok(())
    }

    /// Asks a peer to send its routes again (RFC 2918), if it supports it.
    pub fn request_refresh(&mut self, peer: NeighborId, now: Instant) {
        let Some(p) = self.peers.get(usize::from(peer.0)) else {
            return;
        };
        let (Some(n), Some(conn)) = (&p.up, p.conn) else {
            return;
        };
        if !n.route_refresh {
            return;
        }
        let families = n.families.clone();
        let ctx = n.context;
        let mut bytes = Vec::new();
        for family in families {
            Message::RouteRefresh(RouteRefresh { family, subtype: 0 }).encode(&ctx, &mut bytes);
        }
        self.send(peer, conn, bytes, now);
    }

    /// Stops every session with a Cease NOTIFICATION (not a restart: peers
    /// drop our routes).
    pub fn shutdown(&mut self, now: Instant) {
        for i in 0..self.peers.len() {
            let id = NeighborId(i as u16);
            let conn = self.peers[i].conn;
            self.fsm_event(id, conn, Event::ManualStop, now);
        }
    }

    /// The next output to carry out.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The earliest timer deadline of any session, MRAI or restart timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        // While deferring, held flushes wait for the deferral, not the MRAI.
        let deferral_until = self.deferral.deadline();
        let flushing = !self.deferral.is_deferring();
        self.peers
            .iter()
            .flat_map(|p| {
                [
                    p.fsm.next_deadline(),
                    p.rival.as_ref().and_then(|r| r.0.next_deadline()),
                    p.stale_until,
                    p.next_flush.filter(|_| flushing),
                ]
            })
            .flatten()
            .chain(deferral_until)
            .min()
    }

    /// Runs every timer due at `now`.
    pub fn poll_timers(&mut self, now: Instant) {
        for i in 0..self.peers.len() {
            let id = NeighborId(i as u16);
            while let Some(ev) = self.peers[i].fsm.due_timer(now) {
                let conn = self.peers[i].conn;
                self.fsm_event(id, conn, ev, now);
            }
            while let Some(ev) = self.peers[i]
                .rival
                .as_mut()
                .and_then(|r| r.0.due_timer(now))
            {
                let conn = self.peers[i].rival.as_ref().map(|r| r.1);
                self.fsm_event(id, conn, ev, now);
            }
            if self.peers[i].stale_until.is_some_and(|t| t <= now) {
                // The peer did not come back, or sent no End-of-RIB, in time.
                self.peers[i].stale_until = None;
                self.peers[i].stale_families.clear();
                let changes = self
                    .rib
                    .remove_stale(source_of(id), None, &self.source_info());
                for c in changes {
                    self.best_changed(c, now);
                }
            }
        }
        if self.deferral.expired(now) {
            // Selection_Deferral_Timer expired (RFC 4724 §4.1).
            self.end_deferral(now);
        }
        self.flush_due(now);
    }

    /// Ends the deferral once every configured peer is up and each that
    /// does graceful restart has sent End-of-RIB for all its families
    /// (RFC 4724 §4.1): selection is complete, so updates can go.
    fn check_deferral(&mut self, now: Instant) {
        if !self.deferral.is_deferring() {
            return;
        }
        let complete = selection_complete(
            self.peers
                .iter()
                .map(|p| (p.up.as_ref(), p.eor_received.as_slice())),
        );
        if complete {
            self.end_deferral(now);
        }
    }

    /// Lets every peer's held initial dump and End-of-RIB go.
    fn end_deferral(&mut self, now: Instant) {
        self.deferral.end();
        for p in &mut self.peers {
            if p.up.is_some() {
                p.next_flush = Some(now);
            }
        }
    }

    fn source_info(&self) -> impl Fn(Source) -> SourceInfo + use<> {
        let mut ids: Vec<SourceInfo> = Vec::with_capacity(self.peers.len() + 1);
        ids.push(SourceInfo {
            router_id: self.config.router_id,
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ebgp: false,
        });
        for (i, p) in self.peers.iter().enumerate() {
            ids.push(SourceInfo {
                router_id: p.router_id.unwrap_or(Ipv4Addr::BROADCAST),
                address: p.config.address,
                ebgp: self.is_ebgp(i),
            });
        }
        move |s: Source| ids.get(usize::from(s)).copied().unwrap_or(ids[0])
    }
}

impl Speaker {
    /// Whether peer `i` is in another AS.
    pub(super) fn is_ebgp(&self, i: usize) -> bool {
        self.peers
            .get(i)
            .and_then(|p| p.config.remote_as)
            .is_some_and(|asn| asn != self.config.local_as)
    }
}

fn config_restarting(config: &SpeakerConfig) -> bool {
    config.graceful_restart.is_some_and(|gr| gr.restarting)
}

fn source_of(peer: NeighborId) -> Source {
    peer.0 + 1
}
