//! Per-peer counters and the reasons a WireGuard datagram or tunnel packet is
//! dropped, so an operator can tell "nothing arrives" from "everything is
//! refused" (like wireguard-go's `wg show` transfer line plus the vRouter's
//! dropstats).

use std::time::Instant;

/// Why the WireGuard layer dropped a packet. Each reason has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WgDropReason {
    /// The datagram is not a WireGuard message (wrong type, length or
    /// reserved bytes; whitepaper §5.4).
    Malformed,
    /// A handshake initiation whose MAC1 does not match our public key
    /// (whitepaper §5.4.4): not meant for us, or corrupted.
    BadMac,
    /// A handshake initiation from a static key that is not in the peer
    /// table. WireGuard answers nothing, so the sender learns nothing.
    UnknownPeer,
    /// A message whose receiver index names no peer of ours.
    UnknownIndex,
    /// A handshake message that failed authentication or decryption.
    HandshakeFailed,
    /// A replayed or too old data packet (counter already seen; RFC 6479
    /// sliding window, whitepaper §5.4.6).
    Replay,
    /// A data packet that does not decrypt under the session's key.
    DecryptFailed,
    /// A data packet for a session that no longer exists (expired or not
    /// yet confirmed).
    NoSession,
    /// A handshake while we were under load and the sender had no valid
    /// cookie: we answered with a cookie reply instead (whitepaper §5.3).
    UnderLoad,
    /// A decrypted packet whose source address is not routed to the peer it
    /// came from (crypto-key routing, whitepaper §2).
    SourceNotAllowed,
    /// A decrypted payload that is not a well-formed IPv4/IPv6 packet.
    BadInnerPacket,
    /// A tunnel packet whose destination no crypto-key route covers.
    NoRoute,
    /// A tunnel packet for a peer whose endpoint is still unknown (it has
    /// not spoken yet and none was configured).
    NoEndpoint,
    /// A tunnel packet that is not IPv4/IPv6 or is too big for the
    /// caller's buffer.
    BadTunnelPacket,
    /// A session that expired after its rekey attempts ran out.
    SessionExpired,
}

impl WgDropReason {
    /// Every reason, in the order the counters are kept.
    pub const ALL: [WgDropReason; 15] = [
        WgDropReason::Malformed,
        WgDropReason::BadMac,
        WgDropReason::UnknownPeer,
        WgDropReason::UnknownIndex,
        WgDropReason::HandshakeFailed,
        WgDropReason::Replay,
        WgDropReason::DecryptFailed,
        WgDropReason::NoSession,
        WgDropReason::UnderLoad,
        WgDropReason::SourceNotAllowed,
        WgDropReason::BadInnerPacket,
        WgDropReason::NoRoute,
        WgDropReason::NoEndpoint,
        WgDropReason::BadTunnelPacket,
        WgDropReason::SessionExpired,
    ];

    /// A short stable name for logs and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            WgDropReason::Malformed => "malformed",
            WgDropReason::BadMac => "bad_mac",
            WgDropReason::UnknownPeer => "unknown_peer",
            WgDropReason::UnknownIndex => "unknown_index",
            WgDropReason::HandshakeFailed => "handshake_failed",
            WgDropReason::Replay => "replay",
            WgDropReason::DecryptFailed => "decrypt_failed",
            WgDropReason::NoSession => "no_session",
            WgDropReason::UnderLoad => "under_load",
            WgDropReason::SourceNotAllowed => "source_not_allowed",
            WgDropReason::BadInnerPacket => "bad_inner_packet",
            WgDropReason::NoRoute => "no_route",
            WgDropReason::NoEndpoint => "no_endpoint",
            WgDropReason::BadTunnelPacket => "bad_tunnel_packet",
            WgDropReason::SessionExpired => "session_expired",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for WgDropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One counter per [`WgDropReason`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WgDropCounters {
    counts: [u64; WgDropReason::ALL.len()],
}

impl WgDropCounters {
    /// Counts one drop.
    pub fn count(&mut self, reason: WgDropReason) {
        self.counts[reason.slot()] += 1;
    }

    /// How many packets were dropped for `reason`.
    pub fn get(&self, reason: WgDropReason) -> u64 {
        self.counts[reason.slot()]
    }

    /// The sum over all reasons.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The non-zero counters, for display.
    pub fn nonzero(&self) -> impl Iterator<Item = (WgDropReason, u64)> + '_ {
        WgDropReason::ALL
            .iter()
            .map(|r| (*r, self.get(*r)))
            .filter(|(_, n)| *n > 0)
    }
}

/// What a peer has carried, for `pisekctl peers` and Prometheus.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerMetrics {
    /// When the last handshake with this peer completed (either side).
    pub last_handshake: Option<Instant>,
    /// Handshakes completed with this peer.
    pub handshakes: u64,
    /// Decrypted tunnel packets received from this peer.
    pub rx_packets: u64,
    /// Bytes of those tunnel packets.
    pub rx_bytes: u64,
    /// Tunnel packets encrypted and sent to this peer.
    pub tx_packets: u64,
    /// Bytes of those tunnel packets (before encryption).
    pub tx_bytes: u64,
    /// Times the peer's endpoint changed (roaming, whitepaper §2.1).
    pub endpoint_changes: u64,
    /// Drops attributed to this peer.
    pub drops: WgDropCounters,
}
