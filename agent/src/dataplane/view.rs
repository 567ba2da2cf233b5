//! The API's view of the running data plane and BGP speaker
//! ([`DataplaneView`]): read from the forwarder's snapshot and the routing
//! task's session list, never from the packet path itself.

use super::snapshot::Snapshot;
use crate::api::{BgpSessionInfo, DataplaneView, DropCounter, PeerInfo, RouteInfo};
use crate::config::Config;
use crate::keyfile;
use pisek_overlay::bgp::import::VrfRoutes;
use pisek_overlay::drop::DropCounters;
use pisek_overlay::vrf::NextHop;
use pisek_overlay::wg::WgDropCounters;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// What `pisekctl peers | bgp | routes | drops` show, live.
pub struct LiveView {
    config: Arc<Config>,
    snapshot: Arc<Mutex<Snapshot>>,
    sessions: Arc<Mutex<Vec<BgpSessionInfo>>>,
    vrf_routes: Option<Arc<Mutex<VrfRoutes>>>,
}

impl LiveView {
    /// A view over the forwarder's snapshot and the BGP session list.
    pub fn new(
        config: Arc<Config>,
        snapshot: Arc<Mutex<Snapshot>>,
        sessions: Arc<Mutex<Vec<BgpSessionInfo>>>,
    ) -> LiveView {
        LiveView {
            config,
            snapshot,
            sessions,
            vrf_routes: None,
        }
    }

    /// Also shows what the VRF route table refused.
    pub fn with_vrf_routes(mut self, vrf_routes: Arc<Mutex<VrfRoutes>>) -> LiveView {
        self.vrf_routes = Some(vrf_routes);
        self
    }

    fn snapshot(&self) -> Snapshot {
        self.snapshot.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl DataplaneView for LiveView {
    fn running(&self) -> bool {
        self.snapshot.lock().is_ok_and(|s| s.running)
    }

    fn remote_routes(&self, tenant: Option<&str>) -> Vec<RouteInfo> {
        let snapshot = self.snapshot();
        snapshot
            .routes
            .iter()
            .filter_map(|(id, prefix, next_hop)| {
                let name = &self.config.tenants.iter().find(|t| t.id == id.0)?.name;
                if tenant.is_some_and(|t| t != name) {
                    return None;
                }
                let NextHop::Tunnel {
                    endpoint, label, ..
                } = next_hop
                else {
                    return None;
                };
                Some(RouteInfo {
                    tenant: name.clone(),
                    prefix: prefix.to_string(),
                    source: "bgp".into(),
                    interface: None,
                    next_hop: Some(*endpoint),
                    label: Some(label.value()),
                })
            })
            .collect()
    }

    fn peers(&self) -> Option<Vec<PeerInfo>> {
        let snapshot = self.snapshot();
        Some(
            self.config
                .wireguard
                .peers
                .iter()
                .map(|peer| {
                    let live = keyfile::parse_public_key(&peer.public_key)
                        .ok()
                        .and_then(|key| {
                            snapshot
                                .peers
                                .iter()
                                .find(|p| p.public_key == *key.as_bytes())
                        });
                    PeerInfo {
                        name: peer.name.clone(),
                        public_key: peer.public_key.clone(),
                        endpoint: live
                            .and_then(|p| p.endpoint)
                            .or(peer.endpoint)
                            .map(|e| e.to_string()),
                        tunnel_address: peer.tunnel_address,
                        last_handshake_secs: live.and_then(|p| p.last_handshake_secs),
                        rx_bytes: live.map_or(0, |p| p.rx_bytes),
                        tx_bytes: live.map_or(0, |p| p.tx_bytes),
                        rx_packets: live.map_or(0, |p| p.rx_packets),
                        tx_packets: live.map_or(0, |p| p.tx_packets),
                        handshakes: live.map_or(0, |p| p.handshakes),
                        endpoint_changes: live.map_or(0, |p| p.endpoint_changes),
                        drops: live.map(|p| peer_drops(&p.drops)).unwrap_or_default(),
                    }
                })
                .collect(),
        )
    }

    fn bgp_sessions(&self) -> Option<Vec<BgpSessionInfo>> {
        self.sessions.lock().ok().map(|s| s.clone())
    }

    fn drops(&self) -> Vec<DropCounter> {
        drop_rows(&self.config, &self.snapshot())
    }

    fn refused_routes(&self) -> Option<u64> {
        let routes = self.vrf_routes.as_ref()?;
        routes.lock().ok().map(|r| r.refused())
    }
}

/// The drop list: for each reason, the node's total, then each tenant's
/// count (tenants sorted by name), every reason and tenant listed, zeros
/// included, so a scraper's series exist from the start.
fn drop_rows(config: &Config, snapshot: &Snapshot) -> Vec<DropCounter> {
    let mut tenants: Vec<(&str, &DropCounters)> = snapshot
        .tenant_drops
        .iter()
        .filter_map(|(id, drops)| {
            // A tenant gone from the config has no name to show.
            let tenant = config.tenants.iter().find(|t| t.id == id.0)?;
            Some((tenant.name.as_str(), drops))
        })
        .collect();
    tenants.sort_by_key(|(name, _)| *name);
    let mut rows = Vec::with_capacity(snapshot.drops.len() * (1 + tenants.len()));
    for (reason, packets) in &snapshot.drops {
        rows.push(DropCounter {
            reason: reason.to_string(),
            tenant: None,
            packets: *packets,
        });
        for (name, drops) in &tenants {
            rows.push(DropCounter {
                reason: reason.to_string(),
                tenant: Some(name.to_string()),
                packets: drops.get(*reason),
            });
        }
    }
    rows
}

/// A peer's WireGuard drops by reason, the reasons with drops only, named
/// in kebab case like the data plane's (`decrypt-failed`).
fn peer_drops(drops: &WgDropCounters) -> BTreeMap<String, u64> {
    drops
        .nonzero()
        .map(|(reason, packets)| (reason.name().replace('_', "-"), packets))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Role;
    use crate::config::fixture::{AgentToml, TenantToml};
    use pisek_overlay::drop::DropReason;
    use pisek_overlay::vrf::TenantId;
    use pisek_overlay::wg::WgDropReason;

    fn config() -> Config {
        AgentToml::new("gw-test", Role::Gateway, "10.255.0.11", "/nonexistent")
            .tenant(TenantToml::new("conference", 2).prefixes(["10.2.1.0/24"]))
            .tenant(TenantToml::new("city", 1).prefixes(["10.1.1.0/24"]))
            .config()
    }

    fn row(reason: DropReason, tenant: Option<&str>, packets: u64) -> DropCounter {
        DropCounter {
            reason: reason.to_string(),
            tenant: tenant.map(str::to_string),
            packets,
        }
    }

    #[test]
    fn each_reason_lists_the_node_total_then_every_tenant_by_name() {
        let config = config();
        let mut city = DropCounters::new();
        city.record_many(DropReason::SpoofedSource, 3);
        let mut conference = DropCounters::new();
        conference.record(DropReason::NoRoute);
        let mut node = city.clone();
        node.merge(&conference);
        node.record(DropReason::BadLabel);
        let snapshot = Snapshot {
            drops: node.iter().collect(),
            tenant_drops: BTreeMap::from([
                (TenantId(2), conference),
                (TenantId(1), city),
                // Gone from the config: no name, no rows.
                (TenantId(9), DropCounters::new()),
            ]),
            ..Snapshot::default()
        };
        let rows = drop_rows(&config, &snapshot);
        assert_eq!(rows.len(), 3 * DropReason::COUNT);
        assert_eq!(
            rows[..3],
            [
                row(DropReason::NoRoute, None, 1),
                row(DropReason::NoRoute, Some("city"), 0),
                row(DropReason::NoRoute, Some("conference"), 1),
            ]
        );
        let nonzero: Vec<_> = rows.into_iter().filter(|r| r.packets > 0).collect();
        assert_eq!(
            nonzero,
            [
                row(DropReason::NoRoute, None, 1),
                row(DropReason::NoRoute, Some("conference"), 1),
                row(DropReason::BadLabel, None, 1),
                row(DropReason::SpoofedSource, None, 3),
                row(DropReason::SpoofedSource, Some("city"), 3),
            ]
        );
    }

    #[test]
    fn a_peers_drops_name_only_the_reasons_that_happened_in_kebab_case() {
        let mut drops = WgDropCounters::default();
        drops.count(WgDropReason::DecryptFailed);
        drops.count(WgDropReason::DecryptFailed);
        drops.count(WgDropReason::SourceNotAllowed);
        assert_eq!(
            peer_drops(&drops),
            BTreeMap::from([
                ("decrypt-failed".to_string(), 2),
                ("source-not-allowed".to_string(), 1),
            ])
        );
        assert!(peer_drops(&WgDropCounters::default()).is_empty());
    }
}
