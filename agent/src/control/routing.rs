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
//!    ::attached / ::detached ──────┘    and prefix) ─▶ dataplane Command::Route
//!    (also Command::Workload, then a Barrier; BgpHandle::advertise / withdraw)
//!  session task: every second, sessions() → the API's BGP session list
//! ```
//! Which next hop a VRF holds for a prefix (the lowest (next hop, RD) of
//! the learned candidates, fresh before stale, a local stray host route
//! over any learned one) is [`pisek_overlay::bgp::import::VrfRoutes`]'s
//! bookkeeping; this module turns its changes into data-plane commands.
//!
//! A workload address outside every prefix of its tenant on this node (a
//! *stray* address: a pod that moved and kept its IP, a service with a
//! fixed IP) is not covered by the node's aggregate, so it gets a host route
//! (/32, /128) of its own: local in the VRF, advertised with the VRF's label
//! (DESIGN.md, "Advertised routes").
//!
//! Across a restart the learned routes are kept ([`restart`]): written to
//! the state directory while the agent runs, loaded stale into the VRFs by
//! a start that adopts the data plane, swept once every neighbor has sent
//! End-of-RIB (RFC 4724 §4.1).

use super::driver::{self as bgp, BgpConfig, BgpHandle, SpeakerEvent};
use super::restart::{self, LearnedRoutesWriter};
use crate::api::BgpSessionInfo;
use crate::attach::{WorkloadAddresses, WorkloadObserver};
use crate::config::Config;
use crate::dataplane::{Command, CommandSender};
use crate::state::{AgentState, EndpointPhase};
use anyhow::Context;
use futures_util::future::BoxFuture;
use ipnet::IpNet;
use pisek_overlay::bgp::fsm::GracefulRestartConfig;
use pisek_overlay::bgp::gr::StaleSweep;
pub use pisek_overlay::bgp::import::{VrfChange, VrfRoutes};
use pisek_overlay::bgp::packet::{Family, RouteDistinguisher, RouteTarget};
use pisek_overlay::bgp::policy::{TenantId, VrfConfig};
use pisek_overlay::bgp::speaker::{NeighborConfig, SpeakerConfig};
use pisek_overlay::packet::Label;
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
    /// Keeps the learned routes in the state directory for a restart.
    pub learned_routes: LearnedRoutesWriter,
}

impl Routing {
    /// Stops the speaker without a NOTIFICATION (peers keep our routes,
    /// RFC 4724) and writes the learned routes for the next start.
    pub async fn stop_for_restart(&self) {
        self.handle.crash().await;
        self.learned_routes.flush().await;
    }
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

/// The node's own prefixes per tenant: a learned route for exactly one of
/// them is refused (`VrfRoutes::with_own_prefixes`).
pub fn own_prefixes(config: &Config) -> Vec<(TenantId, IpNet)> {
    config
        .tenants
        .iter()
        .flat_map(|t| {
            t.prefixes.iter().filter_map(move |p| {
                IpNet::new(p.ip(), p.prefix())
                    .ok()
                    .map(|n| (TenantId(t.id), n.trunc()))
            })
        })
        .collect()
}

/// The host routes of the stray addresses of the complete attachments in
/// `state`: advertised from the start after a restart, like the node
/// prefixes, so they are in the first UPDATEs ahead of End-of-RIB.
pub fn stray_routes(config: &Config, state: &AgentState) -> Vec<(u32, IpNet)> {
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

/// Every attached workload's addresses, by tenant id: the pipeline's
/// anti-spoofing list from the first packet after a restart (the attach
/// path re-publishes them later, with the stray routes and BGP).
pub fn workload_addresses(state: &AgentState) -> Vec<(u32, IpAddr)> {
    state
        .endpoints
        .iter()
        .filter(|r| r.phase == EndpointPhase::Attached)
        .flat_map(|r| r.addresses.iter().map(move |a| (r.tenant_id, *a)))
        .collect()
}

/// The speaker's configuration from the agent's, advertising the tenants'
/// node prefixes and the `strays` host routes.
/// `restarting`: this process adopted the data plane of an earlier run
/// (its TUNs existed), so forwarding went on while it was away and peers are
/// told so (Restart State and Forwarding State bits, RFC 4724 §3).
pub fn bgp_config(
    config: &Config,
    labels: &[(u32, Label)],
    strays: &[(u32, IpNet)],
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
            tenant: TenantId(tenant.id),
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
            routes.push((TenantId(tenant.id), prefix, label));
        }
        for (_, host) in strays.iter().filter(|(t, _)| *t == tenant.id) {
            routes.push((TenantId(tenant.id), *host, label));
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
            // Half the stale-routes time our peers (the same agent) keep
            // our routes for after we reconnect, so a gateway that never
            // comes back cannot make the others drop theirs (RFC 4724 §4.1).
            selection_deferral_time: Duration::from_secs(30),
            cluster_id: reflector.then_some(router_id),
            families: FAMILIES.to_vec(),
        },
        local_address: config.tunnel.address,
        // bgp.listen = false: a reflector daemon on this node owns port 179.
        listen_port: config.bgp.listen.then_some(bgp::BGP_PORT),
        peers: config
            .bgp
            .neighbors
            .iter()
            .map(|n| {
                let ebgp = n.remote_as.is_some_and(|asn| asn != config.bgp.asn);
                let peer = NeighborConfig {
                    address: n.address,
                    // Reflection is within the AS (RFC 4456).
                    rr_client: reflector && !ebgp,
                    passive: n.passive,
                    remote_as: n.remote_as,
                };
                (peer, bgp::BGP_PORT)
            })
            .collect(),
        vrfs,
        routes,
    })
}

/// The VPN families the agent's speaker offers.
pub const FAMILIES: [Family; 2] = [Family::VPNV4, Family::VPNV6];

/// Starts the speaker and the tasks that feed the VRFs and the API.
/// `vrf_routes`: the routes the VRFs start with (restored stale after a
/// restart, [`restart::restored_routes`], and already in the forwarder's
/// VRFs); they go once every neighbor has sent End-of-RIB.
pub async fn start(
    config: Arc<Config>,
    labels: &[(u32, Label)],
    strays: &[(u32, IpNet)],
    restarting: bool,
    vrouter: CommandSender,
    vrf_routes: VrfRoutes,
) -> anyhow::Result<Routing> {
    let bgp = bgp::spawn(bgp_config(&config, labels, strays, restarting)?)
        .await
        .context("starting the BGP speaker")?;
    let handle = bgp.handle;
    let events = handle.subscribe_events().await?;
    let sweep = vrf_routes
        .has_stale()
        .then(|| restart::stale_sweep(&config, &FAMILIES));
    let vrf_routes = Arc::new(Mutex::new(vrf_routes));
    let learned_routes =
        LearnedRoutesWriter::spawn(config.state.dir.clone(), Arc::clone(&vrf_routes));
    tokio::spawn(install_routes(
        events,
        Arc::clone(&vrf_routes),
        vrouter,
        sweep,
        learned_routes.clone(),
    ));
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
        learned_routes,
    })
}

/// Route events → VRF next hops, until the speaker stops; after a restart,
/// End-of-RIB markers (or the restart time) → the stale routes' sweep.
pub(super) async fn install_routes(
    mut events: tokio::sync::mpsc::UnboundedReceiver<SpeakerEvent>,
    vrf_routes: Arc<Mutex<VrfRoutes>>,
    vrouter: CommandSender,
    mut sweep: Option<StaleSweep>,
    writer: LearnedRoutesWriter,
) {
    // Without neighbors (or with families nobody sends) nothing is owed.
    if let Some(s) = &sweep {
        for family in FAMILIES.iter().filter(|f| s.tracker.is_complete(**f)) {
            let why = "no neighbor owes End-of-RIB";
            if !sweep_stale(&vrf_routes, &vrouter, Some(*family), why) {
                return;
            }
            writer.changed();
        }
        if s.tracker.is_done() {
            sweep = None;
        }
    }
    loop {
        let deadline = sweep
            .as_ref()
            .map(|s| tokio::time::Instant::from_std(s.deadline));
        let restart_time_over = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            event = events.recv() => event,
            () = restart_time_over => {
                sweep = None;
                if !sweep_stale(&vrf_routes, &vrouter, None, "restart time over") {
                    return;
                }
                writer.changed();
                continue;
            }
        };
        let Some(event) = event else { return };
        match event {
            SpeakerEvent::Route(event) => {
                let (tenant, prefix) = (event.tenant, event.prefix.prefix);
                // Sent under the lock, so the forwarder sees the changes in
                // the order VrfRoutes made them, whoever made them.
                let Ok(mut routes) = vrf_routes.lock() else {
                    return;
                };
                if let Some(why) = routes.refuses(&event) {
                    let next_hop = event.route.as_ref().map(|r| r.next_hop);
                    tracing::warn!(tenant = tenant.0, %prefix, ?next_hop, "learned route refused: {why}");
                }
                let change = routes.learned(event);
                writer.changed();
                let Some(change) = change else {
                    continue;
                };
                tracing::info!(tenant = tenant.0, %prefix, next_hop = ?change.next_hop, "VRF route");
                if vrouter.send(route_command(change)).is_err() {
                    return;
                }
            }
            SpeakerEvent::EndOfRib { neighbor, family } => {
                let Some(s) = sweep.as_mut() else { continue };
                tracing::info!(%neighbor, %family, "End-of-RIB after the restart");
                if let Some(family) = s.tracker.end_of_rib(neighbor, family) {
                    let why = "End-of-RIB from every neighbor";
                    if !sweep_stale(&vrf_routes, &vrouter, Some(family), why) {
                        return;
                    }
                    writer.changed();
                }
                if s.tracker.is_done() {
                    sweep = None;
                }
            }
        }
    }
}

/// Removes the stale routes of `family` (None: all) from the VRFs; false
/// when the forwarder or the route table is gone.
fn sweep_stale(
    vrf_routes: &Mutex<VrfRoutes>,
    vrouter: &CommandSender,
    family: Option<Family>,
    why: &str,
) -> bool {
    let Ok(mut routes) = vrf_routes.lock() else {
        return false;
    };
    let changes = routes.sweep_stale(family);
    let family = family.map_or_else(|| "every family".to_string(), |f| f.to_string());
    tracing::info!(%family, changes = changes.len(), "{why}: stale routes swept");
    for change in changes {
        let (tenant, prefix) = (change.tenant, change.prefix);
        tracing::info!(tenant = tenant.0, %prefix, next_hop = ?change.next_hop, "VRF route");
        if vrouter.send(route_command(change)).is_err() {
            return false;
        }
    }
    true
}

/// The forwarder's command for a change of a VRF's next hop.
fn route_command(change: VrfChange) -> Command {
    Command::Route {
        tenant: change.tenant,
        prefix: change.prefix,
        next_hop: change.next_hop,
    }
}

/// What the forwarder and BGP learn of each attach and detach
/// ([`WorkloadObserver`]): the workload's addresses for anti-spoofing, and
/// for each stray address a local host route in the VRF and its
/// advertisement with the VRF's label.
pub struct WorkloadRouting {
    forwarder: CommandSender,
    bgp: Option<BgpHandle>,
    labels: Vec<(u32, Label)>,
    vrf_routes: Arc<Mutex<VrfRoutes>>,
}

impl WorkloadRouting {
    /// Over the forwarder and, when this node runs a speaker, `routing`.
    pub fn new(
        config: &Config,
        labels: &[(u32, Label)],
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

    fn label(&self, tenant: u32) -> Option<Label> {
        self.labels
            .iter()
            .find(|(t, _)| *t == tenant)
            .map(|(_, l)| *l)
    }

    /// Anti-spoofing entries and stray host routes in the VRF, in one
    /// burst the forwarder applies together.
    fn send_to_forwarder(&self, w: &WorkloadAddresses, present: bool) -> anyhow::Result<()> {
        let tenant = TenantId(w.tenant_id);
        let gone = || anyhow::anyhow!("the forwarder thread is not running");
        let mut routes = self
            .vrf_routes
            .lock()
            .map_err(|_| anyhow::anyhow!("the VRF route table is poisoned"))?;
        for address in &w.stray {
            let change = if present {
                routes.add_local(tenant, *address)
            } else {
                routes.remove_local(tenant, *address)
            };
            if let Some(change) = change {
                self.forwarder
                    .send(route_command(change))
                    .map_err(|_| gone())?;
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
                    bgp.advertise(TenantId(w.tenant_id), IpNet::from(*address), label)
                        .await
                        .with_context(|| format!("advertising {address}"))?;
                }
            }
            Ok(())
        })
    }

    fn learned_hosts(&self, tenant_id: u32) -> Vec<IpAddr> {
        self.vrf_routes
            .lock()
            .map(|r| r.learned_hosts(TenantId(tenant_id)))
            .unwrap_or_default()
    }

    fn detached<'a>(&'a self, w: &'a WorkloadAddresses) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            // Withdrawn before the VRF forgets it, so peers stop sending
            // first. The forwarder forgets the workload even if BGP failed.
            let mut withdrawn = Ok(());
            if let (Some(bgp), Some(_)) = (&self.bgp, self.label(w.tenant_id)) {
                for address in &w.stray {
                    if let Err(e) = bgp
                        .withdraw(TenantId(w.tenant_id), IpNet::from(*address))
                        .await
                    {
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
    use crate::config::Role;
    use crate::config::fixture::{AgentToml, TenantToml};
    use crate::ipam::WorkloadKey;
    use crate::state::EndpointRecord;
    use pisek_overlay::bgp::fixtures::{event, route, tunnel};
    use pisek_overlay::vrf::NextHop;

    #[test]
    fn learned_routes_survive_the_file_and_come_back_stale() {
        let dir = std::env::temp_dir().join(format!("pisek-routing-kept-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let mut before = VrfRoutes::new("10.255.0.11".parse().expect("address"));
        before.learned(event(12, "10.1.2.0/24", Some(route("10.255.0.12", 17))));
        before.learned(event(13, "10.1.2.0/24", Some(route("10.255.0.13", 18))));
        before.learned(event(
            12,
            "fd00:10:1:2::/64",
            Some(route("10.255.0.12", 17)),
        ));
        crate::state::save_learned_routes(&dir, &before.learned_routes()).expect("save");
        let loaded = crate::state::load_learned_routes(&dir).expect("load");
        let _ = std::fs::remove_dir_all(&dir);
        let mut after = VrfRoutes::new("10.255.0.11".parse().expect("address"));
        let mut installed = after.restore(&loaded);
        installed.sort_by_key(|c| c.prefix);
        let installed: Vec<(String, Option<NextHop>)> = installed
            .into_iter()
            .map(|c| (c.prefix.to_string(), c.next_hop))
            .collect();
        assert_eq!(
            installed,
            [
                ("10.1.2.0/24".to_string(), tunnel("10.255.0.12", 17)),
                ("fd00:10:1:2::/64".to_string(), tunnel("10.255.0.12", 17)),
            ],
            "the same choice as before the restart"
        );
        let mut kept = after.learned_routes();
        let mut learned = before.learned_routes();
        kept.sort_by_key(|r| (r.prefix, r.rd.0));
        learned.sort_by_key(|r| (r.prefix, r.rd.0));
        assert_eq!(kept, learned);
        assert!(after.has_stale());
    }

    #[test]
    fn only_attached_stray_addresses_are_advertised_from_the_start() {
        let config = AgentToml::new("gw1", Role::Gateway, "10.255.0.11", "/nonexistent")
            .tenant(TenantToml::new("city", 1).prefixes(["10.1.1.0/24"]))
            .config();
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
            owner: None,
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
}
