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
//!
//! Across a restart the learned routes are kept ([`restart`]): written to
//! the state directory while the agent runs, loaded stale into the VRFs by
//! a start that adopts the data plane, swept once every neighbor has sent
//! End-of-RIB (RFC 4724 §4.1).

pub mod restart;

use crate::api::BgpSessionInfo;
use crate::attach::{WorkloadAddresses, WorkloadObserver};
use crate::bgp::{self, BgpConfig, BgpHandle, RouteEvent, SpeakerEvent};
use crate::config::Config;
use crate::dataplane::{Command, CommandSender};
use crate::state::{AgentState, EndpointPhase, LearnedRoute};
use anyhow::Context;
use futures_util::future::BoxFuture;
use ipnet::IpNet;
use pisek_overlay::bgp::fsm::GracefulRestartConfig;
use pisek_overlay::bgp::packet::{Family, RouteDistinguisher, RouteTarget};
use pisek_overlay::bgp::policy::{TenantId, VrfConfig};
use pisek_overlay::bgp::speaker::{PeerConfig, SpeakerConfig};
use pisek_overlay::packet::{Encapsulation, Label};
use pisek_overlay::vrf::{InterfaceId, NextHop};
use restart::{LearnedRoutesWriter, StaleSweep};
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

/// The VPN families the agent's speaker offers.
pub const FAMILIES: [Family; 2] = [Family::VPNV4, Family::VPNV6];

/// Starts the speaker and the tasks that feed the VRFs and the API.
/// `vrf_routes`: the routes the VRFs start with (restored stale after a
/// restart, [`restart::restored_routes`], and already in the forwarder's
/// VRFs); they go once every neighbor has sent End-of-RIB.
pub async fn start(
    config: Arc<Config>,
    labels: &[(TenantId, Label)],
    strays: &[(TenantId, IpNet)],
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
        .then(|| StaleSweep::new(&config, &FAMILIES));
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

/// A learned route for one tenant and prefix, from one advertiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Candidate {
    next_hop: IpAddr,
    label: Label,
    encap: Encapsulation,
    /// Restored from the previous run and not re-learned yet (RFC 4724
    /// §4.1): forwarded on, and swept after End-of-RIB.
    stale: bool,
}

/// The routes known for one tenant and prefix, by route distinguisher.
type Candidates = BTreeMap<[u8; 8], Candidate>;

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
    /// Bumped on every change of the learned routes: the writer compares
    /// it with what it wrote last.
    generation: u64,
}

impl VrfRoutes {
    /// Empty, for a node whose tunnel address is `own_address`.
    pub fn new(own_address: IpAddr) -> VrfRoutes {
        VrfRoutes {
            own_address,
            learned: HashMap::new(),
            local: HashSet::new(),
            generation: 0,
        }
    }

    /// Loads the routes the previous run learned, as stale candidates
    /// (RFC 4724 §4.1): they are forwarded on until BGP re-learns them
    /// (then they are fresh) or [`VrfRoutes::sweep_stale`] removes them.
    /// Our own routes are skipped. Returns the next hops to install.
    pub fn restore(&mut self, routes: &[LearnedRoute]) -> Vec<VrfChange> {
        let mut changes = Vec::new();
        let own_address = self.own_address;
        for r in routes.iter().filter(|r| r.next_hop != own_address) {
            let candidate = Candidate {
                next_hop: r.next_hop,
                label: r.label,
                encap: r.encap,
                stale: true,
            };
            let change = self.change((r.tenant, r.prefix), |s| {
                s.learned
                    .entry((r.tenant, r.prefix))
                    .or_default()
                    .entry(r.rd.0)
                    .or_insert(candidate);
            });
            changes.extend(change);
        }
        self.generation += 1;
        changes
    }

    /// Removes the stale candidates of `family` (None: of every family) and
    /// returns the next-hop changes: what the peers did not resend.
    pub fn sweep_stale(&mut self, family: Option<Family>) -> Vec<VrfChange> {
        let keys: Vec<(TenantId, IpNet)> = self
            .learned
            .iter()
            .filter(|(k, c)| {
                family.is_none_or(|f| Family::vpn_of(&k.1) == f) && c.values().any(|c| c.stale)
            })
            .map(|(k, _)| *k)
            .collect();
        let mut changes = Vec::new();
        for key in keys {
            let change = self.change(key, |s| {
                if let Some(candidates) = s.learned.get_mut(&key) {
                    candidates.retain(|_, c| !c.stale);
                    if candidates.is_empty() {
                        s.learned.remove(&key);
                    }
                }
            });
            changes.extend(change);
        }
        self.generation += 1;
        changes
    }

    /// Some learned route is still stale.
    pub fn has_stale(&self) -> bool {
        self.learned.values().flatten().any(|(_, c)| c.stale)
    }

    /// Every learned route (fresh and stale), for the state directory.
    pub fn learned_routes(&self) -> Vec<LearnedRoute> {
        self.learned
            .iter()
            .flat_map(|((tenant, prefix), candidates)| {
                candidates.iter().map(move |(rd, c)| LearnedRoute {
                    tenant: *tenant,
                    rd: RouteDistinguisher(*rd),
                    prefix: *prefix,
                    next_hop: c.next_hop,
                    label: c.label,
                    encap: c.encap,
                })
            })
            .collect()
    }

    /// Changes with every change of the learned routes.
    pub fn generation(&self) -> u64 {
        self.generation
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

    /// A best-path change from BGP. A route re-learned after a restart
    /// replaces its stale copy; a withdrawal removes it, stale or not.
    pub fn learned(&mut self, event: RouteEvent) -> Option<VrfChange> {
        let key = (event.tenant, event.prefix.prefix);
        self.generation += 1;
        self.change(key, |s| {
            let candidates = s.learned.entry(key).or_default();
            match event.route {
                Some(route) => candidates.insert(
                    event.prefix.rd.0,
                    Candidate {
                        next_hop: route.next_hop,
                        label: route.label,
                        encap: Encapsulation::MplsOverUdp,
                        stale: false,
                    },
                ),
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

/// Route events → VRF next hops, until the speaker stops; after a restart,
/// End-of-RIB markers (or the restart time) → the stale routes' sweep.
async fn install_routes(
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
        let deadline = sweep.as_ref().map(|s| s.deadline);
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
                let change = routes.learned(event);
                writer.changed();
                let Some(change) = change else {
                    continue;
                };
                tracing::info!(tenant, %prefix, next_hop = ?change.next_hop, "VRF route");
                if vrouter.send(change.command()).is_err() {
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
        tracing::info!(tenant, %prefix, next_hop = ?change.next_hop, "VRF route");
        if vrouter.send(change.command()).is_err() {
            return false;
        }
    }
    true
}

/// The next hop installed for a prefix: a fresh candidate before a stale
/// one (a route re-learned since the restart says where the prefix is now;
/// a kept one only where it was), then the lowest (next hop, RD), skipping
/// our own routes (they are local in the VRF).
fn chosen(candidates: &Candidates, own_address: IpAddr) -> Option<NextHop> {
    candidates
        .iter()
        .filter(|(_, r)| r.next_hop != own_address)
        .min_by_key(|(rd, r)| (r.stale, r.next_hop, **rd))
        .map(|(_, r)| NextHop::Tunnel {
            endpoint: r.next_hop,
            label: r.label,
            encap: r.encap,
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
    use crate::bgp::ImportedRoute;
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

    /// What gw1 learned before its restart: gw2's prefixes (IPv4 and
    /// IPv6) and a stray /32 of gw2 that was detached meanwhile.
    fn kept_routes() -> Vec<LearnedRoute> {
        let kept = |prefix: &str| LearnedRoute {
            tenant: 1,
            rd: RouteDistinguisher([0, 1, 10, 255, 0, 12, 0, 1]),
            prefix: prefix.parse().expect("prefix"),
            next_hop: "10.255.0.12".parse().expect("address"),
            label: Label::new(17).expect("label"),
            encap: Encapsulation::MplsOverUdp,
        };
        vec![
            kept("10.1.2.0/24"),
            kept("10.1.9.5/32"),
            kept("fd00:10:1:2::/64"),
        ]
    }

    #[test]
    fn restored_routes_forward_until_the_sweep_removes_what_was_not_relearned() {
        let mut routes = VrfRoutes::new("10.255.0.11".parse().expect("address"));
        let mut kept = kept_routes();
        // Our own route coming back from the file is never installed.
        kept.push(LearnedRoute {
            next_hop: "10.255.0.11".parse().expect("address"),
            prefix: "10.1.1.0/24".parse().expect("prefix"),
            ..kept[0]
        });
        let installed = routes.restore(&kept);
        assert_eq!(installed.len(), 3, "{installed:?}");
        assert!(
            installed
                .iter()
                .all(|c| c.next_hop == tunnel("10.255.0.12", 17))
        );
        assert!(routes.has_stale());

        // BGP resends the /24 (same RD): fresh now, no change in the VRF.
        assert_eq!(
            routes.learned(event(12, "10.1.2.0/24", Some(route("10.255.0.12", 17)))),
            None
        );
        // VPNv4's End-of-RIB from every neighbor: the /32 nobody resent goes,
        // the IPv6 route waits for VPNv6's marker.
        let swept = routes.sweep_stale(Some(Family::VPNV4));
        assert_eq!(swept.len(), 1, "{swept:?}");
        assert_eq!(swept[0].prefix.to_string(), "10.1.9.5/32");
        assert_eq!(swept[0].next_hop, None);
        assert!(routes.has_stale(), "the IPv6 route is still stale");
        let swept = routes.sweep_stale(None);
        assert_eq!(swept.len(), 1);
        assert_eq!(swept[0].prefix.to_string(), "fd00:10:1:2::/64");
        assert!(!routes.has_stale());
        // What is left is what BGP re-learned.
        let left: Vec<String> = routes
            .learned_routes()
            .iter()
            .map(|r| r.prefix.to_string())
            .collect();
        assert_eq!(left, ["10.1.2.0/24"]);
        assert!(
            routes.sweep_stale(None).is_empty(),
            "a second sweep is a no-op"
        );
    }

    #[test]
    fn a_withdrawal_while_stale_removes_the_route_at_once() {
        let mut routes = VrfRoutes::new("10.255.0.11".parse().expect("address"));
        routes.restore(&kept_routes());
        let change = routes
            .learned(event(12, "10.1.2.0/24", None))
            .expect("a change");
        assert_eq!(change.next_hop, None);
        // Re-learned, then withdrawn: gone, no stale copy comes back.
        routes.learned(event(12, "10.1.9.5/32", Some(route("10.255.0.12", 17))));
        let change = routes
            .learned(event(12, "10.1.9.5/32", None))
            .expect("a change");
        assert_eq!(change.next_hop, None);
        // A fresh route under another RD wins over the stale one at once
        // (the prefix moved while this agent was away); the sweep then
        // only forgets the stale candidate.
        let v6 = routes
            .learned(event(
                13,
                "fd00:10:1:2::/64",
                Some(route("10.255.0.13", 18)),
            ))
            .expect("a change");
        assert_eq!(
            v6.next_hop,
            tunnel("10.255.0.13", 18),
            "fresh beats the stale 10.255.0.12 candidate"
        );
        assert_eq!(routes.sweep_stale(None), Vec::new());
    }

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
        let route = |next_hop: &str, label: u32| Candidate {
            next_hop: next_hop.parse().expect("address"),
            label: Label::new(label).expect("label"),
            encap: Encapsulation::MplsOverUdp,
            stale: false,
        };
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
