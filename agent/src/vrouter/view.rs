//! The API's view of the running data plane and BGP speaker
//! ([`DataplaneView`]): read from the forwarder's snapshot and the routing
//! task's session list, never from the packet path itself.

use super::forwarder::Snapshot;
use crate::api::{BgpSessionInfo, DataplaneView, DropCounter, PeerInfo, RouteInfo};
use crate::config::Config;
use crate::keyfile;
use pisek_overlay::vrf::NextHop;
use std::sync::{Arc, Mutex};

/// What `pisekctl peers | bgp | routes | drops` show, live.
pub struct LiveView {
    config: Arc<Config>,
    snapshot: Arc<Mutex<Snapshot>>,
    sessions: Arc<Mutex<Vec<BgpSessionInfo>>>,
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
        }
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
                    }
                })
                .collect(),
        )
    }

    fn bgp_sessions(&self) -> Option<Vec<BgpSessionInfo>> {
        self.sessions.lock().ok().map(|s| s.clone())
    }

    fn drops(&self) -> Vec<DropCounter> {
        self.snapshot()
            .drops
            .iter()
            .map(|(reason, packets)| DropCounter {
                reason: reason.to_string(),
                tenant: None,
                packets: *packets,
            })
            .collect()
    }
}
