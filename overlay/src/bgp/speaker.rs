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

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::fsm::{
    Action, DownReason, Event, Fsm, GracefulRestartConfig, Negotiated, SessionConfig, State,
};
use super::packet::message::{encode_end_of_rib, frame_len};
use super::packet::{
    Family, Message, Origin, PathAttributes, RouteRefresh, SessionContext, Update, UpdateEncoder,
    VpnNlri, VpnPrefix,
};
use super::policy::{Policy, TenantId, VrfConfig};
use super::rib::{BestChange, LOCAL, Path, Rib, Source, SourceInfo};
use crate::packet::Label;

/// A configured peer, by position (0-based) in the speaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u16);

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

/// One configured neighbour.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// The peer's address (connections from elsewhere are refused).
    pub address: IpAddr,
    /// The peer is a route reflection client of ours (RFC 4456).
    pub rr_client: bool,
    /// Only accept connections from this peer.
    pub passive: bool,
}

/// Something the driver must do, or hear.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Open a TCP connection to the peer and report it with
    /// [`Speaker::connected`] or [`Speaker::connect_failed`].
    Connect {
        /// The peer.
        peer: PeerId,
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
        peer: PeerId,
        /// The new state.
        state: State,
    },
    /// A peer finished sending its routes of a family (RFC 4724 §2): routes
    /// not re-learned since its restart are gone.
    EndOfRib {
        /// The peer.
        peer: PeerId,
        /// The family.
        family: Family,
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

/// A peer's status for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
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

struct Peer {
    config: PeerConfig,
    session: SessionConfig,
    fsm: Fsm,
    conn: Option<ConnId>,
    /// A second connection racing the first (RFC 4271 §6.8).
    rival: Option<(Fsm, ConnId)>,
    /// Terms of the established session.
    up: Option<Negotiated>,
    /// Adj-RIB-Out: prefixes to (re)consider sending.
    pending: HashSet<VpnPrefix>,
    /// Prefixes this peer has from us (so withdrawals go only where needed).
    sent: HashSet<VpnPrefix>,
    /// When pending changes go out: as soon as the MRAI since the last
    /// burst allows (RFC 4271 §9.2.1.1).
    next_flush: Option<Instant>,
    /// When the last UPDATE burst went out.
    last_flush: Option<Instant>,
    /// Families that still owe End-of-RIB after the initial dump.
    eor_due: Vec<Family>,
    /// Stale routes wait for End-of-RIB or this deadline (RFC 4724 §4.2).
    stale_until: Option<Instant>,
    /// Families whose stale routes await End-of-RIB.
    stale_families: Vec<Family>,
    /// Families the peer sent End-of-RIB for in this session.
    eor_received: Vec<Family>,
    router_id: Option<Ipv4Addr>,
}

/// Framing state of one connection.
struct Connection {
    peer: PeerId,
    /// Bytes of an incomplete message.
    partial: Vec<u8>,
}

type ReflectedCache = HashMap<(usize, Ipv4Addr), (Arc<PathAttributes>, Arc<PathAttributes>)>;

/// The BGP speaker. See the module documentation.
pub struct Speaker {
    config: SpeakerConfig,
    peers: Vec<Peer>,
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
    /// Route selection is deferred after our restart (RFC 4724 §4.1).
    deferral: Deferral,
}

/// Whether UPDATEs to peers are held after our own restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deferral {
    /// Not restarting, or the deferral is over: updates flow.
    Off,
    /// Restarting; the timer starts with the first peer.
    Pending,
    /// Holding every peer's UPDATEs and End-of-RIB until this deadline
    /// or until every peer is up and sent its End-of-RIB.
    Until(Instant),
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
            deferral: if config_restarting(&config) {
                Deferral::Pending
            } else {
                Deferral::Off
            },
            config,
        }
    }

    /// Whether we still hold updates after our restart (RFC 4724 §4.1).
    pub fn deferring(&self) -> bool {
        self.deferral != Deferral::Off
    }

    /// The configuration.
    pub fn config(&self) -> &SpeakerConfig {
        &self.config
    }

    /// Adds a peer and starts its session.
    pub fn add_peer(&mut self, config: PeerConfig, now: Instant) -> Result<PeerId, SpeakerError> {
        let id = PeerId(u16::try_from(self.peers.len()).map_err(|_| SpeakerError::TooManyPeers)?);
        if id.0 == u16::MAX {
            return Err(SpeakerError::TooManyPeers);
        }
        let session = SessionConfig {
            local_as: self.config.local_as,
            router_id: self.config.router_id,
            remote_as: self.config.local_as,
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
        self.peers.push(Peer {
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
        if self.deferral == Deferral::Pending {
            self.deferral = Deferral::Until(now + self.config.selection_deferral_time);
        }
        self.fsm_event(id, None, Event::ManualStart, now);
        Ok(id)
    }

    /// The peer configured with this address.
    pub fn peer_by_address(&self, address: IpAddr) -> Option<PeerId> {
        self.peers
            .iter()
            .position(|p| p.config.address == address)
            .map(|i| PeerId(i as u16))
    }

    /// Status of every peer.
    pub fn peer_status(&self) -> Vec<PeerStatus> {
        self.peers
            .iter()
            .enumerate()
            .map(|(i, p)| PeerStatus {
                address: p.config.address,
                state: p.fsm.state(),
                router_id: p.router_id,
                routes_received: self.rib.count_from(source_of(PeerId(i as u16))),
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
    pub fn request_refresh(&mut self, peer: PeerId, now: Instant) {
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
            let id = PeerId(i as u16);
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
        let deferral_until = match self.deferral {
            Deferral::Until(t) => Some(t),
            Deferral::Off | Deferral::Pending => None,
        };
        let flushing = self.deferral == Deferral::Off;
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
            let id = PeerId(i as u16);
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
        if let Deferral::Until(t) = self.deferral {
            if t <= now {
                // Selection_Deferral_Timer expired (RFC 4724 §4.1).
                self.end_deferral(now);
            }
        }
        self.flush_due(now);
    }

    /// Ends the deferral once every configured peer is up and each that
    /// does graceful restart has sent End-of-RIB for all its families
    /// (RFC 4724 §4.1): selection is complete, so updates can go.
    fn check_deferral(&mut self, now: Instant) {
        if self.deferral == Deferral::Off {
            return;
        }
        let complete = self.peers.iter().all(|p| {
            p.up.as_ref().is_some_and(|n| {
                !n.graceful_restart || n.families.iter().all(|f| p.eor_received.contains(f))
            })
        });
        if complete {
            self.end_deferral(now);
        }
    }

    /// Lets every peer's held initial dump and End-of-RIB go.
    fn end_deferral(&mut self, now: Instant) {
        self.deferral = Deferral::Off;
        for p in &mut self.peers {
            if p.up.is_some() {
                p.next_flush = Some(now);
            }
        }
    }

    /// The driver's connection to `peer` is up (`outgoing`: we opened it).
    pub fn connected(&mut self, peer: PeerId, conn: ConnId, outgoing: bool, now: Instant) {
        let i = usize::from(peer.0);
        if i >= self.peers.len() {
            self.outputs.push_back(Output::Close { conn });
            return;
        }
        self.conns.insert(
            conn,
            Connection {
                peer,
                partial: Vec::new(),
            },
        );
        let state = self.peers[i].fsm.state();
        let has_rival = self.peers[i].rival.is_some();
        let gr_up = self.peers[i]
            .up
            .as_ref()
            .is_some_and(|n| n.graceful_restart);
        match state {
            State::Idle | State::Connect | State::Active => {
                if let Some(old) = self.peers[i].conn.replace(conn) {
                    if old != conn {
                        self.drop_conn(old);
                    }
                }
                let p = &mut self.peers[i];
                if state == State::Idle {
                    // Accept even while backing off: the peer is ready now.
                    let mut passive = p.session.clone();
                    passive.passive = true;
                    p.fsm
                        .handle(Event::ManualStart, now, &passive, &mut Vec::new());
                }
                self.fsm_event(peer, Some(conn), Event::TcpConnectionUp { outgoing }, now);
            }
            State::OpenSent | State::OpenConfirm if !has_rival => {
                let p = &mut self.peers[i];
                let mut fsm = Fsm::new(&p.session);
                let mut passive = p.session.clone();
                passive.passive = true;
                fsm.handle(Event::ManualStart, now, &passive, &mut Vec::new());
                p.rival = Some((fsm, conn));
                self.fsm_event(peer, Some(conn), Event::TcpConnectionUp { outgoing }, now);
            }
            State::Established if !outgoing && gr_up => {
                // RFC 4724 §4.2: a new connection from a restarting peer ends
                // the old session as if its TCP connection had failed.
                let old = self.peers[i].conn;
                self.fsm_event(peer, old, Event::TcpConnectionFails, now);
                if let Some(old) = old {
                    self.drop_conn(old);
                }
                self.connected(peer, conn, outgoing, now);
            }
            _ => self.drop_conn(conn),
        }
    }

    /// The driver could not connect to `peer`.
    pub fn connect_failed(&mut self, peer: PeerId, now: Instant) {
        if let Some(p) = self.peers.get(usize::from(peer.0)) {
            if p.conn.is_none() {
                self.fsm_event(peer, None, Event::TcpConnectionFails, now);
            }
        }
    }

    /// The connection closed or failed.
    pub fn closed(&mut self, conn: ConnId, now: Instant) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        self.fsm_event(c.peer, Some(conn), Event::TcpConnectionFails, now);
    }

    /// Bytes arrived on a connection: any number of whole or partial messages.
    pub fn received(&mut self, conn: ConnId, bytes: &[u8], now: Instant) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let peer = c.peer;
        let mut buf = std::mem::take(&mut c.partial);
        let data: &[u8] = if buf.is_empty() {
            bytes
        } else {
            buf.extend_from_slice(bytes);
            &buf
        };
        let mut at = 0;
        let mut failed = false;
        while at < data.len() {
            let rest = &data[at..];
            match frame_len(rest) {
                Ok(Some(len)) if len <= rest.len() => {
                    let ctx = self.context_of(peer, conn);
                    let event = match Message::decode(&rest[..len], &ctx) {
                        Ok(m) => message_event(m),
                        Err(e) => {
                            failed = true;
                            Event::MessageError(e)
                        }
                    };
                    at += len;
                    self.fsm_event(peer, Some(conn), event, now);
                }
                Ok(_) => break,
                Err(e) => {
                    failed = true;
                    self.fsm_event(peer, Some(conn), Event::MessageError(e), now);
                }
            }
            if failed || !self.conns.contains_key(&conn) {
                return;
            }
        }
        let tail = data[at..].to_vec();
        if let Some(c) = self.conns.get_mut(&conn) {
            c.partial = tail;
        }
        self.flush_due(now);
    }

    fn context_of(&self, peer: PeerId, conn: ConnId) -> SessionContext {
        let p = &self.peers[usize::from(peer.0)];
        let fsm = match &p.rival {
            Some((f, c)) if *c == conn => f,
            _ => &p.fsm,
        };
        fsm.negotiated().map(|n| n.context).unwrap_or_default()
    }

    fn drop_conn(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
        self.outputs.push_back(Output::Close { conn });
    }

    fn source_info(&self) -> impl Fn(Source) -> SourceInfo + use<> {
        let mut ids: Vec<SourceInfo> = Vec::with_capacity(self.peers.len() + 1);
        ids.push(SourceInfo {
            router_id: self.config.router_id,
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        });
        for p in &self.peers {
            ids.push(SourceInfo {
                router_id: p.router_id.unwrap_or(Ipv4Addr::BROADCAST),
                address: p.config.address,
            });
        }
        move |s: Source| ids.get(usize::from(s)).copied().unwrap_or(ids[0])
    }

    /// Feeds an event to the session owning `conn` (the main one when None)
    /// and carries out its actions.
    fn fsm_event(&mut self, peer: PeerId, conn: Option<ConnId>, event: Event, now: Instant) {
        let i = usize::from(peer.0);
        let mut actions = Vec::new();
        let is_rival = conn.is_some()
            && self.peers[i]
                .rival
                .as_ref()
                .is_some_and(|r| Some(r.1) == conn);
        let before = self.peers[i].fsm.state();
        {
            let p = &mut self.peers[i];
            if is_rival {
                if let Some((fsm, _)) = p.rival.as_mut() {
                    fsm.handle(event, now, &p.session, &mut actions);
                }
            } else {
                if conn.is_some() && conn != p.conn {
                    // An event for a connection this peer no longer uses.
                    return;
                }
                p.fsm.handle(event, now, &p.session, &mut actions);
            }
        }
        let target = if is_rival { conn } else { self.peers[i].conn };
        for action in actions {
            self.carry_out(peer, target, action, now);
        }
        if is_rival
            && self.peers[i]
                .rival
                .as_ref()
                .is_some_and(|r| r.0.state() == State::Idle)
        {
            self.peers[i].rival = None;
        }
        if !is_rival {
            let p = &mut self.peers[i];
            if p.fsm.state() == State::Idle {
                if let Some(c) = p.conn.take() {
                    self.conns.remove(&c);
                }
                // A surviving rival takes over the peer.
                if let Some((fsm, c)) = self.peers[i].rival.take() {
                    self.peers[i].fsm = fsm;
                    self.peers[i].conn = Some(c);
                }
            }
        }
        self.resolve_collision(peer, now);
        let after = self.peers[i].fsm.state();
        if after != before {
            self.outputs
                .push_back(Output::SessionState { peer, state: after });
        }
    }

    /// RFC 4271 §6.8: when two connections to one peer both know the peer's
    /// BGP Identifier, keep the one opened by the side with the higher id.
    fn resolve_collision(&mut self, peer: PeerId, now: Instant) {
        let i = usize::from(peer.0);
        let p = &self.peers[i];
        let Some((rival, rival_conn)) = &p.rival else {
            return;
        };
        let remote_id = p
            .fsm
            .negotiated()
            .or(rival.negotiated())
            .map(|n| n.remote_id);
        let Some(remote_id) = remote_id else { return };
        if p.fsm.state() == State::Established {
            let c = *rival_conn;
            self.fsm_event(peer, Some(c), Event::OpenCollisionDump, now);
            return;
        }
        // Keep the connection the higher identifier opened.
        let keep_outgoing = self.config.router_id > remote_id;
        let (main_conn, rival_conn) = (p.conn, *rival_conn);
        if p.fsm.is_outgoing() == keep_outgoing {
            self.fsm_event(peer, Some(rival_conn), Event::OpenCollisionDump, now);
        } else {
            self.fsm_event(peer, main_conn, Event::OpenCollisionDump, now);
        }
    }

    fn carry_out(&mut self, peer: PeerId, conn: Option<ConnId>, action: Action, now: Instant) {
        let i = usize::from(peer.0);
        match action {
            Action::Send(m) => {
                if let Some(conn) = conn {
                    let ctx = self.context_of(peer, conn);
                    let mut bytes = Vec::new();
                    m.encode(&ctx, &mut bytes);
                    self.send(peer, conn, bytes, now);
                }
            }
            Action::Connect => {
                let address = self.peers[i].config.address;
                self.outputs.push_back(Output::Connect { peer, address });
            }
            Action::Disconnect => {
                if let Some(conn) = conn {
                    self.drop_conn(conn);
                }
            }
            Action::Established(n) => self.session_up(peer, n, now),
            Action::Down(reason) => self.session_down(peer, reason, now),
            Action::Update(u) => self.apply_update(peer, u, now),
            Action::RouteRefresh(family) => {
                let p = &mut self.peers[i];
                if p.up.as_ref().is_some_and(|n| n.families.contains(&family)) {
                    for (prefix, _) in self.rib.iter_best() {
                        if prefix.family() == family {
                            p.pending.insert(*prefix);
                            // Forget it was sent so it is sent again.
                            p.sent.remove(prefix);
                        }
                    }
                    p.next_flush.get_or_insert(now);
                }
            }
        }
    }

    fn send(&mut self, peer: PeerId, conn: ConnId, bytes: Vec<u8>, now: Instant) {
        let p = &mut self.peers[usize::from(peer.0)];
        if p.conn == Some(conn) {
            p.fsm.message_sent(now);
        }
        self.outputs.push_back(Output::Send { conn, bytes });
    }

    fn session_up(&mut self, peer: PeerId, n: Negotiated, now: Instant) {
        let i = usize::from(peer.0);
        let source = source_of(peer);
        let p = &mut self.peers[i];
        p.router_id = Some(n.remote_id);
        // Stale routes of families the peer no longer preserves go now
        // (RFC 4724 §4.2); the others wait for its End-of-RIB.
        if p.stale_until.is_some() {
            let preserved: Vec<Family> = n
                .peer_graceful_restart
                .as_ref()
                .map(|gr| {
                    gr.families
                        .iter()
                        .filter(|f| f.forwarding_preserved)
                        .map(|f| f.family)
                        .collect()
                })
                .unwrap_or_default();
            let (keep, drop): (Vec<Family>, Vec<Family>) = p
                .stale_families
                .iter()
                .partition(|f| preserved.contains(f) && n.families.contains(f));
            p.stale_families = keep;
            p.stale_until =
                (!p.stale_families.is_empty()).then(|| now + self.config.stale_routes_time);
            for f in drop {
                let changes = self.rib.remove_stale(source, Some(f), &self.source_info());
                for c in changes {
                    self.best_changed(c, now);
                }
            }
        }
        let p = &mut self.peers[i];
        p.eor_due = n.families.clone();
        p.eor_received.clear();
        p.sent.clear();
        p.pending.clear();
        let families = n.families.clone();
        p.up = Some(n);
        // Initial dump: everything we would send this peer.
        let prefixes: Vec<VpnPrefix> = self
            .rib
            .iter_best()
            .filter(|(pfx, _)| families.contains(&pfx.family()))
            .map(|(pfx, _)| *pfx)
            .collect();
        let p = &mut self.peers[i];
        p.pending.extend(prefixes);
        p.next_flush = Some(now);
        // The Restart State bit is for the first session after our restart
        // (RFC 4724 §4.1); later OPENs to this peer go without it.
        if let Some(gr) = p.session.graceful_restart.as_mut() {
            gr.restarting = false;
        }
        // A peer without graceful restart sends no End-of-RIB to wait for.
        self.check_deferral(now);
    }

    fn session_down(&mut self, peer: PeerId, reason: DownReason, now: Instant) {
        let i = usize::from(peer.0);
        let source = source_of(peer);
        let p = &mut self.peers[i];
        let up = p.up.take();
        p.pending.clear();
        p.sent.clear();
        p.next_flush = None;
        p.last_flush = None;
        p.eor_due.clear();
        let helper = up
            .as_ref()
            .and_then(|n| n.graceful_restart.then_some(n))
            .and_then(|n| {
                n.peer_graceful_restart
                    .as_ref()
                    .map(|gr| (gr.restart_time, n.families.clone()))
            });
        match helper {
            Some((restart_time, families)) if reason.keeps_routes() => {
                // RFC 4724 §4.2: keep the routes, marked stale, for the
                // peer's restart time.
                self.rib.mark_stale(source);
                p.stale_families = families;
                p.stale_until = Some(now + Duration::from_secs(u64::from(restart_time)));
            }
            _ => {
                p.stale_until = None;
                p.stale_families.clear();
                let changes = self.rib.remove_source(source, &self.source_info());
                for c in changes {
                    self.best_changed(c, now);
                }
            }
        }
    }

    fn apply_update(&mut self, peer: PeerId, update: Box<Update>, now: Instant) {
        let i = usize::from(peer.0);
        let source = source_of(peer);
        let info = self.source_info();
        let Some(n) = self.peers[i].up.as_ref() else {
            return;
        };
        let families = n.families.clone();
        if let Some(family) = update.end_of_rib {
            if self.peers[i].stale_families.contains(&family) {
                self.peers[i].stale_families.retain(|f| *f != family);
                if self.peers[i].stale_families.is_empty() {
                    self.peers[i].stale_until = None;
                }
                for c in self.rib.remove_stale(source, Some(family), &info) {
                    self.best_changed(c, now);
                }
            }
            if !self.peers[i].eor_received.contains(&family) {
                self.peers[i].eor_received.push(family);
            }
            self.outputs.push_back(Output::EndOfRib { peer, family });
            self.check_deferral(now);
            return;
        }
        for w in &update.withdrawn {
            if let Some(c) = self.rib.withdraw(&w.prefix, source, &info) {
                self.best_changed(c, now);
            }
        }
        if update.announced.is_empty() {
            return;
        }
        let attrs = &update.attributes;
        // RFC 4456 §8: a route we originated or already reflected is a loop.
        let looped = attrs.originator_id == Some(self.config.router_id)
            || self
                .config
                .cluster_id
                .is_some_and(|id| attrs.cluster_list.contains(&id));
        if update.treat_as_withdraw.is_some() || looped || attrs.next_hop.is_none() {
            for a in &update.announced {
                if let Some(c) = self.rib.withdraw(&a.prefix, source, &info) {
                    self.best_changed(c, now);
                }
            }
            return;
        }
        let Update {
            announced,
            attributes,
            ..
        } = *update;
        let shared = self.rib.intern(attributes);
        for VpnNlri { prefix, label } in announced {
            if !families.contains(&prefix.family()) {
                continue;
            }
            let path = Path {
                attrs: shared.clone(),
                label,
                source,
                stale: false,
            };
            if let Some(c) = self.rib.update(prefix, path, &info) {
                self.best_changed(c, now);
            }
        }
    }

    /// Reports a best-path change to the tenants and queues it for peers.
    fn best_changed(&mut self, change: BestChange, now: Instant) {
        let BestChange { prefix, old, new } = change;
        // Route events: learned routes only (the agent knows its own).
        let learned = |p: &Option<Path>| p.as_ref().filter(|p| p.source != LOCAL).cloned();
        let (old_l, new_l) = (learned(&old), learned(&new));
        let same_route = match (&old_l, &new_l) {
            (Some(a), Some(b)) => a.label == b.label && Arc::ptr_eq(&a.attrs, &b.attrs),
            _ => false,
        };
        if !same_route {
            let new_tenants = new_l
                .as_ref()
                .map(|p| self.policy.importers(&p.attrs))
                .unwrap_or_default();
            if let Some(o) = &old_l {
                for t in self.policy.importers(&o.attrs) {
                    if !new_tenants.contains(&t) {
                        self.outputs.push_back(Output::Route(RouteEvent {
                            tenant: t,
                            prefix,
                            route: None,
                        }));
                    }
                }
            }
            if let Some(nw) = &new_l {
                for t in new_tenants {
                    self.outputs.push_back(Output::Route(RouteEvent {
                        tenant: t,
                        prefix,
                        route: Some(imported(nw)),
                    }));
                }
            }
        }
        // Adj-RIB-Out: peers that may get the new path or had the old one.
        let reflector = self.config.cluster_id.is_some();
        let mrai = self.config.mrai;
        let new_source = new.as_ref().map(|p| p.source);
        for (i, p) in self.peers.iter_mut().enumerate() {
            if p.up.is_none() {
                continue;
            }
            let may_get = new_source
                .is_some_and(|s| s == LOCAL || (reflector && s != source_of(PeerId(i as u16))));
            if may_get || p.sent.contains(&prefix) {
                p.pending.insert(prefix);
                let allowed = p.last_flush.map_or(now, |t| (t + mrai).max(now));
                p.next_flush.get_or_insert(allowed);
            }
        }
    }

    /// What peer `to` should have for a best path, if anything (RFC 4456 §6
    /// reflection rules; our own routes go to everyone).
    fn export_for(&mut self, to: usize, best: &Path) -> Option<Arc<PathAttributes>> {
        if best.source == LOCAL {
            return Some(best.attrs.clone());
        }
        let cluster_id = self.config.cluster_id?;
        let from = usize::from(best.source) - 1;
        if from == to {
            return None;
        }
        let from_client = self.peers.get(from).is_some_and(|p| p.config.rr_client);
        let to_client = self.peers[to].config.rr_client;
        // §6: from a client to everyone; from a non-client to clients only.
        if !from_client && !to_client {
            return None;
        }
        let originator = best
            .attrs
            .originator_id
            .or(self.peers.get(from).and_then(|p| p.router_id))?;
        // Do not send a route back to the router that originated it.
        if self.peers[to].router_id == Some(originator) {
            return None;
        }
        let key = (Arc::as_ptr(&best.attrs) as usize, originator);
        if let Some((_, a)) = self.reflected.get(&key) {
            return Some(a.clone());
        }
        let mut attrs = (*best.attrs).clone();
        attrs.originator_id = Some(originator);
        attrs.cluster_list.insert(0, cluster_id);
        let a = self.rib.intern(attrs);
        if self.reflected.len() > 4096 {
            self.reflected.clear();
        }
        self.reflected.insert(key, (best.attrs.clone(), a.clone()));
        Some(a)
    }

    /// Sends pending UPDATEs to every peer whose MRAI allows it.
    fn flush_due(&mut self, now: Instant) {
        if self.deferral != Deferral::Off {
            // RFC 4724 §4.1: a restarting speaker sends nothing until its
            // selection is complete; the pending sets keep growing.
            return;
        }
        for i in 0..self.peers.len() {
            let p = &self.peers[i];
            if p.next_flush.is_none_or(|t| t > now) || p.up.is_none() {
                continue;
            }
            self.flush_peer(i, now);
        }
    }

    fn flush_peer(&mut self, i: usize, now: Instant) {
        let Some(n) = self.peers[i].up.clone() else {
            return;
        };
        let Some(conn) = self.peers[i].conn else {
            return;
        };
        let pending: Vec<VpnPrefix> = self.peers[i].pending.drain().collect();
        self.peers[i].next_flush = None;
        let mut withdrawals = Vec::new();
        let mut announcements: Vec<(Arc<PathAttributes>, VpnNlri)> = Vec::new();
        for prefix in pending {
            let best = self.rib.best(&prefix).cloned();
            match best.and_then(|b| self.export_for(i, &b).map(|a| (a, b.label))) {
                Some((attrs, label)) => {
                    announcements.push((attrs, VpnNlri { prefix, label }));
                    self.peers[i].sent.insert(prefix);
                }
                None => {
                    if self.peers[i].sent.remove(&prefix) {
                        withdrawals.push(prefix);
                    }
                }
            }
        }
        // Group by attribute set and family so each UPDATE carries many routes.
        announcements.sort_by_key(|(a, nlri)| (Arc::as_ptr(a) as usize, nlri.prefix.family()));
        withdrawals.sort_by_key(|p| p.family());
        let mut enc = UpdateEncoder::new(n.context);
        let mut bytes = Vec::new();
        for prefix in &withdrawals {
            enc.withdraw(prefix, &mut bytes);
        }
        for (attrs, nlri) in &announcements {
            if let Some(nh) = attrs.next_hop {
                enc.announce(attrs, nh, nlri, &mut bytes);
            }
        }
        enc.flush(&mut bytes);
        // End-of-RIB after the initial dump (RFC 4724 §4.1 asks it of a
        // restarting speaker; we always send it, it costs nothing).
        for family in std::mem::take(&mut self.peers[i].eor_due) {
            encode_end_of_rib(family, &mut bytes);
        }
        if !bytes.is_empty() {
            self.send(PeerId(i as u16), conn, bytes, now);
            self.peers[i].last_flush = Some(now);
        }
    }
}

fn config_restarting(config: &SpeakerConfig) -> bool {
    config.graceful_restart.is_some_and(|gr| gr.restarting)
}

fn source_of(peer: PeerId) -> Source {
    peer.0 + 1
}

fn imported(p: &Path) -> ImportedRoute {
    ImportedRoute {
        next_hop: p
            .attrs
            .next_hop
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        label: p.label,
        attributes: p.attrs.clone(),
    }
}

fn message_event(m: Message) -> Event {
    match m {
        Message::Open(o) => Event::BgpOpen(o),
        Message::Update(u) => Event::UpdateMsg(u),
        Message::Notification(n) => Event::NotifMsg(n),
        Message::Keepalive => Event::KeepAliveMsg,
        Message::RouteRefresh(r) => Event::RouteRefreshMsg(r),
    }
}

#[cfg(test)]
mod tests {
    //! Speakers wired to each other in memory: no sockets, no sleeps; time
    //! moves only when a test advances it.
    use super::*;
    use crate::bgp::packet::RouteTarget;
    use crate::bgp::policy::VrfConfig;

    struct Lab {
        speakers: Vec<Speaker>,
        /// (speaker, conn) -> (other speaker, its conn).
        links: HashMap<(usize, ConnId), (usize, ConnId)>,
        next_conn: u64,
        now: Instant,
        events: Vec<Vec<RouteEvent>>,
        /// Connections each side has seen established messages on.
        sent_bytes: Vec<usize>,
        /// End-of-RIB markers each speaker received: (from peer, family).
        eors: Vec<Vec<(PeerId, Family)>>,
        /// Speakers no connection can reach (a host still down).
        cut: HashSet<usize>,
    }

    fn addr(i: usize) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8 + 1))
    }

    fn config(i: usize) -> SpeakerConfig {
        SpeakerConfig {
            local_as: 65000,
            router_id: Ipv4Addr::new(10, 0, 0, i as u8 + 1),
            next_hop: addr(i),
            hold_time: 9,
            connect_retry: Duration::from_secs(1),
            connect_retry_max: Duration::from_secs(4),
            mrai: Duration::ZERO,
            graceful_restart: Some(GracefulRestartConfig {
                restart_time: 60,
                restarting: false,
            }),
            stale_routes_time: Duration::from_secs(30),
            selection_deferral_time: Duration::from_secs(20),
            cluster_id: None,
            families: vec![Family::VPNV4, Family::VPNV6],
        }
    }

    fn tenant_vrf(i: usize) -> VrfConfig {
        let rt: RouteTarget = "65000:100".parse().unwrap();
        VrfConfig {
            tenant: 1,
            rd: super::super::packet::RouteDistinguisher::from_ipv4(
                Ipv4Addr::new(10, 0, 0, i as u8 + 1),
                1,
            ),
            import: vec![rt],
            export: vec![rt],
        }
    }

    impl Lab {
        /// Two speakers in one session: 0 connects, 1 waits (passive).
        fn pair() -> Lab {
            Lab::new(
                vec![config(0), config(1)],
                &[&[(1, false, false)], &[(0, false, true)]],
            )
        }

        /// Speakers with the given configs; `peers[i]` lists (j, rr_client, passive).
        fn new(configs: Vec<SpeakerConfig>, peers: &[&[(usize, bool, bool)]]) -> Lab {
            let now = Instant::now();
            let mut speakers: Vec<Speaker> = configs.into_iter().map(Speaker::new).collect();
            for (i, s) in speakers.iter_mut().enumerate() {
                s.set_vrf(tenant_vrf(i));
                for &(j, rr_client, passive) in peers[i] {
                    s.add_peer(
                        PeerConfig {
                            address: addr(j),
                            rr_client,
                            passive,
                        },
                        now,
                    )
                    .unwrap();
                }
            }
            let n = speakers.len();
            let mut lab = Lab {
                speakers,
                links: HashMap::new(),
                next_conn: 1,
                now,
                events: vec![Vec::new(); n],
                sent_bytes: vec![0; n],
                eors: vec![Vec::new(); n],
                cut: HashSet::new(),
            };
            lab.run();
            lab
        }

        fn run(&mut self) {
            loop {
                let mut progress = false;
                for i in 0..self.speakers.len() {
                    while let Some(o) = self.speakers[i].poll_output() {
                        progress = true;
                        self.deliver(i, o);
                    }
                }
                if !progress {
                    return;
                }
            }
        }

        fn deliver(&mut self, i: usize, o: Output) {
            let now = self.now;
            match o {
                Output::Connect { peer, address } => {
                    let Some(j) = (0..self.speakers.len()).find(|j| addr(*j) == address) else {
                        return;
                    };
                    let back = self.speakers[j].peer_by_address(addr(i));
                    let Some(back) =
                        back.filter(|_| !self.cut.contains(&i) && !self.cut.contains(&j))
                    else {
                        self.speakers[i].connect_failed(peer, now);
                        return;
                    };
                    let (ci, cj) = (ConnId(self.next_conn), ConnId(self.next_conn + 1));
                    self.next_conn += 2;
                    self.links.insert((i, ci), (j, cj));
                    self.links.insert((j, cj), (i, ci));
                    self.speakers[j].connected(back, cj, false, now);
                    self.speakers[i].connected(peer, ci, true, now);
                }
                Output::Send { conn, bytes } => {
                    self.sent_bytes[i] += bytes.len();
                    if let Some(&(j, cj)) = self.links.get(&(i, conn)) {
                        self.speakers[j].received(cj, &bytes, now);
                    }
                }
                Output::Close { conn } => {
                    if let Some((j, cj)) = self.links.remove(&(i, conn)) {
                        self.links.remove(&(j, cj));
                        self.speakers[j].closed(cj, now);
                    }
                }
                Output::Route(e) => self.events[i].push(e),
                Output::EndOfRib { peer, family } => self.eors[i].push((peer, family)),
                Output::SessionState { .. } => {}
            }
        }

        /// Advances time a second at a time so keepalives keep sessions up.
        fn advance_secs(&mut self, secs: u64) {
            for _ in 0..secs {
                self.advance(Duration::from_secs(1));
            }
        }

        fn advance(&mut self, d: Duration) {
            self.now += d;
            for s in &mut self.speakers {
                s.poll_timers(self.now);
            }
            self.run();
        }

        fn established(&self, i: usize) -> bool {
            self.speakers[i]
                .peer_status()
                .iter()
                .all(|p| p.state == State::Established)
        }

        fn advertise(&mut self, i: usize, prefix: &str, label: u32) {
            let now = self.now;
            self.speakers[i]
                .advertise(1, prefix.parse().unwrap(), Label::new(label).unwrap(), now)
                .unwrap();
            self.run();
        }

        /// Cuts every connection of speaker `i` as a crash would (no NOTIFICATION).
        fn crash(&mut self, i: usize) {
            let conns: Vec<(usize, ConnId)> = self
                .links
                .keys()
                .filter(|(s, _)| *s == i)
                .copied()
                .collect();
            for (s, c) in conns {
                if let Some((j, cj)) = self.links.remove(&(s, c)) {
                    self.links.remove(&(j, cj));
                    self.speakers[j].closed(cj, self.now);
                }
            }
            self.run();
        }

        fn take_events(&mut self, i: usize) -> Vec<RouteEvent> {
            std::mem::take(&mut self.events[i])
        }

        /// The one event speaker `i` saw since the last look, which must be
        /// a withdrawal.
        fn take_withdrawal(&mut self, i: usize) -> RouteEvent {
            let mut events = self.take_events(i);
            assert_eq!(events.len(), 1, "{events:?}");
            let event = events.remove(0);
            assert_eq!(event.route, None, "a withdrawal");
            event
        }
    }

    #[test]
    fn two_speakers_exchange_vpn_routes_in_memory() {
        let mut lab = Lab::pair();
        assert!(lab.established(0) && lab.established(1));
        lab.advertise(0, "10.1.0.0/24", 100);
        lab.advertise(0, "fd00:1::/64", 101);
        let events = lab.take_events(1);
        assert_eq!(events.len(), 2);
        let v4 = events
            .iter()
            .find(|e| e.prefix.family() == Family::VPNV4)
            .unwrap();
        assert_eq!(v4.prefix.to_string(), "10.0.0.1:1:10.1.0.0/24");
        let route = v4.route.as_ref().unwrap();
        assert_eq!((route.label.value(), route.next_hop), (100, addr(0)));
        // A VPNv6 route over IPv4 carries the IPv4 next hop through.
        let v6 = events
            .iter()
            .find(|e| e.prefix.family() == Family::VPNV6)
            .unwrap();
        assert_eq!(v6.route.as_ref().unwrap().next_hop, addr(0));

        lab.speakers[0]
            .withdraw(1, "10.1.0.0/24".parse().unwrap(), lab.now)
            .unwrap();
        lab.run();
        lab.take_withdrawal(1);
    }

    #[test]
    fn collision_keeps_one_session_on_both_sides() {
        // Both sides connect at once: RFC 4271 §6.8 keeps the connection
        // opened by the higher BGP Identifier (10.0.0.2).
        let mut lab = Lab::new(
            vec![config(0), config(1)],
            &[&[(1, false, false)], &[(0, false, false)]],
        );
        assert!(lab.established(0) && lab.established(1));
        assert_eq!(
            lab.links.len(),
            2,
            "one connection left, seen from both ends"
        );
        lab.advertise(1, "10.2.0.0/24", 200);
        assert_eq!(lab.take_events(0).len(), 1);
    }

    #[test]
    fn reflector_sets_originator_id_and_cluster_list() {
        let mut rr = config(0);
        rr.cluster_id = Some(Ipv4Addr::new(10, 255, 0, 1));
        let clients: &[(usize, bool, bool)] = &[(1, true, true), (2, true, true)];
        let mut lab = Lab::new(
            vec![rr, config(1), config(2)],
            &[clients, &[(0, false, false)], &[(0, false, false)]],
        );
        assert!(lab.established(0));
        lab.advertise(1, "10.1.0.0/24", 100);
        let events = lab.take_events(2);
        assert_eq!(events.len(), 1);
        let attrs = &events[0].route.as_ref().unwrap().attributes;
        assert_eq!(attrs.originator_id, Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(attrs.cluster_list, vec![Ipv4Addr::new(10, 255, 0, 1)]);
        assert_eq!(
            events[0].route.as_ref().unwrap().next_hop,
            addr(1),
            "next hop unchanged"
        );
        // The originator does not get its own route back.
        assert!(lab.take_events(1).is_empty());
    }

    #[test]
    fn routes_from_non_clients_reach_only_clients() {
        let mut rr = config(0);
        rr.cluster_id = Some(Ipv4Addr::new(10, 0, 0, 1));
        // 1 is a client; 2 and 3 are not.
        let at_rr: &[(usize, bool, bool)] = &[(1, true, true), (2, false, true), (3, false, true)];
        let to_rr: &[(usize, bool, bool)] = &[(0, false, false)];
        let mut lab = Lab::new(
            vec![rr, config(1), config(2), config(3)],
            &[at_rr, to_rr, to_rr, to_rr],
        );
        lab.advertise(2, "10.2.0.0/24", 200);
        assert_eq!(lab.take_events(1).len(), 1, "client gets it");
        assert!(
            lab.take_events(3).is_empty(),
            "non-client does not (RFC 4456 §6)"
        );
        lab.advertise(1, "10.1.0.0/24", 100);
        assert_eq!(
            lab.take_events(3).len(),
            1,
            "a client's route goes to non-clients"
        );
    }

    #[test]
    fn reflected_route_that_loops_back_is_ignored() {
        let mut s = Speaker::new(config(0));
        s.set_vrf(tenant_vrf(0));
        let now = Instant::now();
        let peer = s
            .add_peer(
                PeerConfig {
                    address: addr(1),
                    rr_client: false,
                    passive: true,
                },
                now,
            )
            .unwrap();
        s.peers[0].up = Some(
            crate::bgp::fsm::negotiate(&s.peers[0].session.clone(), &{
                let mut c = s.peers[0].session.clone();
                c.router_id = Ipv4Addr::new(10, 0, 0, 2);
                c.open()
            })
            .unwrap(),
        );
        let update = Update {
            announced: vec![VpnNlri {
                prefix: VpnPrefix::new(tenant_vrf(1).rd, "10.1.0.0/24".parse().unwrap()),
                label: Label::new(100).unwrap(),
            }],
            attributes: PathAttributes {
                next_hop: Some(addr(1)),
                originator_id: Some(Ipv4Addr::new(10, 0, 0, 1)),
                ext_communities: vec!["65000:100".parse::<RouteTarget>().unwrap().0],
                ..Default::default()
            },
            ..Default::default()
        };
        s.apply_update(peer, Box::new(update), now);
        assert!(
            s.rib().is_empty(),
            "ORIGINATOR_ID is ours: RFC 4456 §8 loop"
        );
    }

    #[test]
    fn helper_keeps_routes_stale_until_end_of_rib() {
        let mut lab = Lab::pair();
        lab.advertise(0, "10.1.0.0/24", 100);
        lab.advertise(0, "10.1.1.0/24", 101);
        assert_eq!(lab.take_events(1).len(), 2);

        // Speaker 0 dies without a NOTIFICATION: 1 keeps both routes, stale.
        lab.crash(0);
        assert!(
            lab.take_events(1).is_empty(),
            "no route removed while the peer restarts"
        );
        assert!(lab.speakers[1].peer_status()[0].stale);
        assert_eq!(lab.speakers[1].rib().len(), 2);

        // It comes back restarting with forwarding preserved and only one route.
        let mut restarted = config(0);
        restarted.graceful_restart = Some(GracefulRestartConfig {
            restart_time: 60,
            restarting: true,
        });
        let mut s = Speaker::new(restarted);
        s.set_vrf(tenant_vrf(0));
        s.advertise(
            1,
            "10.1.0.0/24".parse().unwrap(),
            Label::new(100).unwrap(),
            lab.now,
        )
        .unwrap();
        s.add_peer(
            PeerConfig {
                address: addr(1),
                rr_client: false,
                passive: false,
            },
            lab.now,
        )
        .unwrap();
        lab.speakers[0] = s;
        lab.run();
        assert!(lab.established(1));
        // End-of-RIB removed the route that was not re-advertised, and only it.
        let gone = lab.take_withdrawal(1);
        assert_eq!(gone.prefix.prefix.to_string(), "10.1.1.0/24");
        assert!(!lab.speakers[1].peer_status()[0].stale);
    }

    #[test]
    fn helper_drops_stale_routes_when_the_restart_time_runs_out() {
        let mut lab = Lab::pair();
        lab.advertise(0, "10.1.0.0/24", 100);
        lab.take_events(1);
        lab.crash(0);
        // Keep speaker 0 from coming back: it forgets its peer.
        lab.speakers[0] = Speaker::new(config(0));
        lab.advance(Duration::from_secs(59));
        assert!(lab.take_events(1).is_empty());
        lab.advance(Duration::from_secs(2));
        lab.take_withdrawal(1);
    }

    #[test]
    fn notification_ends_the_session_without_keeping_routes() {
        let mut lab = Lab::pair();
        lab.advertise(0, "10.1.0.0/24", 100);
        lab.take_events(1);
        let now = lab.now;
        lab.speakers[0].shutdown(now);
        lab.run();
        // A Cease is not a restart (RFC 4724 §4.2): the route goes at once.
        lab.take_withdrawal(1);
    }

    #[test]
    fn mrai_holds_later_changes_back() {
        let mut c0 = config(0);
        c0.mrai = Duration::from_secs(5);
        let mut lab = Lab::new(
            vec![c0, config(1)],
            &[&[(1, false, false)], &[(0, false, true)]],
        );
        // The initial dump (End-of-RIB) was the last burst; after an MRAI of
        // quiet, a change goes at once.
        lab.advance(Duration::from_secs(5));
        lab.advertise(0, "10.1.0.0/24", 100);
        assert_eq!(
            lab.take_events(1).len(),
            1,
            "a change after quiet goes at once"
        );
        lab.advertise(0, "10.1.1.0/24", 101);
        lab.advertise(0, "10.1.2.0/24", 102);
        assert!(
            lab.take_events(1).is_empty(),
            "within the MRAI nothing goes"
        );
        lab.advance(Duration::from_secs(5));
        assert_eq!(
            lab.take_events(1).len(),
            2,
            "both changes go together when it expires"
        );
    }

    #[test]
    fn route_refresh_resends_everything() {
        let mut lab = Lab::pair();
        lab.advertise(0, "10.1.0.0/24", 100);
        lab.take_events(1);
        let before = lab.sent_bytes[0];
        let now = lab.now;
        lab.speakers[1].request_refresh(PeerId(0), now);
        lab.run();
        assert!(
            lab.sent_bytes[0] > before,
            "speaker 0 answered the ROUTE-REFRESH"
        );
        assert!(lab.take_events(1).is_empty(), "same route, no change");
    }

    #[test]
    fn a_new_vrf_reports_routes_it_imports() {
        let mut lab = Lab::pair();
        lab.advertise(0, "10.1.0.0/24", 100);
        lab.take_events(1);
        let mut vrf = tenant_vrf(1);
        vrf.tenant = 7;
        lab.speakers[1].set_vrf(vrf);
        lab.run();
        let events = lab.take_events(1);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].tenant, 7);
    }

    /// A reflector (0) with clients 1 and 2 that exchanged routes through
    /// it; then the reflector crashes and comes back restarting, with its
    /// own route, while client 2 is still unreachable.
    fn restarted_reflector_with_one_client_back() -> Lab {
        let reflector = |restarting: bool| {
            let mut c = config(0);
            c.cluster_id = Some(Ipv4Addr::new(10, 0, 0, 1));
            c.graceful_restart = Some(GracefulRestartConfig {
                restart_time: 60,
                restarting,
            });
            c
        };
        let clients: &[(usize, bool, bool)] = &[(1, true, false), (2, true, false)];
        let to_rr: &[(usize, bool, bool)] = &[(0, false, false)];
        let mut lab = Lab::new(
            vec![reflector(false), config(1), config(2)],
            &[clients, to_rr, to_rr],
        );
        lab.advertise(1, "10.1.0.0/24", 100);
        lab.advertise(2, "10.2.0.0/24", 200);
        assert_eq!(lab.take_events(1).len(), 1, "client 1 has client 2's route");
        lab.take_events(2);

        lab.crash(0);
        lab.cut.insert(2);
        for e in &mut lab.eors {
            e.clear();
        }
        let mut rr = Speaker::new(reflector(true));
        rr.set_vrf(tenant_vrf(0));
        rr.advertise(
            1,
            "10.0.0.0/24".parse().unwrap(),
            Label::new(50).unwrap(),
            lab.now,
        )
        .unwrap();
        for &(j, rr_client, passive) in clients {
            rr.add_peer(
                PeerConfig {
                    address: addr(j),
                    rr_client,
                    passive,
                },
                lab.now,
            )
            .unwrap();
        }
        lab.speakers[0] = rr;
        lab.run();
        assert_eq!(
            lab.speakers[0].peer_status()[0].state,
            State::Established,
            "client 1 is back"
        );
        assert_eq!(lab.speakers[0].peer_status()[1].state, State::Active);
        lab
    }

    #[test]
    fn restarting_reflector_defers_updates_until_every_client_sent_end_of_rib() {
        let mut lab = restarted_reflector_with_one_client_back();
        assert_eq!(
            lab.eors[0].len(),
            2,
            "client 1 sent its table and End-of-RIB for both families"
        );
        assert!(lab.speakers[0].deferring());
        assert!(
            lab.eors[1].is_empty(),
            "no End-of-RIB for client 1 while client 2 is away"
        );
        assert!(
            lab.take_events(1).is_empty(),
            "no partial table: client 1 neither learns the reflector's route nor sweeps client 2's"
        );
        assert_eq!(lab.speakers[1].rib().len(), 2, "own route and client 2's");
        assert!(lab.speakers[1].peer_status()[0].stale);

        // Client 2 comes back and sends its End-of-RIB: selection is complete.
        lab.cut.remove(&2);
        lab.advance_secs(4);
        assert!(!lab.speakers[0].deferring());
        let mut families: Vec<Family> = lab.eors[1].iter().map(|(_, f)| *f).collect();
        families.sort_by_key(|f| format!("{f:?}"));
        let mut both = vec![Family::VPNV4, Family::VPNV6];
        both.sort_by_key(|f| format!("{f:?}"));
        assert_eq!(families, both, "client 1 got End-of-RIB once per family");
        let events = lab.take_events(1);
        assert!(
            events.iter().all(|e| e.route.is_some()),
            "client 2's route was never withdrawn from client 1: {events:?}"
        );
        assert!(
            events
                .iter()
                .any(|e| e.prefix.prefix.to_string() == "10.0.0.0/24"),
            "the reflector's own route arrived"
        );
        assert_eq!(lab.speakers[1].rib().len(), 3);
        assert!(!lab.speakers[1].peer_status()[0].stale);
    }

    #[test]
    fn selection_deferral_timer_releases_updates_when_a_client_never_returns() {
        let mut lab = restarted_reflector_with_one_client_back();
        lab.advance_secs(19);
        assert!(lab.eors[1].is_empty(), "still deferring before the timer");
        assert!(lab.take_events(1).is_empty());
        lab.advance_secs(2);
        assert!(!lab.speakers[0].deferring());
        assert_eq!(lab.eors[1].len(), 2, "End-of-RIB once the timer ran out");
        let events = lab.take_events(1);
        let withdrawn: Vec<String> = events
            .iter()
            .filter(|e| e.route.is_none())
            .map(|e| e.prefix.prefix.to_string())
            .collect();
        assert_eq!(
            withdrawn,
            vec!["10.2.0.0/24"],
            "only then does client 1 sweep the absent client's route"
        );
    }

    #[test]
    fn a_speaker_that_is_not_restarting_sends_its_table_at_once() {
        let lab = Lab::pair();
        assert!(!lab.speakers[0].deferring());
        assert_eq!(lab.eors[1].len(), 2, "End-of-RIB right after the dump");
    }
}
