//! BGP wiring: the agent's speaker from its config, its advertisements, and
//! learned routes into the VRFs; and the workloads' routes (anti-spoofing,
//! stray host routes) from attach and detach.
//!
//! ```text
//!  config ──▶ bgp::spawn (iBGP over pisek0; route reflector on the edge)
//!              │ advertises each tenant's node prefix with the VRF label,
//!              │ plus a host route per stray workload address
//!              ▼ RouteEvent (best path per tenant and RD)
//!  route task: VrfRoutes::learned ─┐
//!  attach/detach: WorkloadRouting  ├─▶ VrfRoutes (one next hop per tenant
//!    ::attached / ::detached ──────┘    and prefix) ─▶ vrouter Command::Route
//!    (also Command::Workload, then a Barrier; BgpHandle::advertise / withdraw)
//!  session task: every second, sessions() → the API's BGP session list
//! ```
//! Two nodes may advertise the same prefix in one tenant (each under its own
//! route distinguisher, RFC 4364 §4.1): the VRF holds one next hop per
//! prefix, so the candidate with the lowest (next hop, RD) wins. Every node
//! makes the same choice, and it only changes when that route goes away.
//!
//! A workload address outside every prefix of its tenant on this node (a
//! *stray* address: a pod that moved and kept its IP, a service with a
//! fixed IP) is not covered by the node's aggregate, so it gets a host route
//! (/32, /128) of its own: local in the VRF, advertised with the VRF's label
//! (DESIGN.md, "Advertised routes"). A local host route wins over learned
//! ones for the same prefix: the workload is here, whatever an older
//! advertisement from its previous node says.

use crate::api::BgpSessionInfo;
use crate::attach::{WorkloadAddresses, WorkloadObserver};
use crate::bgp::{self, BgpConfig, BgpHandle, ImportedRoute, RouteEvent};
use crate::config::Config;
use crate::state::{AgentState, EndpointPhase};
use crate::vrouter::{Command, CommandSender};
use anyhow::Context;
use futures_util::future::BoxFuture;
use ipnet::IpNet;
use pisek_overlay::bgp::fsm::GracefulRestartConfig;
use pisek_overlay::bgp::packet::{Family, RouteDistinguisher, RouteTarget};
use pisek_overlay::bgp::policy::{TenantId, VrfConfig};
use pisek_overlay::bgp::speaker::{PeerConfig, SpeakerConfig};
use pisek_overlay::packet::{Encapsulation, Label};
use pisek_overlay::vrf::{InterfaceId, NextHop};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The running speaker and the session list it keeps for the API.
pub struct Routing {
    /// The speaker.
    pub handle: BgpHandle,
    /// Sessions, refreshed every second.
    pub sessions: Arc<Mutex<Vec<BgpSessionInfo>>>,
    /// The VRF routes, shared by the route task and [`WorkloadRouting`].
    pub vrf_routes: Arc<Mutex<VrfRoutes>>,
}

/// The BGP identifier: configured, else the tunnel address.
pub fn router_id(config: &Config) -> anyhow::Result<Ipv4Addr> {
    match (config.bgp.router_id, config.tunnel.address) {
        (Some(id), _) => Ok(id),
        (None, IpAddr::V4(a)) => Ok(a),
        (None, IpAddr::V6(_)) => {
            anyhow::bail!("bgp.router_id is required when the tunnel address is IPv6")
        }
    }
}

/// The host routes of the stray addresses of the complete attachments in
/// `state`: advertised from the start after a restart, like the node
/// prefixes, so they are in the first UPDATEs ahead of End-of-RIB.
pub fn stray_routes(config: &Config, state: &AgentState) -> Vec<(TenantId, IpNet)> {
    state
        .endpoints
        .iter()
        .filter(|r| r.phase == EndpointPhase::Attached)
        .flat_map(|r| {
            let w = WorkloadAddresses::of(r, config);
            w.stray
                .into_iter()
                .map(move |a| (w.tenant_id, IpNet::from(a)))
        })
        .collect()
}

/// The speaker's configuration from the agent's, advertising the tenants'
/// node prefixes and the `strays` host routes.
/// `restarting`: this process adopted the data plane of an earlier run
/// (its TUNs existed), so forwarding went on while it was away and peers are
/// told so (Restart State and Forwarding State bits, RFC 4724 §3).
pub fn bgp_config(
    config: &Config,
    labels: &[(TenantId, Label)],
    strays: &[(TenantId, IpNet)],
    restarting: bool,
) -> anyhow::Result<BgpConfig> {
    let router_id = router_id(config)?;
    let reflector = config.bgp.is_route_reflector(config.node.role);
    let mut vrfs = Vec::new();
    let mut routes = Vec::new();
    for tenant in &config.tenants {
        let targets = |list: &[String]| -> anyhow::Result<Vec<RouteTarget>> {
            list.iter()
                .map(|t| {
                    t.parse::<RouteTarget>().map_err(|e| {
                        anyhow::anyhow!("tenant {}: route target {t}: {e}", tenant.name)
                    })
                })
                .collect()
        };
        let number = u16::try_from(tenant.id).context("tenant id above 65535")?;
        vrfs.push(VrfConfig {
            tenant: tenant.id,
            // Type 1, router-id:tenant (DESIGN.md "The control plane").
            rd: RouteDistinguisher::from_ipv4(router_id, number),
            import: targets(&tenant.import_route_targets)?,
            export: targets(&tenant.export_route_targets)?,
        });
        let label = labels
            .iter()
            .find(|(t, _)| *t == tenant.id)
            .map(|(_, l)| *l)
            .with_context(|| format!("tenant {} has no label", tenant.name))?;
        for prefix in &tenant.prefixes {
            let prefix = IpNet::new(prefix.ip(), prefix.prefix())
                .context("tenant prefix")?
                .trunc();
            routes.push((tenant.id, prefix, label));
        }
        for (_, host) in strays.iter().filter(|(t, _)| *t == tenant.id) {
            routes.push((tenant.id, *host, label));
        }
    }
    Ok(BgpConfig {
        speaker: SpeakerConfig {
            local_as: config.bgp.asn,
            router_id,
            next_hop: config.tunnel.address,
            hold_time: config.bgp.hold_time_secs,
            connect_retry: Duration::from_millis(500),
            connect_retry_max: Duration::from_secs(10),
            // Updates go out at once: the overlay is small and a new pod
            // should be reachable in well under a second.
            mrai: Duration::ZERO,
            graceful_restart: Some(GracefulRestartConfig {
                restart_time: config.bgp.restart_time_secs,
                restarting,
            }),
            stale_routes_time: Duration::from_secs(60),
            cluster_id: reflector.then_some(router_id),
            families: vec![Family::VPNV4, Family::VPNV6],
        },
        local_address: config.tunnel.address,
        // bgp.listen = false: a reflector daemon on this node owns port 179.
        listen_port: config.bgp.listen.then_some(bgp::BGP_PORT),
        peers: config
            .bgp
            .neighbors
            .iter()
            .map(|n| {
                let peer = PeerConfig {
                    address: n.address,
                    rr_client: reflector,
                    passive: n.passive,
                };
                (peer, bgp::BGP_PORT)
            })
            .collect(),
        vrfs,
        routes,
    })
}

/// Starts the speaker and the tasks that feed the VRFs and the API.
pub async fn start(
    config: Arc<Config>,
    labels: &[(TenantId, Label)],
    strays: &[(TenantId, IpNet)],
    restarting: bool,
    vrouter: CommandSender,
) -> anyhow::Result<Routing> {
    let bgp = bgp::spawn(bgp_config(&config, labels, strays, restarting)?)
        .await
        .context("starting the BGP speaker")?;
    let handle = bgp.handle;
    let events = handle.subscribe().await?;
    let vrf_routes = Arc::new(Mutex::new(VrfRoutes::new(config.tunnel.address)));
    tokio::spawn(install_routes(events, Arc::clone(&vrf_routes), vrouter));
    let sessions = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(track_sessions(
        handle.clone(),
        Arc::clone(&config),
        Arc::clone(&sessions),
    ));
    Ok(Routing {
        handle,
        sessions,
        vrf_routes,
    })
}

/// The routes known for one tenant and prefix, by route distinguisher.
type Candidates = BTreeMap<[u8; 8], ImportedRoute>;

/// A change of the next hop a VRF holds for a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VrfChange {
    /// The tenant.
    pub tenant: TenantId,
    /// The destination.
    pub prefix: IpNet,
    /// The new next hop; `None`: the route goes.
    pub next_hop: Option<NextHop>,
}

impl VrfChange {
    /// The forwarder's command for it.
    pub fn command(self) -> Command {
        Command::Route {
            tenant: pisek_overlay::vrf::TenantId(self.tenant),
            prefix: self.prefix,
            next_hop: self.next_hop,
        }
    }
}

/// The one next hop per (tenant, prefix) that the VRFs hold beyond the
/// node prefixes: chosen among the routes BGP learned, unless a local
/// stray host route claims the prefix. Pure bookkeeping: each change
/// returns the [`VrfChange`] to send, if the installed next hop changed.
#[derive(Debug)]
pub struct VrfRoutes {
    own_address: IpAddr,
    learned: HashMap<(TenantId, IpNet), Candidates>,
    local: HashSet<(TenantId, IpNet)>,
}

impl VrfRoutes {
    /// Empty, for a node whose tunnel address is `own_address`.
    pub fn new(own_address: IpAddr) -> VrfRoutes {
        VrfRoutes {
            own_address,
            learned: HashMap::new(),
            local: HashSet::new(),
        }
    }

    fn installed(&self, key: &(TenantId, IpNet)) -> Option<NextHop> {
        if self.local.contains(key) {
            // The tenant's TUN: the kernel's tenant table has the host
            // route to the workload's veth.
            return Some(NextHop::Local(InterfaceId(key.0)));
        }
        self.learned
            .get(key)
            .and_then(|c| chosen(c, self.own_address))
    }

    fn change(
        &mut self,
        key: (TenantId, IpNet),
        edit: impl FnOnce(&mut Self),
    ) -> Option<VrfChange> {
        let before = self.installed(&key);
        edit(self);
        let after = self.installed(&key);
        (before != after).then_some(VrfChange {
            tenant: key.0,
            prefix: key.1,
            next_hop: after,
        })
    }

    /// A best-path change from BGP.
    pub fn learned(&mut self, event: RouteEvent) -> Option<VrfChange> {
        let key = (event.tenant, event.prefix.prefix);
        self.change(key, |s| {
            let candidates = s.learned.entry(key).or_default();
            match event.route {
                Some(route) => candidates.insert(event.prefix.rd.0, route),
                None => candidates.remove(&event.prefix.rd.0),
            };
            if candidates.is_empty() {
                s.learned.remove(&key);
            }
        })
    }

    /// A stray address of a local workload: its host route is local.
    pub fn add_local(&mut self, tenant: TenantId, address: IpAddr) -> Option<VrfChange> {
        self.change((tenant, IpNet::from(address)), |s| {
            s.local.insert((tenant, IpNet::from(address)));
        })
    }

    /// The stray address went away: a learned route for it, if any, takes over.
    pub fn remove_local(&mut self, tenant: TenantId, address: IpAddr) -> Option<VrfChange> {
        self.change((tenant, IpNet::from(address)), |s| {
            s.local.remove(&(tenant, IpNet::from(address)));
        })
    }
}

/// Route events → VRF next hops, until the speaker stops.
async fn install_routes(
    mut events: tokio::sync::mpsc::UnboundedReceiver<RouteEvent>,
    vrf_routes: Arc<Mutex<VrfRoutes>>,
    vrouter: CommandSender,
) {
    while let Some(event) = events.recv().await {
        let (tenant, prefix) = (event.tenant, event.prefix.prefix);
        // Sent under the lock, so the forwarder sees the changes in the
        // order VrfRoutes made them, whoever made them.
        let Ok(mut routes) = vrf_routes.lock() else {
            return;
        };
        let Some(change) = routes.learned(event) else {
            continue;
        };
        tracing::info!(tenant, %prefix, next_hop = ?change.next_hop, "VRF route");
        if vrouter.send(change.command()).is_err() {
            return;
        }
    }
}

/// The next hop installed for a prefix: the candidate with the lowest
/// (next hop, RD), skipping our own routes (they are local in the VRF).
fn chosen(candidates: &Candidates, own_address: IpAddr) -> Option<NextHop> {
    candidates
        .iter()
        .filter(|(_, r)| r.next_hop != own_address)
        .min_by_key(|(rd, r)| (r.next_hop, **rd))
        .map(|(_, r)| NextHop::Tunnel {
            endpoint: r.next_hop,
            label: r.label,
            encap: Encapsulation::MplsOverUdp,
        })
}

/// What the forwarder and BGP learn of each attach and detach
/// ([`WorkloadObserver`]): the workload's addresses for anti-spoofing, and
/// for each stray address a local host route in the VRF and its
/// advertisement with the VRF's label.
pub struct WorkloadRouting {
    forwarder: CommandSender,
    bgp: Option<BgpHandle>,
    labels: Vec<(TenantId, Label)>,
    vrf_routes: Arc<Mutex<VrfRoutes>>,
}

impl WorkloadRouting {
    /// Over the forwarder and, when this node runs a speaker, `routing`.
    pub fn new(
        config: &Config,
        labels: &[(TenantId, Label)],
        forwarder: CommandSender,
        routing: Option<&Routing>,
    ) -> WorkloadRouting {
        WorkloadRouting {
            forwarder,
            bgp: routing.map(|r| r.handle.clone()),
            labels: labels.to_vec(),
            vrf_routes: routing.map_or_else(
                || Arc::new(Mutex::new(VrfRoutes::new(config.tunnel.address))),
                |r| Arc::clone(&r.vrf_routes),
            ),
        }
    }

    fn label(&self, tenant: TenantId) -> Option<Label> {
        self.labels
            .iter()
            .find(|(t, _)| *t == tenant)
            .map(|(_, l)| *l)
    }

    /// Anti-spoofing entries and stray host routes in the VRF, in one
    /// burst the forwarder applies together.
    fn send_to_forwarder(&self, w: &WorkloadAddresses, present: bool) -> anyhow::Result<()> {
        let tenant = pisek_overlay::vrf::TenantId(w.tenant_id);
        let gone = || anyhow::anyhow!("the forwarder thread is not running");
        let mut routes = self
            .vrf_routes
            .lock()
            .map_err(|_| anyhow::anyhow!("the VRF route table is poisoned"))?;
        for address in &w.stray {
            let change = if present {
                routes.add_local(w.tenant_id, *address)
            } else {
                routes.remove_local(w.tenant_id, *address)
            };
            if let Some(change) = change {
                self.forwarder.send(change.command()).map_err(|_| gone())?;
            }
        }
        for address in &w.addresses {
            let command = Command::Workload {
                tenant,
                address: *address,
                present,
            };
            self.forwarder.send(command).map_err(|_| gone())?;
        }
        Ok(())
    }
}

impl WorkloadObserver for WorkloadRouting {
    fn attached<'a>(&'a self, w: &'a WorkloadAddresses) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.send_to_forwarder(w, true)?;
            self.forwarder.applied().await?;
            // Advertised once the VRF can deliver it.
            if let (Some(bgp), Some(label)) = (&self.bgp, self.label(w.tenant_id)) {
                for address in &w.stray {
                    bgp.advertise(w.tenant_id, IpNet::from(*address), label)
                        .await
                        .with_context(|| format!("advertising {address}"))?;
                }
            }
            Ok(())
        })
    }

    fn detached<'a>(&'a self, w: &'a WorkloadAddresses) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            // Withdrawn before the VRF forgets it, so peers stop sending
            // first. The forwarder forgets the workload even if BGP failed.
            let mut withdrawn = Ok(());
            if let (Some(bgp), Some(_)) = (&self.bgp, self.label(w.tenant_id)) {
                for address in &w.stray {
                    if let Err(e) = bgp.withdraw(w.tenant_id, IpNet::from(*address)).await {
                        withdrawn = Err(e.context(format!("withdrawing {address}")));
                    }
                }
            }
            self.send_to_forwarder(w, false)?;
            self.forwarder.applied().await?;
            withdrawn
        })
    }
}

/// Keeps the API's session list fresh.
async fn track_sessions(
    handle: BgpHandle,
    config: Arc<Config>,
    sessions: Arc<Mutex<Vec<BgpSessionInfo>>>,
) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        interval.tick().await;
        let Ok(peers) = handle.sessions().await else {
            return;
        };
        let Ok(advertised) = handle.advertised().await else {
            return;
        };
        let advertised = advertised.len() as u64;
        let list = peers
            .into_iter()
            .map(|p| BgpSessionInfo {
                neighbor: p.address,
                name: config
                    .bgp
                    .neighbors
                    .iter()
                    .find(|n| n.address == p.address)
                    .and_then(|n| n.name.clone()),
                state: format!("{:?}", p.state),
                uptime_secs: None,
                received: p.routes_received as u64,
                advertised,
            })
            .collect();
        if let Ok(mut s) = sessions.lock() {
            *s = list;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::WorkloadKey;
    use crate::state::EndpointRecord;
    use pisek_overlay::bgp::packet::{PathAttributes, VpnPrefix};

    fn route(next_hop: &str, label: u32) -> ImportedRoute {
        ImportedRoute {
            next_hop: next_hop.parse().expect("address"),
            label: Label::new(label).expect("label"),
            attributes: Arc::new(PathAttributes::default()),
        }
    }

    fn event(rd_host: u8, prefix: &str, next_hop: Option<ImportedRoute>) -> RouteEvent {
        RouteEvent {
            tenant: 1,
            prefix: VpnPrefix {
                rd: RouteDistinguisher([0, 1, 10, 255, 0, rd_host, 0, 1]),
                prefix: prefix.parse().expect("prefix"),
            },
            route: next_hop,
        }
    }

    fn tunnel(next_hop: &str, label: u32) -> Option<NextHop> {
        Some(NextHop::Tunnel {
            endpoint: next_hop.parse().expect("address"),
            label: Label::new(label).expect("label"),
            encap: Encapsulation::MplsOverUdp,
        })
    }

    #[test]
    fn a_local_stray_host_route_wins_over_a_learned_one_and_hands_back_on_removal() {
        let mut routes = VrfRoutes::new("10.255.0.11".parse().expect("address"));
        let stray: IpAddr = "10.1.9.5".parse().expect("address");
        // The pod's previous node still advertises it.
        let change = routes.learned(event(12, "10.1.9.5/32", Some(route("10.255.0.12", 17))));
        assert_eq!(change.map(|c| c.next_hop), Some(tunnel("10.255.0.12", 17)));
        // It moved here: local from now on, whatever BGP says.
        let change = routes.add_local(1, stray).expect("a change");
        assert_eq!(change.prefix.to_string(), "10.1.9.5/32");
        assert_eq!(change.next_hop, Some(NextHop::Local(InterfaceId(1))));
        assert_eq!(
            routes.learned(event(13, "10.1.9.5/32", Some(route("10.255.0.13", 18)))),
            None,
            "a learned route does not replace a local one"
        );
        // Detached here: the learned route with the lowest next hop takes over.
        let change = routes.remove_local(1, stray).expect("a change");
        assert_eq!(change.next_hop, tunnel("10.255.0.12", 17));
        // Our own advertisement coming back is never installed as a tunnel.
        routes.learned(event(12, "10.1.9.5/32", None));
        routes.learned(event(13, "10.1.9.5/32", None));
        assert_eq!(
            routes.learned(event(11, "10.1.9.5/32", Some(route("10.255.0.11", 16)))),
            None
        );
    }

    #[test]
    fn local_host_route_without_learned_ones_goes_with_the_workload() {
        let mut routes = VrfRoutes::new("10.255.0.11".parse().expect("address"));
        let v6: IpAddr = "fd00:9::5".parse().expect("address");
        let added = routes.add_local(2, v6).expect("a change");
        assert_eq!(added.prefix.to_string(), "fd00:9::5/128");
        assert_eq!(routes.add_local(2, v6), None, "idempotent");
        let removed = routes.remove_local(2, v6).expect("a change");
        assert_eq!(removed.next_hop, None);
        assert_eq!(routes.remove_local(2, v6), None, "idempotent");
    }

    #[test]
    fn only_attached_stray_addresses_are_advertised_from_the_start() {
        let config = Config::parse(
            r#"
[node]
name = "gw1"
role = "gateway"
[underlay]
listen = "127.0.0.1:51820"
[tunnel]
address = "10.255.0.11"
network = "10.255.0.0/24"
[wireguard]
private_key_file = "/nonexistent"
[bgp]
asn = 65000
[[tenant]]
name = "city"
id = 1
prefixes = ["10.1.1.0/24"]
"#,
            "test",
        )
        .expect("config");
        let record = |id: &str, address: &str, phase| EndpointRecord {
            key: WorkloadKey::new(id, "eth0"),
            tenant: "city".into(),
            tenant_id: 1,
            netns: "/run/netns/x".into(),
            host_ifname: "pk0".into(),
            addresses: vec![address.parse().expect("address")],
            mtu: 1408,
            table_id: 100_001,
            rule_priority: 1000,
            mac: None,
            phase,
        };
        let mut state = AgentState::default();
        state
            .endpoints
            .insert(record("inside", "10.1.1.7", EndpointPhase::Attached));
        state
            .endpoints
            .insert(record("stray", "10.1.9.5", EndpointPhase::Attached));
        state
            .endpoints
            .insert(record("half", "10.1.9.6", EndpointPhase::Attaching));
        let strays = stray_routes(&config, &state);
        assert_eq!(strays, vec![(1, "10.1.9.5/32".parse().expect("prefix"))]);
        let labels = [(1, Label::new(16).expect("label"))];
        let bgp = bgp_config(&config, &labels, &strays, false).expect("bgp config");
        let advertised: Vec<String> = bgp.routes.iter().map(|(_, p, _)| p.to_string()).collect();
        assert_eq!(advertised, ["10.1.1.0/24", "10.1.9.5/32"]);
    }

    #[test]
    fn a_speaker_with_listen_false_binds_no_listener() {
        let text = |listen: bool| {
            format!(
                "[node]\nname = \"edge\"\nrole = \"edge\"\n[underlay]\nlisten = \"0.0.0.0:51820\"\n\
                 [tunnel]\naddress = \"10.255.0.1\"\nnetwork = \"10.255.0.0/24\"\n\
                 [wireguard]\nprivate_key_file = \"/k\"\n\
                 [bgp]\nasn = 65000\nlisten = {listen}\nroute_reflector = false\n\
                 [[bgp.neighbor]]\naddress = \"10.255.0.1\"\n"
            )
        };
        let config = |listen| Config::parse(&text(listen), "agent.toml").expect("parses");
        let client = bgp_config(&config(false), &[], &[], false).expect("config");
        assert_eq!(client.listen_port, None);
        assert!(!client.peers[0].0.passive);
        let listening = bgp_config(&config(true), &[], &[], false).expect("config");
        assert_eq!(listening.listen_port, Some(bgp::BGP_PORT));
    }

    #[test]
    fn the_same_prefix_under_two_rds_picks_the_lowest_next_hop_and_skips_our_own() {
        let own: IpAddr = "10.255.0.2".parse().expect("address");
        let mut c = Candidates::new();
        c.insert([0, 1, 10, 255, 0, 3, 0, 1], route("10.255.0.3", 100));
        c.insert([0, 1, 10, 255, 0, 2, 0, 1], route("10.255.0.2", 200));
        c.insert([0, 1, 10, 255, 0, 4, 0, 1], route("10.255.0.4", 300));
        let Some(NextHop::Tunnel {
            endpoint, label, ..
        }) = chosen(&c, own)
        else {
            panic!("a tunnel next hop");
        };
        assert_eq!(
            (endpoint.to_string(), label.value()),
            ("10.255.0.3".into(), 100)
        );
        c.clear();
        c.insert([0, 1, 10, 255, 0, 2, 0, 1], route("10.255.0.2", 200));
        assert_eq!(chosen(&c, own), None);
    }
}
