//! What the pipeline keeps per tenant besides its VRF: the addresses of
//! the tenant's workloads on this node (anti-spoofing) and its counters.

use super::counters::TrafficCounters;
use crate::drop::DropCounters;
use std::collections::HashSet;
use std::net::IpAddr;

/// A tenant as the pipeline sees it.
#[derive(Debug, Clone, Default)]
pub(crate) struct TenantState {
    /// Sources a packet from this tenant's TUN may carry: the addresses of
    /// its workloads attached on this node. Anything else is spoofed (the
    /// tenant's TUN only carries what the tenant's routing table sends it,
    /// and pods share that table, so the source is checked here).
    pub workloads: HashSet<IpAddr>,
    pub counters: TrafficCounters,
    /// Drops that happened once the packet's tenant was known (its TUN on
    /// egress, its label on ingress), like the vRouter's per-VRF
    /// dropstats. Each is in the node's total as well.
    pub drops: DropCounters,
}
