//! What every forwarding worker owns apart from the pipeline: its queue of
//! each tenant TUN, its egress batch, its output, its TUN write batch and
//! its own drop counters; and the two ends of its packet path.
//!
//! TUN read (offload split into the egress batch) → [the pipeline, under
//! its lock, in `forwarder.rs` / `egress_worker.rs`] → flush: sendmmsg of
//! the output's datagrams, GRO'd writes of its deliveries to the TUNs.
//!
//! Nothing here takes a lock, allocates or makes a syscall per packet
//! beyond the TUN read itself.

use super::devices::TENANT_TUN_OFFLOAD;
use super::tun::TunWriteBatch;
use super::tun_read::{TunRead, read_offload};
use super::underlay::{BATCH_SIZE, UdpBatchSocket};
use pisek_overlay::drop::{DropCounters, DropReason};
use pisek_overlay::forward::{FILL_MAX, ForwardOutput, Interface, PacketBatch, Pipeline};
use pisek_overlay::vrf::TenantId;
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tun_rs::{IDEAL_BATCH_SIZE, SyncDevice, VIRTIO_NET_HDR_LEN};

/// Output slots kept free beyond a batch: one received datagram may
/// produce several outputs (a completed handshake sends the packets that
/// waited for it; boringtun queues a few).
pub(super) const OUTPUT_MARGIN: usize = 16;

/// Packets read from one TUN before the others get their turn (one
/// offload read splits into at most 64 KiB / tenant MTU packets).
const TUN_BATCH: usize = IDEAL_BATCH_SIZE;

/// Slots of a worker's output: a whole TUN batch forwarded at once (an
/// egress batch is not flushed part way: with fewer slots than packets
/// read, the rest was dropped as `queue-full`, 7 % of a TCP stream's
/// segments, issue 14), a received batch, and the margin for handshakes
/// and ICMP errors (`output_nearly_full`).
const OUTPUT_SLOTS: usize = if TUN_BATCH > BATCH_SIZE {
    TUN_BATCH
} else {
    BATCH_SIZE
} + OUTPUT_MARGIN;

/// The largest read from an offload TUN: a super-packet behind its header.
const TUN_SUPER_PACKET: usize = VIRTIO_NET_HDR_LEN + 65535;

/// Drops a worker makes itself, outside the pipeline: TUN writes that fail
/// (a full queue loses the packet, as a full NIC ring would) and offload
/// reads tun-rs cannot split. Published together with the pipeline's own
/// counters.
#[derive(Debug, Clone, Default)]
pub(super) struct DeviceDrops {
    pub node: DropCounters,
    /// Per tenant, indexed like the configured tenants (`Devices::tenants`).
    pub tenants: Vec<DropCounters>,
    /// Set by [`record`](Self::record): lets a worker skip publishing
    /// counters that did not move.
    pub dirty: bool,
}

impl DeviceDrops {
    /// Zeroed counters for `tenants` tenants.
    pub fn new(tenants: usize) -> DeviceDrops {
        DeviceDrops {
            node: DropCounters::new(),
            tenants: vec![DropCounters::new(); tenants],
            dirty: false,
        }
    }

    /// Counts a drop for the node, and for tenant number `tenant`.
    pub fn record(&mut self, reason: DropReason, tenant: Option<usize>) {
        self.node.record(reason);
        if let Some(counters) = tenant.and_then(|i| self.tenants.get_mut(i)) {
            counters.record(reason);
        }
        self.dirty = true;
    }

    /// Zeroes every counter (no allocation).
    pub fn clear(&mut self) {
        self.node = DropCounters::new();
        for counters in &mut self.tenants {
            *counters = DropCounters::new();
        }
        self.dirty = false;
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &DeviceDrops) {
        self.node.merge(&other.node);
        for (mine, theirs) in self.tenants.iter_mut().zip(&other.tenants) {
            mine.merge(theirs);
        }
        self.dirty |= other.dirty;
    }
}

/// One worker's devices and buffers; every buffer is allocated here, once.
pub(super) struct WorkerIo {
    /// This worker's queue of each tenant TUN it serves, with the tenant's
    /// index among the configured tenants (for the drop counters).
    pub tenants: Vec<TenantQueue>,
    tenant_index: HashMap<TenantId, usize>,
    udp: Arc<UdpBatchSocket>,
    pub egress: PacketBatch,
    /// The pipeline's output; its datagrams go to sendmmsg from here.
    pub out: ForwardOutput,
    /// Offload reads: the super-packet, and the sizes of the packets it
    /// splits into (in the egress batch's slots).
    super_packet: Vec<u8>,
    segment_sizes: Vec<usize>,
    /// Packets for an offload tenant TUN, coalesced (GRO) on flush.
    tun_writes: TunWriteBatch,
    /// The most queues a tenant TUN is written through (1 but for the
    /// first worker): one write pass per queue.
    write_queues: usize,
    pub drops: DeviceDrops,
}

/// A worker's queue of one tenant TUN.
pub(super) struct TenantQueue {
    pub tenant: TenantId,
    /// The tenant's place among the configured tenants.
    pub index: usize,
    pub device: Arc<SyncDevice>,
    /// Every queue of the TUN, for the worker that writes the decrypted
    /// packets (the first): each connection's packets are written through
    /// the queue its symmetric hash names, so the kernel's flow steering
    /// (which remembers the queue a flow was last written to) reads the
    /// connection's egress from that queue, and bidirectional flows spread
    /// over the workers too. Empty for the other workers: they write only
    /// through their own queue.
    pub writers: Vec<Arc<SyncDevice>>,
}

impl TenantQueue {
    /// The queue `packet` is written through (its own, or one of
    /// `writers` by the packet's symmetric flow hash), and its number.
    fn writer_for(&self, packet: &[u8]) -> (usize, &SyncDevice) {
        match self.writers.len() {
            0 | 1 => (0, &self.device),
            n => {
                let k = (symmetric_flow_hash(packet) % n as u64) as usize;
                (k, &self.writers[k])
            }
        }
    }
}

/// A hash of `packet`'s addresses, protocol and ports that is the same in
/// both directions (XOR of each pair). Fragments and packets too short to
/// parse hash by addresses only, or to 0: what matters is that one
/// connection always gets one value.
fn symmetric_flow_hash(packet: &[u8]) -> u64 {
    let fold = |bytes: &[u8]| {
        bytes.chunks(8).fold(0u64, |h, c| {
            let mut word = [0u8; 8];
            word[..c.len()].copy_from_slice(c);
            h ^ u64::from_ne_bytes(word)
        })
    };
    let (addresses, protocol, transport) = match packet.first().map(|b| b >> 4) {
        Some(4) if packet.len() >= 20 => {
            let header = usize::from(packet[0] & 0x0f) * 4;
            // Only the first fragment (offset 0) carries the ports.
            let first = packet[6] & 0x1f == 0 && packet[7] == 0;
            let ports = if first {
                packet.get(header..header + 4)
            } else {
                None
            };
            (
                fold(&packet[12..16]) ^ fold(&packet[16..20]),
                packet[9],
                ports,
            )
        }
        Some(6) if packet.len() >= 40 => (
            fold(&packet[8..24]) ^ fold(&packet[24..40]),
            packet[6],
            packet.get(40..44),
        ),
        _ => return 0,
    };
    let ports = match (protocol, transport) {
        (6 | 17, Some(p)) => {
            u64::from(u16::from_be_bytes([p[0], p[1]]) ^ u16::from_be_bytes([p[2], p[3]]))
        }
        _ => 0,
    };
    // Fibonacci hashing spreads the XOR's low bits over the high ones.
    (addresses ^ (u64::from(protocol) << 32) ^ ports).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32
}

impl WorkerIo {
    /// The buffers of a worker serving `tenants` (of `configured` tenants
    /// in all) for `pipeline`, sending on `udp`.
    pub fn new(
        pipeline: &Pipeline,
        tenants: Vec<TenantQueue>,
        configured: usize,
        udp: Arc<UdpBatchSocket>,
    ) -> WorkerIo {
        let tenant_index = tenants
            .iter()
            .enumerate()
            .map(|(i, q)| (q.tenant, i))
            .collect();
        let write_queues = tenants
            .iter()
            .map(|q| q.writers.len())
            .max()
            .unwrap_or(0)
            .max(1);
        WorkerIo {
            tenants,
            tenant_index,
            udp,
            egress: pipeline.egress_input(TUN_BATCH),
            out: ForwardOutput::new(OUTPUT_SLOTS, &pipeline.config().mtu),
            super_packet: vec![0; TUN_SUPER_PACKET],
            segment_sizes: vec![0; FILL_MAX],
            tun_writes: TunWriteBatch::new(),
            write_queues,
            drops: DeviceDrops::new(configured),
        }
    }

    /// The socket this worker sends on.
    pub fn udp(&self) -> &UdpBatchSocket {
        &self.udp
    }

    /// Reads up to a batch from this worker's queue `queue` of a tenant
    /// TUN into the (emptied) egress batch.
    pub fn read_tenant(&mut self, queue: usize) -> io::Result<()> {
        self.egress.clear();
        if TENANT_TUN_OFFLOAD {
            return self.read_offload(queue);
        }
        let Some(q) = self.tenants.get(queue) else {
            return Ok(());
        };
        read_plain(&q.device, &mut self.egress)
    }

    /// Reads from an offload TUN into the egress batch's free slots: a lone
    /// packet is copied in, a super-packet split straight into them.
    ///
    /// The slots' areas are built once for the whole batch, not once per
    /// read: a 64-byte packet is one read, and building 128 areas for each
    /// cost 7 % of a sending gateway (docs/benchmarks.md, issue 14).
    fn read_offload(&mut self, queue: usize) -> io::Result<()> {
        let Some(q) = self.tenants.get(queue) else {
            return Ok(());
        };
        let (device, tenant) = (&q.device, q.index);
        let sizes = &mut self.segment_sizes;
        let super_packet = &mut self.super_packet;
        let drops = &mut self.drops;
        let (read, result) = self.egress.with_free_slots(|areas| {
            let (free, mut read) = (areas.len(), 0);
            // A read yields at most 64 KiB / MTU segments; stop while one
            // more could overflow the batch.
            while free - read >= 64 {
                let split = read_offload(
                    device,
                    super_packet,
                    &mut areas[read..],
                    &mut sizes[read..free],
                );
                let n = match split {
                    Ok(TunRead::Segments(n)) => n,
                    Ok(TunRead::Packet(range)) => {
                        let (packet, area) = (&super_packet[range], &mut areas[read]);
                        let Some(slot) = area.get_mut(..packet.len()) else {
                            drops.record(DropReason::Malformed, Some(tenant));
                            continue;
                        };
                        slot.copy_from_slice(packet);
                        sizes[read] = packet.len();
                        1
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // A read whose header the packet contradicts, or a
                    // super-packet tun-rs cannot split: dropped, go on.
                    Err(e)
                        if e.raw_os_error().is_none()
                            || e.kind() == io::ErrorKind::InvalidInput =>
                    {
                        drops.record(DropReason::Malformed, Some(tenant));
                        continue;
                    }
                    Err(e) => return (read, Err(e)),
                };
                read += n;
            }
            (read, Ok(()))
        });
        for &len in &self.segment_sizes[..read] {
            self.egress.commit(len, None);
        }
        result
    }

    /// Sends the output's datagrams (sendmmsg) and writes its packets to
    /// their TUNs (`fabric` for the fabric's; a worker without it drops
    /// them), then empties it.
    pub fn flush(&mut self, fabric: Option<&SyncDevice>) -> io::Result<()> {
        let underlay = &self.out.underlay;
        if !underlay.is_empty() {
            self.udp.send_datagrams(underlay.len(), |i| {
                underlay.datagram(i).unwrap_or((&[], NO_ENDPOINT))
            })?;
        }
        // Deliveries come in runs for one tenant: look the TUN up once a
        // run, and hand the run to the TUN as one GRO batch (consecutive
        // segments of a flow coalesced into super-packets, one write each),
        // flushed when the tenant changes and at the end. One pass per
        // write queue: a flow always goes to one queue, so each pass keeps
        // the flows' order and their segments together for GRO.
        for pass in 0..self.write_queues {
            self.write_deliveries(pass, fabric);
        }
        self.out.clear();
        Ok(())
    }

    /// Writes the deliveries whose queue is number `pass` (the fabric's
    /// and the unknown tenants' in pass 0).
    fn write_deliveries(&mut self, pass: usize, fabric: Option<&SyncDevice>) {
        let mut last: Option<(TenantId, Option<usize>)> = None;
        let mut pending: Option<(usize, u64)> = None;
        for (packet, interface) in self.out.local.deliveries() {
            let queue = match interface {
                Interface::Fabric => {
                    // A full TUN queue loses the packet like a full NIC
                    // ring would.
                    if pass == 0 && fabric.is_none_or(|f| f.send(packet).is_err()) {
                        self.drops.record(DropReason::QueueFull, None);
                    }
                    continue;
                }
                Interface::Tenant(t) => match last {
                    Some((lt, queue)) if lt == t => queue,
                    _ => {
                        let queue = self.tenant_index.get(&t).copied();
                        last = Some((t, queue));
                        queue
                    }
                },
            };
            let Some(i) = queue else {
                if pass == 0 {
                    self.drops.record(DropReason::UnknownTenant, None);
                }
                continue;
            };
            let q = &self.tenants[i];
            let (k, device) = q.writer_for(packet);
            if k != pass {
                continue;
            }
            if !TENANT_TUN_OFFLOAD {
                if device.send(packet).is_err() {
                    self.drops.record(DropReason::QueueFull, Some(q.index));
                }
                continue;
            }
            if pending.is_none_or(|(p, _)| p != i) {
                if let Some(pending) = pending {
                    flush_pending(
                        &self.tenants,
                        pending,
                        pass,
                        &mut self.tun_writes,
                        &mut self.drops,
                    );
                }
                pending = Some((i, self.tun_writes.errors()));
            }
            let buf = self.tun_writes.next(device);
            let len = packet.len().min(buf.len());
            buf[..len].copy_from_slice(&packet[..len]);
            self.tun_writes.commit(len);
        }
        if let Some(pending) = pending {
            flush_pending(
                &self.tenants,
                pending,
                pass,
                &mut self.tun_writes,
                &mut self.drops,
            );
        }
    }
}

/// Queue `pass` of `queue`'s TUN as its writer (its own device when it
/// writes through one queue only).
fn writer(queue: &TenantQueue, pass: usize) -> (usize, &SyncDevice) {
    match queue.writers.get(pass) {
        Some(device) if queue.writers.len() > 1 => (pass, device),
        _ => (0, &queue.device),
    }
}

/// Reads packets one by one from a plain TUN into the emptied `batch`,
/// until it is full or the TUN is drained.
pub(super) fn read_plain(device: &SyncDevice, batch: &mut PacketBatch) -> io::Result<()> {
    while let Some(slot) = batch.free_slot() {
        match device.recv(slot) {
            Ok(len) => {
                batch.commit(len, None);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes the GRO batch to `device` and counts, for tenant number
/// `tenant`, the write calls the device refused since the run began (its
/// error count was `errors_before`): a refused write of a coalesced
/// super-packet loses its segments as a full queue would.
/// Flushes the writes gathered for tenant queue `pending.0` (`pending.1`:
/// the batch's error count before them) through its writer of `pass`.
fn flush_pending(
    tenants: &[TenantQueue],
    pending: (usize, u64),
    pass: usize,
    batch: &mut TunWriteBatch,
    drops: &mut DeviceDrops,
) {
    let (i, errors) = pending;
    let queue = &tenants[i];
    let (_, device) = writer(queue, pass);
    flush_tun_writes(batch, device, queue.index, errors, drops);
}

fn flush_tun_writes(
    batch: &mut TunWriteBatch,
    device: &SyncDevice,
    tenant: usize,
    errors_before: u64,
    drops: &mut DeviceDrops,
) {
    batch.flush(device);
    for _ in errors_before..batch.errors() {
        drops.record(DropReason::QueueFull, Some(tenant));
    }
}

/// The address of a datagram the output batch cannot name (never: the
/// indexes passed are in range).
const NO_ENDPOINT: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// True when the next received datagram might not find room in `out`.
pub(super) fn output_nearly_full(out: &ForwardOutput) -> bool {
    let room = |b: &PacketBatch| b.capacity() - b.len();
    room(&out.underlay) <= OUTPUT_MARGIN || room(&out.local) <= OUTPUT_MARGIN
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 UDP packet header from `src:sport` to `dst:dport`.
    fn udp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
        let mut p = vec![0u8; 28];
        p[0] = 0x45;
        p[9] = 17;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p
    }

    #[test]
    fn a_connection_hashes_the_same_both_ways_and_connections_spread() {
        let a = [10, 1, 1, 1];
        let b = [10, 1, 2, 1];
        assert_eq!(
            symmetric_flow_hash(&udp4(a, 40000, b, 6000)),
            symmetric_flow_hash(&udp4(b, 6000, a, 40000))
        );
        let on_queue_1 = (0..64u16)
            .filter(|i| symmetric_flow_hash(&udp4(a, 40000 + i, b, 6000)) % 2 == 1)
            .count();
        assert!(
            (16..=48).contains(&on_queue_1),
            "{on_queue_1} of 64 on queue 1"
        );
        // Too short to parse: one value, no panic.
        assert_eq!(symmetric_flow_hash(&[0x45, 0, 0]), 0);
        assert_eq!(symmetric_flow_hash(&[]), 0);
    }
}
