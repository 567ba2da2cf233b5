//! Caller-owned packet batches: one allocation at start-up, reused for
//! every batch, so the packet path allocates nothing.
//!
//! A [`PacketBatch`] is `slots` fixed-size slots in one buffer. Each slot
//! keeps `headroom` bytes in front of the packet, where encapsulation writes
//! the outer headers in place (the TUN read lands at the headroom offset,
//! the encapsulated packet then starts earlier in the same slot). Every
//! packet carries its metadata: the underlay endpoint a datagram came from
//! or goes to, and the interface a packet is delivered to.

use crate::vrf::TenantId;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::ops::Range;

/// Where a packet leaving the pipeline towards the node goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interface {
    /// The fabric TUN `pisek0`: the kernel's own traffic on the tunnel
    /// network (the iBGP session, pings to the tunnel address).
    Fabric,
    /// The TUN of this tenant (`pisek-t<N>`).
    Tenant(TenantId),
}

/// One packet's place in its slot and its metadata.
#[derive(Debug, Clone, Copy)]
struct Entry {
    start: usize,
    end: usize,
    endpoint: SocketAddr,
    interface: Interface,
}

/// The endpoint recorded for packets that have none (interface packets).
pub(crate) const NO_ENDPOINT: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));

/// The most free slots [`PacketBatch::with_free_slots`] hands out at once.
pub const FILL_MAX: usize = 128;

/// A batch of packets in caller-owned, preallocated slots.
#[derive(Debug, Clone)]
pub struct PacketBatch {
    storage: Vec<u8>,
    slot_len: usize,
    headroom: usize,
    entries: Vec<Entry>,
    slots: usize,
}

impl PacketBatch {
    /// A batch of `slots` slots, each holding a packet of up to
    /// `packet_len` bytes behind `headroom` bytes of headroom. This is the
    /// only allocation the batch ever makes.
    pub fn new(slots: usize, packet_len: usize, headroom: usize) -> PacketBatch {
        let slot_len = headroom + packet_len;
        PacketBatch {
            storage: vec![0; slots * slot_len],
            slot_len,
            headroom,
            entries: Vec::with_capacity(slots),
            slots,
        }
    }

    /// Forgets every packet (the slots are reused; nothing is freed).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// How many packets the batch holds at most.
    pub fn capacity(&self) -> usize {
        self.slots
    }

    /// How many packets are in the batch.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the batch holds no packet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when every slot is taken.
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.slots
    }

    /// The largest packet a slot holds (after the headroom).
    pub fn packet_len(&self) -> usize {
        self.slot_len - self.headroom
    }

    /// The headroom reserved in front of every packet.
    pub fn headroom(&self) -> usize {
        self.headroom
    }

    /// The packet area (behind the headroom) of the next free slot, for the
    /// caller to read a packet into before [`commit`](Self::commit); `None`
    /// when the batch is full.
    pub fn free_slot(&mut self) -> Option<&mut [u8]> {
        if self.is_full() {
            return None;
        }
        let start = self.entries.len() * self.slot_len + self.headroom;
        let end = start + self.packet_len();
        Some(&mut self.storage[start..end])
    }

    /// The packet areas of the free slots (at most [`FILL_MAX`]) at once,
    /// for a reader that fills several in one call: an offload TUN read
    /// that the TUN crate splits into packets straight into the slots, with
    /// no copy of its own. `fill` gets them in order; the caller then
    /// [`commit`](Self::commit)s the packets written, in the same order.
    pub fn with_free_slots<R>(&mut self, fill: impl FnOnce(&mut [&mut [u8]]) -> R) -> R {
        let first = self.entries.len();
        let free = (self.slots - first).min(FILL_MAX);
        let (slot_len, headroom) = (self.slot_len, self.headroom);
        let mut chunks = self.storage[first * slot_len..].chunks_mut(slot_len);
        // On the stack: no allocation per read.
        let mut areas: [&mut [u8]; FILL_MAX] = std::array::from_fn(|_| match chunks.next() {
            Some(chunk) => &mut chunk[headroom..],
            None => &mut [],
        });
        fill(&mut areas[..free])
    }

    /// Records the first `len` bytes of the free slot as a packet (an
    /// interface packet, or a datagram from `endpoint`). Returns false, and
    /// records nothing, when the batch is full or `len` exceeds the slot.
    pub fn commit(&mut self, len: usize, endpoint: Option<SocketAddr>) -> bool {
        self.commit_entry(len, endpoint.unwrap_or(NO_ENDPOINT), Interface::Fabric)
    }

    /// Copies `packet` into the next free slot. Returns false when it does
    /// not fit or the batch is full.
    pub fn push(&mut self, packet: &[u8]) -> bool {
        self.push_with(packet, NO_ENDPOINT, Interface::Fabric)
    }

    /// Copies a datagram received from (or to be sent to) `endpoint`.
    pub fn push_datagram(&mut self, datagram: &[u8], endpoint: SocketAddr) -> bool {
        self.push_with(datagram, endpoint, Interface::Fabric)
    }

    /// The packets, in order.
    pub fn packets(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.entries.iter().map(|e| &self.storage[e.start..e.end])
    }

    /// The datagrams with their underlay endpoints, in order.
    pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> + '_ {
        self.entries
            .iter()
            .map(|e| (&self.storage[e.start..e.end], e.endpoint))
    }

    /// The packets with the interface each goes out of, in order.
    pub fn deliveries(&self) -> impl Iterator<Item = (&[u8], Interface)> + '_ {
        self.entries
            .iter()
            .map(|e| (&self.storage[e.start..e.end], e.interface))
    }

    pub(crate) fn push_with(
        &mut self,
        packet: &[u8],
        endpoint: SocketAddr,
        interface: Interface,
    ) -> bool {
        match self.free_slot() {
            Some(slot) if packet.len() <= slot.len() => {
                slot[..packet.len()].copy_from_slice(packet);
                self.commit_entry(packet.len(), endpoint, interface)
            }
            _ => false,
        }
    }

    pub(crate) fn commit_entry(
        &mut self,
        len: usize,
        endpoint: SocketAddr,
        interface: Interface,
    ) -> bool {
        if self.is_full() || len > self.packet_len() {
            return false;
        }
        let start = self.entries.len() * self.slot_len + self.headroom;
        self.entries.push(Entry {
            start,
            end: start + len,
            endpoint,
            interface,
        });
        true
    }

    /// Packet `index`'s whole slot and where the packet lies in it (the
    /// headroom in front of it belongs to the caller too).
    pub(crate) fn slot_mut(&mut self, index: usize) -> Option<(&mut [u8], Range<usize>)> {
        let e = *self.entries.get(index)?;
        let base = index * self.slot_len;
        let slot = &mut self.storage[base..base + self.slot_len];
        Some((slot, e.start - base..e.end - base))
    }

    /// Datagram `index` and its endpoint.
    pub fn datagram(&self, index: usize) -> Option<(&[u8], SocketAddr)> {
        let e = self.entries.get(index)?;
        Some((&self.storage[e.start..e.end], e.endpoint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_keeps_headroom_and_refuses_what_does_not_fit() {
        let mut b = PacketBatch::new(2, 8, 4);
        assert!(b.push(&[1, 2, 3]));
        assert!(!b.push(&[0; 9]), "longer than a slot");
        let slot = b.free_slot().unwrap();
        slot[..2].copy_from_slice(&[7, 7]);
        assert!(b.commit(2, None));
        assert!(b.is_full());
        assert!(!b.push(&[1]));
        assert_eq!(b.packets().collect::<Vec<_>>(), [&[1, 2, 3][..], &[7, 7]]);
        let (slot, range) = b.slot_mut(1).unwrap();
        assert_eq!(range, 4..6);
        assert_eq!(slot.len(), 12);
        b.clear();
        assert!(b.is_empty());
    }

    #[test]
    fn free_slots_are_handed_out_together_behind_their_headroom() {
        let mut b = PacketBatch::new(3, 4, 2);
        assert!(b.push(&[9]));
        let written = b.with_free_slots(|areas| {
            assert_eq!(areas.len(), 2);
            for (i, area) in areas.iter_mut().enumerate() {
                assert_eq!(area.len(), 4);
                area[..2].fill(i as u8 + 1);
            }
            2
        });
        for _ in 0..written {
            assert!(b.commit(2, None));
        }
        assert_eq!(
            b.packets().collect::<Vec<_>>(),
            [&[9][..], &[1, 1], &[2, 2]]
        );
        assert_eq!(b.with_free_slots(|areas| areas.len()), 0);
    }
}
