//! One WireGuard peer: its configuration, boringtun's noise state machine,
//! the endpoint it was last heard from, its health for failover, and its
//! counters.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use boringtun::noise::Tunn;
use boringtun::x25519::PublicKey;

use super::metrics::PeerMetrics;

/// A peer's place in the index table. boringtun puts `id << 8` (plus a
/// session counter in the low byte) into every receiver index it hands out,
/// so an incoming message names its peer as `receiver_index >> 8`
/// (whitepaper §5.4.1, "sender index").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u32);

impl PeerId {
    /// The largest id: receiver indices are 32 bits and boringtun keeps the
    /// low 8 for its session ring.
    pub const MAX: u32 = (1 << 24) - 1;

    /// The peer a receiver index belongs to.
    pub fn from_receiver_index(index: u32) -> PeerId {
        PeerId(index >> 8)
    }
}

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "peer#{}", self.0)
    }
}

/// What the agent's configuration says about a peer.
#[derive(Clone)]
pub struct PeerConfig {
    /// The peer's static public key.
    pub public_key: PublicKey,
    /// Optional preshared key mixed into the handshake (whitepaper §5.2).
    pub preshared_key: Option<[u8; 32]>,
    /// Where to send until the peer speaks from somewhere else; `None` for
    /// a peer behind NAT that always initiates (a gateway, seen from the
    /// edge).
    pub endpoint: Option<SocketAddr>,
    /// Seconds between keepalives while idle, so a NAT mapping stays open
    /// (whitepaper §6.5); `None` turns it off.
    pub persistent_keepalive: Option<u16>,
}

impl std::fmt::Debug for PeerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The preshared key is a secret: say whether there is one, not what.
        f.debug_struct("PeerConfig")
            .field("public_key", self.public_key.as_bytes())
            .field("preshared_key", &self.preshared_key.map(|_| "<set>"))
            .field("endpoint", &self.endpoint)
            .field("persistent_keepalive", &self.persistent_keepalive)
            .finish()
    }
}

/// Whether a peer answers, for failover between a preferred and a backup
/// peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerHealth {
    /// Not tried yet, or answering: routes may use it.
    Up,
    /// Our handshakes went unanswered for the failover time: routes with a
    /// backup use the backup until this peer answers a probe.
    Down,
}

/// The failover bookkeeping of one peer, driven by `now` from the caller.
#[derive(Debug, Clone)]
pub(crate) struct Liveness {
    /// When we sent the first initiation still unanswered.
    pub handshake_pending_since: Option<Instant>,
    /// When we last got an authenticated message from the peer.
    pub last_heard: Option<Instant>,
    /// When we last probed a peer that is down.
    pub last_probe: Option<Instant>,
    pub health: PeerHealth,
}

impl Liveness {
    fn new() -> Liveness {
        Liveness {
            handshake_pending_since: None,
            last_heard: None,
            last_probe: None,
            health: PeerHealth::Up,
        }
    }

    /// We sent a handshake initiation.
    pub fn initiation_sent(&mut self, now: Instant) {
        self.handshake_pending_since.get_or_insert(now);
    }

    /// The peer sent something authenticated: it is alive.
    pub fn heard(&mut self, now: Instant) {
        self.handshake_pending_since = None;
        self.last_heard = Some(now);
        self.health = PeerHealth::Up;
    }

    /// Marks the peer down once an initiation has waited `failover_after`.
    pub fn evaluate(&mut self, now: Instant, failover_after: Duration) {
        if let Some(since) = self.handshake_pending_since
            && now.saturating_duration_since(since) >= failover_after
        {
            self.health = PeerHealth::Down;
        }
    }
}

/// A peer in the table.
pub(crate) struct Peer {
    pub config: PeerConfig,
    pub tunn: Tunn,
    pub endpoint: Option<SocketAddr>,
    pub liveness: Liveness,
    pub metrics: PeerMetrics,
}

impl Peer {
    pub fn new(config: PeerConfig, tunn: Tunn) -> Peer {
        Peer {
            endpoint: config.endpoint,
            config,
            tunn,
            liveness: Liveness::new(),
            metrics: PeerMetrics::default(),
        }
    }

    /// Roaming (whitepaper §2.1): the endpoint is wherever the last
    /// authenticated message came from.
    pub fn learn_endpoint(&mut self, from: SocketAddr) {
        if self.endpoint != Some(from) {
            if self.endpoint.is_some() {
                self.metrics.endpoint_changes += 1;
            }
            self.endpoint = Some(from);
        }
    }
}

/// A snapshot of one peer for display and metrics.
#[derive(Debug, Clone)]
pub struct PeerStatus {
    /// The peer's index-table id.
    pub id: PeerId,
    /// The peer's static public key.
    pub public_key: PublicKey,
    /// Where its datagrams go now.
    pub endpoint: Option<SocketAddr>,
    /// Up or down for failover.
    pub health: PeerHealth,
    /// Its counters.
    pub metrics: PeerMetrics,
}
