//! WireGuard peers on boringtun's noise state machine (`boringtun::noise::Tunn`).
//!
//! - [`WgInterface`]: one static key and the peer table. Incoming datagrams
//!   are routed to their peer by receiver index (handshake initiations by the
//!   sender's static key), outgoing packets by crypto-key routing with a
//!   preferred and a backup peer per prefix, and every timer is driven from
//!   [`WgInterface::update_timers`].
//! - [`WgOutput`]: the caller's buffers; nothing here allocates per packet.
//! - [`CryptoKeyRoutes`]: destination prefix → preferred / backup peer.
//! - [`PeerMetrics`], [`WgDropReason`]: counters per peer and per reason.
//!
//! No I/O, no threads: the agent's `dataplane` owns the TUN and the socket.
//! Our own timers (failover, the rate limiter's reset) take `now` from the
//! caller; boringtun keeps its rekey and keepalive timers on its own
//! monotonic clock, which is why tests force a rekey with
//! [`WgInterface::expire_sessions`] instead of moving time.

mod interface;
mod metrics;
mod output;
mod peer;
mod routing;

pub use boringtun::x25519::{PublicKey, StaticSecret};
pub use interface::{WgError, WgInterface, WgSettings};
pub use metrics::{PeerMetrics, WgDropCounters, WgDropReason};
pub use output::{DATA_OVERHEAD, MIN_BUFFER_LEN, WgOutput};
pub use peer::{PeerConfig, PeerHealth, PeerId, PeerStatus};
pub use routing::{CryptoKeyRoute, CryptoKeyRoutes};

#[cfg(test)]
mod tests;
