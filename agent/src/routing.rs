//! BGP wiring: the agent's speaker from its config, its advertisements, and
//! learned routes into the VRFs.
//!
//! ```text
//!  config ──▶ bgp::spawn (iBGP over pisek0; route reflector on the edge)
//!              │ advertises each tenant's node prefix with the VRF label
//!              ▼ RouteEvent (best path per tenant and RD)
//!  route task: per (tenant, prefix) the candidates under every RD
//!              → the chosen one → vrouter Command::Route (Tunnel next hop)
//!  session task: every second, sessions() → the API's BGP session list
//! ```
//! Two nodes may advertise the same prefix in one tenant (each under its own
//! route distinguisher, RFC 4364 §4.1): the VRF holds one next hop per
//! prefix, so the candidate with the lowest (next hop, RD) wins. Every node
//! makes the same choice, and it only changes when that route goes away.

use crate::api::BgpSessionInfo;
use crate::bgp::{self, BgpConfig, BgpHandle, ImportedRoute, RouteEvent};
use crate::config::Config;
use crate::vrouter::Command;
use anyhow::Context;
use ipnet::IpNet;
use pisek_overlay::bgp::fsm::GracefulRestartConfig;
use pisek_overlay::bgp::packet::{Family, RouteDistinguisher, RouteTarget};
use pisek_overlay::bgp::policy::{TenantId, VrfConfig};
use pisek_overlay::bgp::speaker::{PeerConfig, SpeakerConfig};
use pisek_overlay::packet::{Encapsulation, Label};
use pisek_overlay::vrf::NextHop;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The running speaker and the session list it keeps for the API.
pub struct Routing {
    /// The speaker.
    pub handle: BgpHandle,
    /// Sessions, refreshed every second.
    pub sessions: Arc<Mutex<Vec<BgpSessionInfo>>>,
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

/// The speaker's configuration from the agent's.
/// `restarting`: this process adopted the data plane of an earlier run
/// (its TUNs existed), so forwarding went on while it was away and peers are
/// told so (Restart State and Forwarding State bits, RFC 4724 §3).
pub fn bgp_config(
    config: &Config,
    labels: &[(TenantId, Label)],
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
    restarting: bool,
    vrouter: std::sync::mpsc::Sender<Command>,
) -> anyhow::Result<Routing> {
    let bgp = bgp::spawn(bgp_config(&config, labels, restarting)?)
        .await
        .context("starting the BGP speaker")?;
    let handle = bgp.handle;
    let events = handle.subscribe().await?;
    tokio::spawn(install_routes(events, config.tunnel.address, vrouter));
    let sessions = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(track_sessions(
        handle.clone(),
        Arc::clone(&config),
        Arc::clone(&sessions),
    ));
    Ok(Routing { handle, sessions })
}

/// The routes known for one tenant and prefix, by route distinguisher.
type Candidates = BTreeMap<[u8; 8], ImportedRoute>;

/// Route events → VRF next hops, until the speaker stops.
async fn install_routes(
    mut events: tokio::sync::mpsc::UnboundedReceiver<RouteEvent>,
    own_address: IpAddr,
    vrouter: std::sync::mpsc::Sender<Command>,
) {
    let mut table: HashMap<(TenantId, IpNet), Candidates> = HashMap::new();
    while let Some(event) = events.recv().await {
        let key = (event.tenant, event.prefix.prefix);
        let candidates = table.entry(key).or_default();
        let before = chosen(candidates, own_address);
        match event.route {
            Some(route) => candidates.insert(event.prefix.rd.0, route),
            None => candidates.remove(&event.prefix.rd.0),
        };
        let after = chosen(candidates, own_address);
        if candidates.is_empty() {
            table.remove(&key);
        }
        if before == after {
            continue;
        }
        tracing::info!(tenant = key.0, prefix = %key.1, next_hop = ?after, "VRF route");
        let command = Command::Route {
            tenant: pisek_overlay::vrf::TenantId(key.0),
            prefix: key.1,
            next_hop: after,
        };
        if vrouter.send(command).is_err() {
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

/// Keeps the API's session list fresh.
async fn track_sessions(
    handle: BgpHandle,
    config: Arc<Config>,
    sessions: Arc<Mutex<Vec<BgpSessionInfo>>>,
) {
    let advertised: u64 = config.tenants.iter().map(|t| t.prefixes.len() as u64).sum();
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        interval.tick().await;
        let Ok(peers) = handle.sessions().await else {
            return;
        };
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
    use pisek_overlay::bgp::packet::PathAttributes;

    fn route(next_hop: &str, label: u32) -> ImportedRoute {
        ImportedRoute {
            next_hop: next_hop.parse().expect("address"),
            label: Label::new(label).expect("label"),
            attributes: Arc::new(PathAttributes::default()),
        }
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
        let client = bgp_config(&config(false), &[], false).expect("config");
        assert_eq!(client.listen_port, None);
        assert!(!client.peers[0].0.passive);
        let listening = bgp_config(&config(true), &[], false).expect("config");
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
