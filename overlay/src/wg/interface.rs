//! The WireGuard interface: one static key, the peer table, the index table
//! and crypto-key routing, over boringtun's per-peer noise state machines.
//!
//! Flow of an incoming datagram (`receive`):
//! parse type → handshake initiation: MAC1 + load check (cookie reply under
//! load), decrypt the sender's static key, look the key up → other messages:
//! `receiver_index >> 8` names the peer → `Tunn::decapsulate` → learn the
//! endpoint (roaming) → source check against crypto-key routing → deliver;
//! handshake answers and packets queued during the handshake go back out.
//!
//! Flow of an outgoing packet (`send`): destination → crypto-key route →
//! preferred or backup peer → `Tunn::encapsulate` → datagram to its endpoint.
//!
//! Timers (`update_timers`) are driven from one place by the caller, about
//! every 100-250 ms: boringtun's rekey / keepalive / retry / expiry timers,
//! the shared rate limiter's reset, and failover.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use boringtun::noise::errors::WireGuardError;
use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Packet, Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use ipnet::IpNet;

use super::metrics::{WgDropCounters, WgDropReason};
use super::output::{DATA_OVERHEAD, MIN_BUFFER_LEN, WgOutput};
use super::peer::{Peer, PeerConfig, PeerHealth, PeerId, PeerStatus};
use super::routing::{CryptoKeyRoute, CryptoKeyRoutes};

/// WireGuard message type of a handshake initiation (whitepaper §5.4.2).
const MESSAGE_HANDSHAKE_INITIATION: u8 = 1;
/// WireGuard message type of a cookie reply (whitepaper §5.4.7).
const MESSAGE_COOKIE_REPLY: u8 = 3;
/// WireGuard message type of a transport data message (whitepaper §5.4.6).
const MESSAGE_DATA: u8 = 4;

/// Errors in setting up the interface (not per-packet: packets are dropped
/// with a [`WgDropReason`]).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WgError {
    /// The peer's public key is already in the table.
    #[error("a peer with this public key exists already ({0})")]
    DuplicatePeer(PeerId),
    /// The peer's public key is our own.
    #[error("a peer cannot have the interface's own public key")]
    OwnKey,
    /// All 2^24 peer ids are taken.
    #[error("the peer table is full")]
    TableFull,
    /// No peer with this id.
    #[error("no such peer: {0}")]
    UnknownPeer(PeerId),
}

/// Tunables of the interface.
#[derive(Debug, Clone)]
pub struct WgSettings {
    /// Handshake messages per second (all peers together) above which the
    /// interface is "under load" and answers initiations with cookie replies
    /// (whitepaper §5.3). Initiations count twice: once at the interface's
    /// gate, before the expensive Diffie-Hellman, and once in boringtun.
    pub handshake_rate_limit: u64,
    /// How long our handshake initiation may stay unanswered before the peer
    /// counts as down and routes switch to their backup peer.
    pub failover_after: Duration,
    /// How often a peer that is down is probed with a fresh initiation.
    pub probe_interval: Duration,
}

impl Default for WgSettings {
    fn default() -> WgSettings {
        WgSettings {
            handshake_rate_limit: 100,
            // Two REKEY_TIMEOUTs (whitepaper §6.1): one lost initiation is
            // not enough to move traffic to the other edge.
            failover_after: Duration::from_secs(10),
            probe_interval: Duration::from_secs(5),
        }
    }
}

/// A WireGuard interface: the protocol side, with no I/O.
pub struct WgInterface {
    secret: StaticSecret,
    public: PublicKey,
    settings: WgSettings,
    rate_limiter: Arc<RateLimiter>,
    last_rate_reset: Option<Instant>,
    /// The index table: slot `n` holds the peer with id `n`.
    peers: Vec<Option<Peer>>,
    by_key: HashMap<[u8; 32], PeerId>,
    routes: CryptoKeyRoutes,
    /// Drops that belong to no peer (unknown key or index, garbage).
    drops: WgDropCounters,
}

impl WgInterface {
    /// An interface with the static private key `secret` and no peers.
    pub fn new(secret: StaticSecret, settings: WgSettings) -> WgInterface {
        let public = PublicKey::from(&secret);
        let rate_limiter = Arc::new(RateLimiter::new(&public, settings.handshake_rate_limit));
        WgInterface {
            secret,
            public,
            settings,
            rate_limiter,
            last_rate_reset: None,
            peers: Vec::new(),
            by_key: HashMap::new(),
            routes: CryptoKeyRoutes::new(),
            drops: WgDropCounters::default(),
        }
    }

    /// Our static public key.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// Adds a peer and returns its id.
    pub fn add_peer(&mut self, config: PeerConfig) -> Result<PeerId, WgError> {
        let key = *config.public_key.as_bytes();
        if key == *self.public.as_bytes() {
            return Err(WgError::OwnKey);
        }
        if let Some(id) = self.by_key.get(&key) {
            return Err(WgError::DuplicatePeer(*id));
        }
        let slot = match self.peers.iter().position(Option::is_none) {
            Some(free) => free,
            None if self.peers.len() as u64 <= u64::from(PeerId::MAX) => {
                self.peers.push(None);
                self.peers.len() - 1
            }
            None => return Err(WgError::TableFull),
        };
        let id = PeerId(u32::try_from(slot).map_err(|_| WgError::TableFull)?);
        let tunn = Tunn::new(
            self.secret.clone(),
            config.public_key,
            config.preshared_key,
            config.persistent_keepalive,
            id.0,
            Some(Arc::clone(&self.rate_limiter)),
        );
        self.peers[slot] = Some(Peer::new(config, tunn));
        self.by_key.insert(key, id);
        Ok(id)
    }

    /// Removes a peer and every route through it.
    pub fn remove_peer(&mut self, id: PeerId) -> Result<(), WgError> {
        let peer = self
            .peers
            .get_mut(id.0 as usize)
            .and_then(Option::take)
            .ok_or(WgError::UnknownPeer(id))?;
        self.by_key.remove(peer.config.public_key.as_bytes());
        self.routes.remove_peer(id);
        Ok(())
    }

    /// The id of the peer with this public key.
    pub fn peer_by_key(&self, key: &PublicKey) -> Option<PeerId> {
        self.by_key.get(key.as_bytes()).copied()
    }

    /// Routes `prefix` to `preferred`, failing over to `backup`.
    pub fn add_route(
        &mut self,
        prefix: IpNet,
        preferred: PeerId,
        backup: Option<PeerId>,
    ) -> Result<(), WgError> {
        for id in std::iter::once(preferred).chain(backup) {
            if self.peer(id).is_none() {
                return Err(WgError::UnknownPeer(id));
            }
        }
        self.routes
            .insert(prefix, CryptoKeyRoute { preferred, backup });
        Ok(())
    }

    /// Removes the route for exactly `prefix`.
    pub fn remove_route(&mut self, prefix: IpNet) -> Option<CryptoKeyRoute> {
        self.routes.remove(prefix)
    }

    /// The crypto-key routing table.
    pub fn routes(&self) -> &CryptoKeyRoutes {
        &self.routes
    }

    /// The peer traffic to `addr` goes to now (after failover).
    pub fn route_to(&self, addr: IpAddr) -> Option<PeerId> {
        let route = self.routes.lookup(addr)?;
        Some(route.select(|p| self.health(p) == Some(PeerHealth::Down)))
    }

    /// A snapshot of one peer.
    pub fn peer_status(&self, id: PeerId) -> Option<PeerStatus> {
        self.peer(id).map(|p| PeerStatus {
            id,
            public_key: p.config.public_key,
            endpoint: p.endpoint,
            health: p.liveness.health,
            metrics: p.metrics.clone(),
        })
    }

    /// Snapshots of every peer, in id order.
    pub fn peers(&self) -> impl Iterator<Item = PeerStatus> + '_ {
        (0..self.peers.len()).filter_map(|slot| self.peer_status(PeerId(slot as u32)))
    }

    /// Drops that belong to no peer.
    pub fn drops(&self) -> &WgDropCounters {
        &self.drops
    }

    /// Forgets every session with `id`, as if they had expired: the next
    /// packet to the peer starts a new handshake. For operators ("rekey
    /// now") and for tests that must not wait REJECT_AFTER_TIME.
    pub fn expire_sessions(&mut self, id: PeerId) -> Result<(), WgError> {
        let secret = self.secret.clone();
        let public = self.public;
        let limiter = Arc::clone(&self.rate_limiter);
        let peer = self.peer_mut(id).ok_or(WgError::UnknownPeer(id))?;
        // boringtun clears every session when the static key is set, and
        // keeps the peer's identity, preshared key and timers.
        peer.tunn.set_static_private(secret, public, Some(limiter));
        Ok(())
    }

    /// Encrypts a tunnel packet for the peer that crypto-key routing picks
    /// for its destination, and hands the datagram to `out`.
    pub fn send(
        &mut self,
        packet: &[u8],
        now: Instant,
        out: &mut impl WgOutput,
    ) -> Result<PeerId, WgDropReason> {
        let Some(dst) = Tunn::dst_address(packet) else {
            self.drops.count(WgDropReason::BadTunnelPacket);
            return Err(WgDropReason::BadTunnelPacket);
        };
        let Some(id) = self.route_to(dst) else {
            self.drops.count(WgDropReason::NoRoute);
            return Err(WgDropReason::NoRoute);
        };
        self.send_to_peer(id, packet, now, out)?;
        Ok(id)
    }

    /// Encrypts a tunnel packet for `id` (a next hop the caller resolved
    /// itself) and hands the datagram to `out`. Before the first session is
    /// up the packet waits in boringtun's queue and a handshake goes out.
    pub fn send_to_peer(
        &mut self,
        id: PeerId,
        packet: &[u8],
        now: Instant,
        out: &mut impl WgOutput,
    ) -> Result<(), WgDropReason> {
        let Some(peer) = self.peers.get_mut(id.0 as usize).and_then(Option::as_mut) else {
            self.drops.count(WgDropReason::NoRoute);
            return Err(WgDropReason::NoRoute);
        };
        let Some(endpoint) = peer.endpoint else {
            peer.metrics.drops.count(WgDropReason::NoEndpoint);
            return Err(WgDropReason::NoEndpoint);
        };
        let buf = out.datagram_buffer();
        // boringtun panics on a short buffer; refuse instead.
        if buf.len() < (packet.len() + DATA_OVERHEAD).max(MIN_BUFFER_LEN) {
            peer.metrics.drops.count(WgDropReason::BadTunnelPacket);
            return Err(WgDropReason::BadTunnelPacket);
        }
        match peer.tunn.encapsulate(packet, buf) {
            TunnResult::WriteToNetwork(datagram) => {
                let len = datagram.len();
                note_sent(peer, datagram, now);
                out.send_datagram(len, endpoint);
                Ok(())
            }
            TunnResult::Err(e) => {
                let reason = drop_reason(&e, false);
                peer.metrics.drops.count(reason);
                Err(reason)
            }
            // Queued behind a handshake already in flight.
            _ => Ok(()),
        }
    }

    /// Handles one datagram from the underlay, received from `from`.
    /// Returns the peer it came from when it was authentic.
    pub fn receive(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
        now: Instant,
        out: &mut impl WgOutput,
    ) -> Result<PeerId, WgDropReason> {
        let id = match self.classify(datagram, from, out) {
            Ok(id) => id,
            Err(reason) => {
                self.drops.count(reason);
                return Err(reason);
            }
        };
        let Some(peer) = self.peers.get_mut(id.0 as usize).and_then(Option::as_mut) else {
            self.drops.count(WgDropReason::UnknownIndex);
            return Err(WgDropReason::UnknownIndex);
        };
        let is_data = datagram.first() == Some(&MESSAGE_DATA);
        let result = if is_data {
            let buf = out.tunnel_buffer();
            // boringtun panics when the plaintext does not fit.
            if buf.len() < datagram.len() {
                peer.metrics.drops.count(WgDropReason::BadInnerPacket);
                return Err(WgDropReason::BadInnerPacket);
            }
            peer.tunn.decapsulate(Some(from.ip()), datagram, buf)
        } else {
            peer.tunn
                .decapsulate(Some(from.ip()), datagram, out.datagram_buffer())
        };
        match result {
            TunnResult::Done => {
                // A keepalive, a cookie reply, or a data packet the session
                // accepted with nothing to deliver.
                if is_data {
                    authenticated(peer, from, now);
                }
                Ok(id)
            }
            TunnResult::WriteToNetwork(reply) if reply.first() == Some(&MESSAGE_COOKIE_REPLY) => {
                // boringtun's own load check fired: the cookie goes back to
                // the sender's address, which proves nothing about the peer.
                let len = reply.len();
                out.send_datagram(len, from);
                peer.metrics.drops.count(WgDropReason::UnderLoad);
                Err(WgDropReason::UnderLoad)
            }
            TunnResult::WriteToNetwork(reply) => {
                // A handshake response (we are the responder), or the
                // keepalive that confirms a session we initiated.
                let len = reply.len();
                authenticated(peer, from, now);
                peer.metrics.handshakes += 1;
                peer.metrics.last_handshake = Some(now);
                note_sent(peer, reply, now);
                out.send_datagram(len, from);
                flush_queue(peer, now, out);
                Ok(id)
            }
            TunnResult::WriteToTunnelV4(packet, src) => {
                let len = packet.len();
                self.deliver(id, IpAddr::V4(src), len, from, now, out)
            }
            TunnResult::WriteToTunnelV6(packet, src) => {
                let len = packet.len();
                self.deliver(id, IpAddr::V6(src), len, from, now, out)
            }
            TunnResult::Err(WireGuardError::UnderLoad) => {
                peer.metrics.drops.count(WgDropReason::UnderLoad);
                Err(WgDropReason::UnderLoad)
            }
            TunnResult::Err(e) => {
                let reason = drop_reason(&e, is_data);
                peer.metrics.drops.count(reason);
                Err(reason)
            }
        }
    }

    /// Drives every timer. Call it about every 100-250 ms with the current
    /// time; it never blocks and does nothing that is not due.
    pub fn update_timers(&mut self, now: Instant, out: &mut impl WgOutput) {
        // The shared limiter counts handshakes per second (whitepaper §5.3).
        if self
            .last_rate_reset
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1))
        {
            self.rate_limiter.reset_count();
            self.last_rate_reset = Some(now);
        }
        let failover_after = self.settings.failover_after;
        let probe_interval = self.settings.probe_interval;
        for peer in self.peers.iter_mut().flatten() {
            // Rekey, handshake retry, keepalive and expiry live in boringtun.
            if let TunnResult::WriteToNetwork(datagram) =
                peer.tunn.update_timers(out.datagram_buffer())
                && let Some(endpoint) = peer.endpoint
            {
                let len = datagram.len();
                note_sent(peer, datagram, now);
                out.send_datagram(len, endpoint);
            }
            peer.liveness.evaluate(now, failover_after);
            // A peer that is down gets no traffic, so once boringtun's own
            // retries run out (REKEY_ATTEMPT_TIME) nothing would try again:
            // probe it with a fresh initiation, to fail back when it returns.
            if peer.liveness.health == PeerHealth::Down
                && peer
                    .liveness
                    .last_probe
                    .is_none_or(|t| now.saturating_duration_since(t) >= probe_interval)
                && let Some(endpoint) = peer.endpoint
            {
                peer.liveness.last_probe = Some(now);
                if let TunnResult::WriteToNetwork(datagram) = peer
                    .tunn
                    .format_handshake_initiation(out.datagram_buffer(), true)
                {
                    let len = datagram.len();
                    out.send_datagram(len, endpoint);
                }
            }
        }
    }

    /// Sends a handshake initiation to every peer with a known endpoint:
    /// at start, so that peers behind NAT (which only this side's restart
    /// made forget their session) are back within one round trip instead
    /// of after their own rekey timeout. Returns how many were sent.
    pub fn initiate_handshakes(&mut self, now: Instant, out: &mut impl WgOutput) -> usize {
        let mut sent = 0;
        for peer in self.peers.iter_mut().flatten() {
            let Some(endpoint) = peer.endpoint else {
                continue;
            };
            if let TunnResult::WriteToNetwork(datagram) = peer
                .tunn
                .format_handshake_initiation(out.datagram_buffer(), false)
            {
                let len = datagram.len();
                note_sent(peer, datagram, now);
                out.send_datagram(len, endpoint);
                sent += 1;
            }
        }
        sent
    }

    fn peer(&self, id: PeerId) -> Option<&Peer> {
        self.peers.get(id.0 as usize).and_then(Option::as_ref)
    }

    fn peer_mut(&mut self, id: PeerId) -> Option<&mut Peer> {
        self.peers.get_mut(id.0 as usize).and_then(Option::as_mut)
    }

    fn health(&self, id: PeerId) -> Option<PeerHealth> {
        self.peer(id).map(|p| p.liveness.health)
    }

    /// Finds the peer a datagram is for, before any per-peer work.
    fn classify(
        &self,
        datagram: &[u8],
        from: SocketAddr,
        out: &mut impl WgOutput,
    ) -> Result<PeerId, WgDropReason> {
        let packet = Tunn::parse_incoming_packet(datagram).map_err(|_| WgDropReason::Malformed)?;
        match packet {
            Packet::HandshakeInit(ref init) => {
                // MAC1 and the load check come before the Diffie-Hellman
                // that reveals the sender's key, so garbage and floods cost
                // little (whitepaper §5.3).
                match self.rate_limiter.verify_packet(
                    Some(from.ip()),
                    datagram,
                    out.datagram_buffer(),
                ) {
                    Ok(_) => {}
                    Err(TunnResult::WriteToNetwork(cookie)) => {
                        let len = cookie.len();
                        out.send_datagram(len, from);
                        return Err(WgDropReason::UnderLoad);
                    }
                    Err(TunnResult::Err(WireGuardError::UnderLoad)) => {
                        return Err(WgDropReason::UnderLoad);
                    }
                    Err(TunnResult::Err(WireGuardError::InvalidMac)) => {
                        return Err(WgDropReason::BadMac);
                    }
                    Err(_) => return Err(WgDropReason::Malformed),
                }
                let half = parse_handshake_anon(&self.secret, &self.public, init)
                    .map_err(|_| WgDropReason::HandshakeFailed)?;
                self.by_key
                    .get(&half.peer_static_public)
                    .copied()
                    .ok_or(WgDropReason::UnknownPeer)
            }
            Packet::HandshakeResponse(p) => Ok(PeerId::from_receiver_index(p.receiver_idx)),
            Packet::PacketCookieReply(p) => Ok(PeerId::from_receiver_index(p.receiver_idx)),
            Packet::PacketData(p) => Ok(PeerId::from_receiver_index(p.receiver_idx)),
        }
    }

    /// A decrypted packet: check its source, then hand it on.
    fn deliver(
        &mut self,
        id: PeerId,
        source: IpAddr,
        len: usize,
        from: SocketAddr,
        now: Instant,
        out: &mut impl WgOutput,
    ) -> Result<PeerId, WgDropReason> {
        let allowed = self.routes.allows_source(source, id);
        let Some(peer) = self.peer_mut(id) else {
            return Err(WgDropReason::UnknownIndex);
        };
        // The packet is authentic even when its source is not allowed, so
        // the peer is alive and its endpoint is where it came from.
        authenticated(peer, from, now);
        if !allowed {
            peer.metrics.drops.count(WgDropReason::SourceNotAllowed);
            return Err(WgDropReason::SourceNotAllowed);
        }
        peer.metrics.rx_packets += 1;
        peer.metrics.rx_bytes += len as u64;
        out.deliver_to_tunnel(len, id);
        Ok(id)
    }
}

/// An authenticated message arrived from `peer` at `from`.
fn authenticated(peer: &mut Peer, from: SocketAddr, now: Instant) {
    peer.learn_endpoint(from);
    peer.liveness.heard(now);
}

/// Bookkeeping for a datagram about to go to `peer`.
fn note_sent(peer: &mut Peer, datagram: &[u8], now: Instant) {
    match datagram.first() {
        Some(&MESSAGE_HANDSHAKE_INITIATION) => peer.liveness.initiation_sent(now),
        // A keepalive carries no tunnel packet.
        Some(&MESSAGE_DATA) if datagram.len() > DATA_OVERHEAD => {
            peer.metrics.tx_packets += 1;
            peer.metrics.tx_bytes += (datagram.len() - DATA_OVERHEAD) as u64;
        }
        _ => {}
    }
}

/// Sends the packets boringtun queued while the handshake was in flight
/// (call `decapsulate` with an empty datagram until it is `Done`).
fn flush_queue(peer: &mut Peer, now: Instant, out: &mut impl WgOutput) {
    let Some(endpoint) = peer.endpoint else {
        return;
    };
    while let TunnResult::WriteToNetwork(datagram) =
        peer.tunn.decapsulate(None, &[], out.datagram_buffer())
    {
        let len = datagram.len();
        note_sent(peer, datagram, now);
        out.send_datagram(len, endpoint);
    }
}

/// Maps boringtun's error onto the drop it causes.
fn drop_reason(e: &WireGuardError, is_data: bool) -> WgDropReason {
    match e {
        WireGuardError::DuplicateCounter | WireGuardError::InvalidCounter => WgDropReason::Replay,
        WireGuardError::InvalidAeadTag if is_data => WgDropReason::DecryptFailed,
        WireGuardError::NoCurrentSession | WireGuardError::WrongIndex if is_data => {
            WgDropReason::NoSession
        }
        WireGuardError::InvalidPacket if is_data => WgDropReason::BadInnerPacket,
        WireGuardError::InvalidMac => WgDropReason::BadMac,
        WireGuardError::UnderLoad => WgDropReason::UnderLoad,
        WireGuardError::ConnectionExpired => WgDropReason::SessionExpired,
        WireGuardError::DestinationBufferTooSmall => WgDropReason::BadTunnelPacket,
        WireGuardError::IncorrectPacketLength | WireGuardError::InvalidPacket => {
            WgDropReason::Malformed
        }
        _ => WgDropReason::HandshakeFailed,
    }
}
