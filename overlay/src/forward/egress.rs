//! Egress: packets from the node into the overlay.
//!
//! Tenant TUN batch → link-scoped addresses dropped (the kernel's own
//! chatter on the TUN) → anti-spoofing (source is one of the tenant's
//! workloads) → VRF LPM → Local: back out of the tenant TUN / Tunnel:
//! inner TTL − 1 (ICMP "time exceeded" back) → MTU check (ICMP "too big" back to the workload) →
//! MPLSoUDP or MPLSoGRE encap in place, into the slot's headroom →
//! WireGuard: crypto-key routing on the outer destination → encrypt →
//! underlay batch. Drops are tallied per batch and added once to the
//! tenant's counters and the node's.
//!
//! Fabric TUN batch (`pisek0`, the kernel's traffic on the tunnel network)
//! → WireGuard → underlay batch: no MPLS, the packet is already addressed
//! to a tunnel address.

use super::batch::{Interface, PacketBatch};
use super::header::IpHeader;
use super::icmp_error;
use super::sink::WgSink;
use super::{ForwardOutput, Pipeline, send_drop_reason};
use crate::drop::{DropCounters, DropReason};
use crate::packet::{Encap, ttl};
use crate::vrf::{NextHop, TenantId};
use std::net::IpAddr;
use std::time::Instant;

impl Pipeline {
    /// Forwards a batch read from `tenant`'s TUN. Each packet must sit at
    /// least [`Pipeline::HEADROOM`] bytes into its slot (as in a batch from
    /// [`Pipeline::egress_input`]); encapsulation rewrites the slots in
    /// place. Datagrams go to `out.underlay`, packets for the tenant's own
    /// TUN (local routes, ICMP errors) to `out.local`.
    pub fn egress_batch(
        &mut self,
        tenant: TenantId,
        packets: &mut PacketBatch,
        now: Instant,
        out: &mut ForwardOutput,
    ) {
        if self.tenant_state(tenant).is_none() {
            self.drops
                .record_many(DropReason::UnknownTenant, packets.len() as u64);
            return;
        }
        // The tenant's counters are updated once per batch, not per packet.
        // Every drop here happens with the tenant known (its TUN names it):
        // the batch's drops go to the tenant and to the node total.
        let (mut sent_packets, mut sent_bytes) = (0u64, 0u64);
        let mut drops = DropCounters::new();
        for index in 0..packets.len() {
            match self.egress_one(tenant, packets, index, now, out, &mut drops) {
                Ok(Some(inner_len)) => {
                    sent_packets += 1;
                    sent_bytes += inner_len as u64;
                }
                Ok(None) => {}
                Err(reason) => drops.record(reason),
            }
        }
        self.drops.merge(&drops);
        if let Some(state) = self.tenants.get_mut(&tenant) {
            state.drops.merge(&drops);
            let c = &mut state.counters;
            c.tx_packets = c.tx_packets.wrapping_add(sent_packets);
            c.tx_bytes = c.tx_bytes.wrapping_add(sent_bytes);
        }
    }

    /// Forwards a batch read from the fabric TUN straight into WireGuard.
    pub fn egress_fabric_batch(
        &mut self,
        packets: &PacketBatch,
        now: Instant,
        out: &mut ForwardOutput,
    ) {
        for packet in packets.packets() {
            let mut sink = WgSink::new(&mut out.underlay, &mut self.overflow, &mut []);
            let sent = self.wg.send(packet, now, &mut sink);
            let overflowed = sink.overflowed;
            self.drops.record_many(DropReason::QueueFull, overflowed);
            match sent {
                Ok(_) => self.fabric.sent(packet.len()),
                Err(reason) => self.drops.record(fabric_drop_reason(packet, reason)),
            }
        }
    }

    fn egress_one(
        &mut self,
        tenant: TenantId,
        packets: &mut PacketBatch,
        index: usize,
        now: Instant,
        out: &mut ForwardOutput,
        drops: &mut DropCounters,
    ) -> Result<Option<usize>, DropReason> {
        let (slot, range) = packets.slot_mut(index).ok_or(DropReason::Malformed)?;
        let header = IpHeader::parse(&slot[range.clone()]).ok_or(DropReason::Malformed)?;
        let state = self
            .tenants
            .get_mut(&tenant)
            .ok_or(DropReason::UnknownTenant)?;
        // Multicast or link-local traffic must not reach a tunnel even
        // from a workload's own address (a default route would carry it).
        if header.has_link_scoped_destination() {
            return Err(DropReason::LinkScoped);
        }
        if !state.workloads.contains(&header.source) {
            // The kernel's own chatter on the TUN (MLD, DAD, router
            // solicitations from `::` or `fe80::`) is not a workload lying
            // about its address; anything else is (IPv4 from 169.254/16
            // included: that is the workloads' gateway's range).
            return Err(if header.has_kernel_chatter_source() {
                DropReason::LinkScoped
            } else {
                DropReason::SpoofedSource
            });
        }
        let vrf = self.vrfs.get(tenant).ok_or(DropReason::UnknownTenant)?;
        let (endpoint, label, encapsulation) = match vrf.lookup(header.destination) {
            None => return Err(DropReason::NoRoute),
            Some(NextHop::Discard) => return Err(DropReason::DiscardRoute),
            Some(NextHop::Local(_)) => {
                // Same tenant, same node: the kernel's tenant table routes
                // it to the pod's veth when it comes back out of the TUN.
                return if out.local.push_with(
                    &slot[range],
                    super::batch::NO_ENDPOINT,
                    Interface::Tenant(tenant),
                ) {
                    Ok(None)
                } else {
                    Err(DropReason::QueueFull)
                };
            }
            Some(NextHop::Tunnel {
                endpoint,
                label,
                encap,
            }) => (*endpoint, *label, *encap),
        };

        // The overlay is one router hop (short pipe, RFC 3443 §3.3).
        if let Err(e) = ttl::decrement(&mut slot[range.clone()]) {
            if e == crate::packet::Error::TtlExpired {
                self.answer(tenant, &slot[range], out, drops, |original, source, buf| {
                    icmp_error::time_exceeded(original, source, buf)
                });
            }
            return Err(e.drop_reason());
        }

        // RFC 1191 / RFC 8201: a packet that does not fit is answered
        // with the MTU that does, so the workload's PMTUD converges. We do
        // not fragment IPv4 without DF either: pods have the tenant MTU, so
        // only a misconfigured workload sends such packets.
        let mtu = self.config.mtu.tenant;
        if range.len() > mtu {
            if header.dont_fragment {
                self.answer(tenant, &slot[range], out, drops, |original, source, buf| {
                    icmp_error::too_big(original, mtu, source, buf)
                });
            }
            return Err(DropReason::TooBig);
        }

        let source = match (self.config.tunnel_address, endpoint) {
            (s @ IpAddr::V4(_), IpAddr::V4(_)) | (s @ IpAddr::V6(_), IpAddr::V6(_)) => s,
            _ => return Err(DropReason::Malformed),
        };
        let encap = Encap::new(source, endpoint, label);
        let inner_len = range.len();
        let outer = encapsulation
            .encapsulate(&encap, slot, range)
            .map_err(|e| e.drop_reason())?;

        let mut sink = WgSink::new(&mut out.underlay, &mut self.overflow, &mut []);
        let sent = self.wg.send(&slot[outer], now, &mut sink);
        let overflowed = sink.overflowed;
        drops.record_many(DropReason::QueueFull, overflowed);
        sent.map_err(send_drop_reason)?;
        Ok(Some(inner_len))
    }

    /// Writes an ICMP error about `original` (made by `write` from the
    /// workload's gateway address) into the tenant's output. The RFCs
    /// forbid some answers (about ICMP errors, to broadcast sources...):
    /// `write` returns `None` for those and nothing is sent.
    fn answer(
        &mut self,
        tenant: TenantId,
        original: &[u8],
        out: &mut ForwardOutput,
        drops: &mut DropCounters,
        write: impl FnOnce(&[u8], IpAddr, &mut [u8]) -> Option<usize>,
    ) {
        let source = match original.first().map(|b| b >> 4) {
            Some(6) => IpAddr::V6(self.config.gateway_v6),
            _ => IpAddr::V4(self.config.gateway_v4),
        };
        let Some(slot) = out.local.free_slot() else {
            drops.record(DropReason::QueueFull);
            return;
        };
        if let Some(len) = write(original, source, slot) {
            out.local
                .commit_entry(len, super::batch::NO_ENDPOINT, Interface::Tenant(tenant));
        }
    }
}

/// Why a packet from the fabric TUN could not be sent. WireGuard has no
/// peer for a multicast or link-local destination: that is the kernel's
/// link chatter on `pisek0`, counted as such and not as a routing hole
/// (`no-peer`). Judged only once sending failed: the fast path pays nothing.
fn fabric_drop_reason(packet: &[u8], reason: crate::wg::WgDropReason) -> DropReason {
    match IpHeader::parse(packet) {
        Some(header) if header.is_link_scoped() => DropReason::LinkScoped,
        _ => send_drop_reason(reason),
    }
}
