//! The RIB as an operator reads it (`pisekctl bgp rib`, like `show bgp
//! vpnv4 all`): every path of every VPN prefix with its RD, label, route
//! targets, next hop, the peer it came from, whether it is the best, stale,
//! and its age.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::Speaker;
use crate::bgp::packet::{RouteTarget, VpnPrefix};
use crate::bgp::policy::TenantId;
use crate::bgp::rib::LOCAL;
use crate::packet::Label;

/// One path of the RIB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RibPath {
    /// RD and prefix.
    pub prefix: VpnPrefix,
    /// The label to push toward the next hop.
    pub label: Label,
    /// The BGP next hop.
    pub next_hop: Option<IpAddr>,
    /// The route targets among its extended communities.
    pub route_targets: Vec<RouteTarget>,
    /// The peer it came from; `None`: this node originated it.
    pub from: Option<IpAddr>,
    /// The best path of its prefix.
    pub best: bool,
    /// Kept across the sender's restart, waiting for a refresh.
    pub stale: bool,
    /// Since it was learned or last changed.
    pub age: Duration,
    /// LOCAL_PREF, if sent.
    pub local_pref: Option<u32>,
    /// The VRFs that import it.
    pub tenants: Vec<TenantId>,
}

impl Speaker {
    /// Every path of the RIB, sorted by prefix (best path first).
    pub fn rib_paths(&self, now: Instant) -> Vec<RibPath> {
        let mut rows: Vec<RibPath> = self
            .rib
            .iter_paths()
            .map(|(prefix, path, best)| RibPath {
                prefix: *prefix,
                label: path.label,
                next_hop: path.attrs.next_hop,
                route_targets: path
                    .attrs
                    .ext_communities
                    .iter()
                    .filter_map(|c| RouteTarget::from_ext_community(*c))
                    .collect(),
                from: (path.source != LOCAL)
                    .then(|| self.peers.get(usize::from(path.source) - 1))
                    .flatten()
                    .map(|p| p.config.address),
                best,
                stale: path.stale,
                age: now.saturating_duration_since(path.since),
                local_pref: path.attrs.local_pref,
                tenants: self.policy.importers(&path.attrs),
            })
            .collect();
        rows.sort_by_cached_key(|r| {
            (
                r.prefix.prefix.addr().is_ipv6(),
                r.prefix.rd.to_string(),
                r.prefix.prefix,
                !r.best,
                r.from,
            )
        });
        rows
    }
}
