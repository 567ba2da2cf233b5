//! Ingress: datagrams from the underlay to the node, or on to another node.
//!
//! Underlay batch → WireGuard decrypt (handshake answers and packets that
//! waited for the handshake go out to the underlay batch) → outer header:
//! - for this node's tunnel address, MPLSoUDP (UDP port 6635) or MPLSoGRE
//!   → decap → label table: label → tenant → link-scoped inner addresses
//!   dropped → VRF LPM of the inner destination → Local: the tenant's TUN
//!   (a drop from here on counts for the tenant as well as the node);
//! - for this node's tunnel address, anything else → the fabric TUN (the
//!   kernel: iBGP, pings to the tunnel address);
//! - for another node's tunnel address, on the edge → outer TTL − 1 →
//!   WireGuard towards that node's peer, MPLS untouched (hub and spoke).

use super::batch::{Interface, NO_ENDPOINT, PacketBatch};
use super::header::{IpHeader, TunnelKind};
use super::sink::WgSink;
use super::{ForwardOutput, Pipeline, Role, send_drop_reason};
use crate::drop::DropReason;
use crate::packet::{MplsOverGre, MplsOverUdp, RxChecksum, ttl};
use crate::vrf::{NextHop, Vrf};
use crate::wg::WgDropReason;
use std::net::SocketAddr;
use std::time::Instant;

impl Pipeline {
    /// Handles a batch of datagrams read from the underlay socket (each
    /// with the endpoint it came from). Packets for the node go to
    /// `out.local`, datagrams to send (handshake answers, relayed packets)
    /// to `out.underlay`.
    pub fn ingress_batch(
        &mut self,
        datagrams: &PacketBatch,
        now: Instant,
        out: &mut ForwardOutput,
    ) {
        for index in 0..datagrams.len() {
            if let Some((datagram, from)) = datagrams.datagram(index) {
                self.ingress_datagram(datagram, from, now, out);
            }
        }
    }

    /// [`ingress_batch`](Self::ingress_batch) for one datagram, for a
    /// caller that holds its received datagrams in its own buffers (no
    /// copy into a [`PacketBatch`]). The caller keeps room in `out`: a
    /// datagram may produce a few outputs (a completed handshake sends the
    /// packets that waited for it).
    pub fn ingress_datagram(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
        now: Instant,
        out: &mut ForwardOutput,
    ) {
        // Taken out of `self`, so that the decrypted packet and the
        // pipeline can be borrowed at once; no allocation.
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut sink = WgSink::new(&mut out.underlay, &mut self.overflow, &mut scratch);
        let received = self.wg.receive(datagram, from, now, &mut sink);
        let (delivered, overflowed) = (sink.delivered, sink.overflowed);
        self.drops.record_many(DropReason::QueueFull, overflowed);
        match received {
            // WireGuard counts the precise reason (replay, bad MAC,
            // unknown peer...) itself; this is the pipeline's summary.
            Err(reason) => self.drops.record(receive_drop_reason(reason)),
            Ok(_) => {
                if let Some((len, _peer)) = delivered {
                    let packet = scratch.get_mut(..len).unwrap_or_default();
                    self.deliver_decrypted(packet, now, out);
                }
            }
        }
        self.scratch = scratch;
    }

    /// The stage after WireGuard: forwards one decrypted tunnel packet
    /// (decap and deliver, hand to the kernel, or relay). Public for the
    /// fuzz target and for callers that decrypt elsewhere; drops are
    /// counted.
    pub fn deliver_decrypted(&mut self, packet: &mut [u8], now: Instant, out: &mut ForwardOutput) {
        if let Err(reason) = self.forward_decrypted(packet, now, out) {
            self.drops.record(reason);
        }
    }

    fn forward_decrypted(
        &mut self,
        packet: &mut [u8],
        now: Instant,
        out: &mut ForwardOutput,
    ) -> Result<(), DropReason> {
        let header = IpHeader::parse(packet).ok_or(DropReason::Malformed)?;
        if header.destination != self.config.tunnel_address {
            return self.relay(packet, now, out);
        }
        let decapsulated = match header.tunnel_kind(packet) {
            TunnelKind::None => {
                if !out.local.push_with(packet, NO_ENDPOINT, Interface::Fabric) {
                    return Err(DropReason::QueueFull);
                }
                self.fabric.received(packet.len());
                return Ok(());
            }
            // WireGuard's AEAD authenticated every byte: no checksum adds
            // to that (RxChecksum::Trust).
            TunnelKind::MplsOverUdp => MplsOverUdp::decapsulate(packet, RxChecksum::Trust),
            TunnelKind::MplsOverGre => MplsOverGre::decapsulate(packet, RxChecksum::Trust),
        }
        .map_err(|e| e.drop_reason())?;

        // Labels are per VRF (RFC 4364 §4.3.2): the label names the tenant.
        // Until the VRF is found, a drop is the node's only.
        let tenant = self
            .vrfs
            .labels()
            .tenant(decapsulated.entry.label)
            .ok_or(DropReason::BadLabel)?;
        let vrf = self.vrfs.get(tenant).ok_or(DropReason::BadLabel)?;
        // One tenant lookup serves the traffic and the drop counters.
        let state = self.tenants.entry(tenant).or_default();
        let inner = decapsulated.inner;
        match deliver_in_vrf(vrf, inner, &mut out.local) {
            Ok(()) => {
                state.counters.received(inner.len());
                Ok(())
            }
            Err(reason) => {
                state.drops.record(reason);
                Err(reason)
            }
        }
    }

    /// A packet for another node's tunnel address: the edge sends it on
    /// as it is (an IP router on the tunnel network: the outer TTL drops
    /// by one, so a routing loop ends); a gateway refuses it.
    fn relay(
        &mut self,
        packet: &mut [u8],
        now: Instant,
        out: &mut ForwardOutput,
    ) -> Result<(), DropReason> {
        if self.config.role != Role::Edge {
            return Err(DropReason::NotForThisNode);
        }
        ttl::decrement(packet).map_err(|e| e.drop_reason())?;
        let mut sink = WgSink::new(&mut out.underlay, &mut self.overflow, &mut []);
        let sent = self.wg.send(packet, now, &mut sink);
        let overflowed = sink.overflowed;
        self.drops.record_many(DropReason::QueueFull, overflowed);
        sent.map(|_| ()).map_err(send_drop_reason)
    }
}

/// Delivers a decapsulated packet through its tenant's VRF to the
/// tenant's TUN (in `local`), or says why not.
fn deliver_in_vrf(vrf: &Vrf, inner: &[u8], local: &mut PacketBatch) -> Result<(), DropReason> {
    let header = IpHeader::parse(inner).ok_or(DropReason::Malformed)?;
    // A sending agent never tunnels link-scoped packets (egress drops
    // them); one that arrives anyway must not reach the node's kernel
    // through the TUN, where a link-local or multicast destination would
    // be taken for the host's own.
    if header.is_link_scoped() {
        return Err(DropReason::LinkScoped);
    }
    match vrf.lookup(header.destination) {
        Some(NextHop::Local(_)) => {}
        Some(NextHop::Discard) => return Err(DropReason::DiscardRoute),
        // The sender chose this node for the prefix; a route elsewhere
        // here means the tables disagree: never send it on (no loops).
        Some(NextHop::Tunnel { .. }) | None => return Err(DropReason::NoRoute),
    }
    if local.push_with(inner, NO_ENDPOINT, Interface::Tenant(vrf.tenant())) {
        Ok(())
    } else {
        Err(DropReason::QueueFull)
    }
}

/// The pipeline's reason for a datagram WireGuard refused.
fn receive_drop_reason(reason: WgDropReason) -> DropReason {
    match reason {
        // Authentic, but from an address the peer may not use: the peer
        // spoofs (crypto-key routing is anti-spoofing, whitepaper §2).
        WgDropReason::SourceNotAllowed => DropReason::SpoofedSource,
        WgDropReason::Malformed | WgDropReason::BadInnerPacket => DropReason::Malformed,
        _ => DropReason::DecryptFailed,
    }
}
