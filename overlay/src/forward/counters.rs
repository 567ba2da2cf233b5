//! Traffic counters of the pipeline, per tenant and for the fabric TUN.
//! Per-peer packets and bytes are WireGuard's ([`crate::wg::PeerMetrics`]),
//! drops are [`crate::drop::DropCounters`].

/// Packets and bytes in each direction. "Out" is towards the fabric
/// (egress, encapsulated and sent), "in" is towards the node (ingress,
/// delivered). Bytes are those of the tenant's (or kernel's) IP packet,
/// without overlay headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficCounters {
    /// Packets sent into the overlay.
    pub tx_packets: u64,
    /// Bytes sent into the overlay.
    pub tx_bytes: u64,
    /// Packets delivered out of the overlay.
    pub rx_packets: u64,
    /// Bytes delivered out of the overlay.
    pub rx_bytes: u64,
}

impl TrafficCounters {
    pub(crate) fn sent(&mut self, bytes: usize) {
        self.tx_packets = self.tx_packets.wrapping_add(1);
        self.tx_bytes = self.tx_bytes.wrapping_add(bytes as u64);
    }

    pub(crate) fn received(&mut self, bytes: usize) {
        self.rx_packets = self.rx_packets.wrapping_add(1);
        self.rx_bytes = self.rx_bytes.wrapping_add(bytes as u64);
    }
}
