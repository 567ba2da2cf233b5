//! What the forwarder thread shows the rest of the agent: a [`Snapshot`]
//! of peers, drops, routes and traffic, refreshed every 500 ms and read by
//! the API (`view.rs`) and the metrics, never by the packet path.

use ipnet::IpNet;
use pisek_overlay::drop::{DropCounters, DropReason};
use pisek_overlay::forward::TrafficCounters;
use pisek_overlay::vrf::{NextHop, TenantId};
use pisek_overlay::wg::WgDropCounters;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// One WireGuard peer as the API shows it.
#[derive(Debug, Clone)]
pub struct PeerSnapshot {
    /// Its public key.
    pub public_key: [u8; 32],
    /// Where its datagrams go.
    pub endpoint: Option<SocketAddr>,
    /// Seconds since the last completed handshake.
    pub last_handshake_secs: Option<u64>,
    /// Up for failover.
    pub up: bool,
    /// Decrypted bytes received.
    pub rx_bytes: u64,
    /// Bytes sent (before encryption).
    pub tx_bytes: u64,
    /// Decrypted packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Handshakes completed.
    pub handshakes: u64,
    /// Times its endpoint moved (roaming).
    pub endpoint_changes: u64,
    /// What WireGuard dropped from or to it, by reason.
    pub drops: WgDropCounters,
}

/// What the forwarder shows the rest of the agent, refreshed every 500 ms.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The forwarder thread runs.
    pub running: bool,
    /// WireGuard peers.
    pub peers: Vec<PeerSnapshot>,
    /// Drops by reason (every reason, zeros included): the pipeline's,
    /// and the forwarder's own (TUN writes that failed, offload reads that
    /// could not be split).
    pub drops: Vec<(DropReason, u64)>,
    /// Drops per tenant (a share of `drops`: those after the tenant was
    /// known, the failed writes to its TUN included).
    pub tenant_drops: BTreeMap<TenantId, DropCounters>,
    /// Every route of every VRF.
    pub routes: Vec<(TenantId, IpNet, NextHop)>,
    /// Traffic per tenant.
    pub tenants: BTreeMap<TenantId, TrafficCounters>,
}
