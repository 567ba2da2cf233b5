//! A Pisek BGP speaker for the BGP interop tests (`tests/bgp_gobgp.rs`,
//! `tests/bgp_bird.rs`, `tests/bgp_malformed.rs`): unique loopback
//! addresses, test timers, and the agent's speaker in a runtime of its own,
//! driven from a sync test. The peers it meets are in [`crate::gobgpd`],
//! [`crate::bird`] and [`crate::raw_peer`].

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use pisek_agent::control::driver::{Bgp, BgpConfig, BgpHandle, RouteEvent};
use pisek_overlay::bgp::fsm::GracefulRestartConfig;
use pisek_overlay::bgp::packet::{Family, RouteDistinguisher, RouteTarget};
use pisek_overlay::bgp::policy::{TenantId, VrfConfig};
use pisek_overlay::bgp::speaker::{NeighborConfig, SpeakerConfig};
use tokio::runtime::Runtime;

/// The AS of every speaker in the interop tests (iBGP).
pub const AS: u32 = 65000;
/// Tests fail fast: a session is up in about a second with these timers.
pub const WAIT: Duration = Duration::from_secs(20);

/// A /24 of loopback addresses of our own: 127.<pid>.<n>.0/24, so tests in
/// parallel (threads and processes) never share an address or a port.
pub struct Loopback {
    /// The first three octets.
    pub base: [u8; 3],
}

impl Default for Loopback {
    fn default() -> Self {
        Loopback::new()
    }
}

impl Loopback {
    /// The next /24 of this process.
    pub fn new() -> Loopback {
        static NEXT: AtomicU8 = AtomicU8::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = (std::process::id() % 250) as u8 + 2;
        Loopback {
            base: [127, pid, n],
        }
    }

    /// Host `host` of the /24.
    pub fn v4(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.base[0], self.base[1], self.base[2], host)
    }

    /// Host `host` of the /24, as an [`IpAddr`].
    pub fn ip(&self, host: u8) -> IpAddr {
        IpAddr::V4(self.v4(host))
    }
}

/// A route target from its text (`65000:1`); panics if malformed.
pub fn rt(s: &str) -> RouteTarget {
    s.parse().expect("route target")
}

/// A route distinguisher from its text; panics if malformed.
pub fn rd(s: &str) -> RouteDistinguisher {
    s.parse().expect("route distinguisher")
}

/// A tenant with one import and export target.
pub fn vrf(tenant: u32, rd_text: &str, target: &str) -> VrfConfig {
    VrfConfig {
        tenant: TenantId(tenant),
        rd: rd(rd_text),
        import: vec![rt(target)],
        export: vec![rt(target)],
    }
}

/// Speaker settings with test timers (hold 9 s, retry from 200 ms).
pub fn speaker_config(router_id: Ipv4Addr) -> SpeakerConfig {
    SpeakerConfig {
        local_as: AS,
        router_id,
        next_hop: IpAddr::V4(router_id),
        hold_time: 9,
        connect_retry: Duration::from_millis(200),
        connect_retry_max: Duration::from_secs(2),
        mrai: Duration::ZERO,
        graceful_restart: Some(GracefulRestartConfig {
            restart_time: 120,
            restarting: false,
        }),
        stale_routes_time: Duration::from_secs(30),
        selection_deferral_time: Duration::from_secs(20),
        cluster_id: None,
        families: vec![Family::VPNV4, Family::VPNV6],
    }
}

/// A Pisek speaker running in its own runtime, driven from a sync test.
pub struct Pisek {
    /// The runtime the speaker runs on.
    pub rt: Runtime,
    /// The speaker.
    pub bgp: Bgp,
    /// Route events of tenant 1.
    pub events: tokio::sync::mpsc::UnboundedReceiver<RouteEvent>,
}

impl Pisek {
    /// Starts a speaker on `local` (port 179) with one external neighbor,
    /// `peer` in AS `peer_as` (eBGP).
    pub fn start_ebgp(
        speaker: SpeakerConfig,
        local: IpAddr,
        peer: IpAddr,
        peer_as: u32,
        vrfs: Vec<VrfConfig>,
    ) -> Pisek {
        Pisek::start_with(BgpConfig {
            speaker,
            local_address: local,
            listen_port: Some(179),
            peers: vec![neighbor(peer, false, Some(peer_as))],
            vrfs,
            routes: Vec::new(),
        })
    }

    /// Starts a speaker on `local` (port 179) peering with `peers` (port 179).
    pub fn start(
        speaker: SpeakerConfig,
        local: IpAddr,
        peers: &[IpAddr],
        vrfs: Vec<VrfConfig>,
    ) -> Pisek {
        let config = BgpConfig {
            speaker,
            local_address: local,
            listen_port: Some(179),
            peers: peers.iter().map(|a| neighbor(*a, false, None)).collect(),
            vrfs,
            routes: Vec::new(),
        };
        Pisek::start_with(config)
    }

    /// Starts a route reflector on `local` with every peer a client.
    pub fn start_reflector(
        mut speaker: SpeakerConfig,
        local: IpAddr,
        clients: &[IpAddr],
        cluster_id: Ipv4Addr,
    ) -> Pisek {
        speaker.cluster_id = Some(cluster_id);
        let config = BgpConfig {
            speaker,
            local_address: local,
            listen_port: Some(179),
            peers: clients.iter().map(|a| neighbor(*a, true, None)).collect(),
            vrfs: Vec::new(),
            routes: Vec::new(),
        };
        Pisek::start_with(config)
    }

    /// Starts a speaker that comes back from a restart (Restart State and
    /// Forwarding State bits set) with `routes` (tenant 1) advertised before
    /// its sessions come up.
    pub fn start_restarting(
        local: Ipv4Addr,
        peer: IpAddr,
        vrfs: Vec<VrfConfig>,
        routes: &[(&str, u32)],
    ) -> Pisek {
        let mut speaker = speaker_config(local);
        speaker.graceful_restart = Some(GracefulRestartConfig {
            restart_time: 120,
            restarting: true,
        });
        let config = BgpConfig {
            speaker,
            local_address: IpAddr::V4(local),
            listen_port: Some(179),
            peers: vec![neighbor(peer, false, None)],
            vrfs,
            routes: routes
                .iter()
                .map(|(p, l)| {
                    (
                        TenantId(1),
                        p.parse().expect("prefix"),
                        pisek_overlay::packet::Label::new(*l).expect("label"),
                    )
                })
                .collect(),
        };
        Pisek::start_with(config)
    }

    /// Starts a speaker with `config`, subscribed to tenant 1's route events.
    pub fn start_with(config: BgpConfig) -> Pisek {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (bgp, events) = rt.block_on(async {
            let bgp = pisek_agent::control::driver::spawn(config)
                .await
                .expect("start speaker");
            let events = bgp
                .handle
                .subscribe_tenant(TenantId(1))
                .await
                .expect("subscribe");
            (bgp, events)
        });
        Pisek { rt, bgp, events }
    }

    /// The speaker's handle.
    pub fn handle(&self) -> &BgpHandle {
        &self.bgp.handle
    }

    /// Advertises `prefix` of `tenant` with `label`.
    pub fn advertise(&self, tenant: u32, prefix: &str, label: u32) {
        let label = pisek_overlay::packet::Label::new(label).expect("label");
        self.rt
            .block_on(self.handle().advertise(
                TenantId(tenant),
                prefix.parse().expect("prefix"),
                label,
            ))
            .expect("advertise");
    }

    /// Withdraws `prefix` of `tenant`.
    pub fn withdraw(&self, tenant: u32, prefix: &str) {
        self.rt
            .block_on(
                self.handle()
                    .withdraw(TenantId(tenant), prefix.parse().expect("prefix")),
            )
            .expect("withdraw");
    }

    /// True when every peer is Established.
    pub fn established(&self) -> bool {
        let sessions = self
            .rt
            .block_on(self.handle().sessions())
            .unwrap_or_default();
        !sessions.is_empty()
            && sessions
                .iter()
                .all(|s| s.state == pisek_overlay::bgp::fsm::State::Established)
    }

    /// Waits until every peer is Established.
    pub fn wait_established(&self) {
        common_poll("Pisek session Established", || {
            self.established().then_some(())
        });
    }

    /// Route events received so far.
    pub fn drain_events(&mut self) -> Vec<RouteEvent> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push(e);
        }
        out
    }

    /// Waits for a route announcement; events before it are dropped.
    pub fn wait_announcement(&mut self, what: &str) -> RouteEvent {
        common_poll(what, || {
            self.drain_events().into_iter().find(|e| e.route.is_some())
        })
    }

    /// Waits for a route withdrawal; events before it are dropped.
    pub fn wait_withdrawal(&mut self, what: &str) -> RouteEvent {
        common_poll(what, || {
            self.drain_events().into_iter().find(|e| e.route.is_none())
        })
    }

    /// Waits for as many route events as `expected` lists, one route per
    /// family as (prefix, label, family), and checks they announce those
    /// routes into tenant 1 with route distinguisher `rd` and `next_hop`.
    pub fn expect_imported(
        &mut self,
        what: &str,
        rd: &str,
        next_hop: IpAddr,
        expected: &[(&str, u32, Family)],
    ) {
        let mut seen: Vec<RouteEvent> = Vec::new();
        common_poll(what, || {
            seen.extend(self.drain_events());
            (seen.len() >= expected.len()).then_some(())
        });
        seen.sort_by_key(|e| e.prefix.family());
        assert_eq!(seen.len(), expected.len(), "{seen:?}");
        for (e, &(prefix, label, family)) in seen.iter().zip(expected) {
            assert_eq!(e.tenant, 1);
            assert_eq!(e.prefix.rd.to_string(), rd);
            assert_eq!(e.prefix.prefix.to_string(), prefix);
            assert_eq!(e.prefix.family(), family);
            let route = e.route.as_ref().expect("an announcement");
            assert_eq!(route.label.value(), label);
            assert_eq!(route.next_hop, next_hop);
        }
    }

    /// Stops without a NOTIFICATION (a crash or restart).
    pub fn crash(self) {
        self.rt.block_on(async {
            self.bgp.handle.crash().await;
            let _ = self.bgp.task.await;
        });
    }
}

/// [`poll_until`](crate::poll_until) with the interop tests' deadline, [`WAIT`].
pub(crate) fn common_poll<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    crate::poll::poll_until(what, WAIT, check)
}

/// An active neighbor on port 179: a route-reflector client or not, in
/// `remote_as` (eBGP) or our own AS (`None`).
fn neighbor(address: IpAddr, rr_client: bool, remote_as: Option<u32>) -> (NeighborConfig, u16) {
    (
        NeighborConfig {
            address,
            rr_client,
            passive: false,
            remote_as,
        },
        179,
    )
}
