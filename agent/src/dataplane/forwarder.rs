//! The forwarder thread: TUN and UDP batches through the `Pipeline`.
//!
//! Each turn: commands → timers (every [`TICK`]) → poll → underlay batch
//! (recvmmsg → `ingress_batch` → TUN writes, datagrams out) → each TUN
//! (reads → `egress_batch` / `egress_fabric_batch` → sendmmsg, TUN writes).
//!
//! Commands come through a [`CommandSender`] (`commands.rs`), which also
//! wakes the poll, so a command takes effect within one turn, not at the
//! next tick. Every 500 ms (and after commands) the thread publishes a
//! [`Snapshot`] (`snapshot.rs`) for the API and the metrics.

use super::commands::{Command, CommandSender};
use super::devices::{Devices, TENANT_TUN_OFFLOAD};
use super::poll::PollSet;
use super::snapshot::{PeerSnapshot, Snapshot};
use super::tun::TunWriteBatch;
use super::underlay::{BATCH_SIZE, DatagramBatch, GRO_SLOT_LEN, UdpBatchSocket};
use pisek_overlay::drop::{DropCounters, DropReason};
use pisek_overlay::forward::{FILL_MAX, ForwardOutput, Interface, PacketBatch, Pipeline};
use pisek_overlay::vrf::TenantId;
use pisek_overlay::wg::PeerHealth;
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tun_rs::{IDEAL_BATCH_SIZE, SyncDevice, VIRTIO_NET_HDR_LEN};

/// How often the pipeline's timers run (WireGuard handshakes, keepalives,
/// failover; docs/dataplane.md asks for 100-250 ms).
pub const TICK: Duration = Duration::from_millis(100);

/// How often the snapshot for the API is refreshed.
const PUBLISH_EVERY: Duration = Duration::from_millis(500);

/// Output slots kept free beyond a batch: one received datagram may
/// produce several outputs (a completed handshake sends the packets that
/// waited for it; boringtun queues a few).
const OUTPUT_MARGIN: usize = 16;

/// Packets read from one TUN before the others get their turn (one
/// offload read splits into at most 64 KiB / tenant MTU packets).
const TUN_BATCH: usize = IDEAL_BATCH_SIZE;

/// The largest read from an offload TUN: a super-packet behind its header.
const TUN_SUPER_PACKET: usize = VIRTIO_NET_HDR_LEN + 65535;

/// The running forwarder thread.
pub struct Forwarder {
    commands: CommandSender,
    snapshot: Arc<Mutex<Snapshot>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Forwarder {
    /// Starts the thread that owns `pipeline`, the TUNs and the socket.
    pub fn spawn(
        pipeline: Pipeline,
        devices: Devices,
        mut udp: UdpBatchSocket,
    ) -> io::Result<Forwarder> {
        // The receive batch has GRO-sized slots (`Loop::new`). Without GRO
        // (an old kernel) datagrams simply come one per message.
        if !udp.enable_gro() {
            tracing::info!("the kernel refused UDP_GRO: one datagram per receive slot");
        }
        let (commands, receiver) = std::sync::mpsc::channel();
        let (wake, woken) = UnixDatagram::pair()?;
        wake.set_nonblocking(true)?;
        woken.set_nonblocking(true)?;
        let snapshot = Arc::new(Mutex::new(Snapshot::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut state = Loop::new(
            pipeline,
            devices,
            udp,
            (receiver, woken),
            Arc::clone(&snapshot),
        );
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("pisek-forwarder".into())
            .spawn(move || {
                let result = state.run(&thread_stop);
                if let Ok(mut s) = state.snapshot.lock() {
                    s.running = false;
                }
                result
            })?;
        Ok(Forwarder {
            commands: CommandSender::new(commands, wake),
            snapshot,
            stop,
            thread: Some(thread),
        })
    }

    /// Where control-plane changes go.
    pub fn commands(&self) -> CommandSender {
        self.commands.clone()
    }

    /// The latest snapshot, shared.
    pub fn snapshot(&self) -> Arc<Mutex<Snapshot>> {
        Arc::clone(&self.snapshot)
    }

    /// Stops the thread and waits for it. Devices stay (persistent TUNs).
    pub fn stop(&mut self) -> io::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the forwarder thread panicked")),
            None => Ok(()),
        }
    }
}

/// The thread's state: every buffer is allocated here, once.
struct Loop {
    pipeline: Pipeline,
    fabric: SyncDevice,
    tenants: Vec<(TenantId, SyncDevice)>,
    tenant_index: HashMap<TenantId, usize>,
    udp: UdpBatchSocket,
    commands: Receiver<Command>,
    /// Readable when a command was sent: part of the poll set.
    woken: UnixDatagram,
    snapshot: Arc<Mutex<Snapshot>>,
    /// recvmmsg lands here (slots for UDP GRO messages), and the pipeline
    /// reads the datagrams from here.
    received: DatagramBatch,
    egress: PacketBatch,
    /// The pipeline's output; its datagrams go to sendmmsg from here.
    out: ForwardOutput,
    /// Offload reads from tenant TUNs: the super-packet, and the sizes of
    /// the packets it splits into (in the egress batch's slots).
    super_packet: Vec<u8>,
    segment_sizes: Vec<usize>,
    /// Packets for an offload tenant TUN, coalesced (GRO) on flush.
    tun_writes: TunWriteBatch,
    /// What the forwarder itself drops, around the pipeline.
    device_drops: DeviceDrops,
}

/// Drops the forwarder makes itself, outside the pipeline: TUN writes
/// that fail (a full queue loses the packet, as a full NIC ring would) and
/// offload reads tun-rs cannot split. Published together with the
/// pipeline's own counters.
#[derive(Debug, Default)]
struct DeviceDrops {
    node: DropCounters,
    /// Per tenant TUN, indexed like `Loop::tenants`.
    tenants: Vec<DropCounters>,
}

impl DeviceDrops {
    /// Counts a drop for the node, and for the tenant of TUN `tenant`.
    fn record(&mut self, reason: DropReason, tenant: Option<usize>) {
        self.node.record(reason);
        if let Some(counters) = tenant.and_then(|i| self.tenants.get_mut(i)) {
            counters.record(reason);
        }
    }
}

impl Loop {
    fn new(
        pipeline: Pipeline,
        devices: Devices,
        udp: UdpBatchSocket,
        (commands, woken): (Receiver<Command>, UnixDatagram),
        snapshot: Arc<Mutex<Snapshot>>,
    ) -> Loop {
        let egress = pipeline.egress_input(TUN_BATCH);
        // Handshakes and ICMP errors take output slots too
        // (`output_nearly_full`).
        let out = ForwardOutput::new(BATCH_SIZE + OUTPUT_MARGIN, &pipeline.config().mtu);
        let device_drops = DeviceDrops {
            node: DropCounters::new(),
            tenants: vec![DropCounters::new(); devices.tenants.len()],
        };
        let tenant_index = devices
            .tenants
            .iter()
            .enumerate()
            .map(|(i, (t, _))| (*t, i))
            .collect();
        Loop {
            pipeline,
            fabric: devices.fabric,
            tenants: devices.tenants,
            tenant_index,
            udp,
            commands,
            woken,
            snapshot,
            received: DatagramBatch::new(BATCH_SIZE, GRO_SLOT_LEN),
            egress,
            out,
            super_packet: vec![0; TUN_SUPER_PACKET],
            segment_sizes: vec![0; FILL_MAX],
            tun_writes: TunWriteBatch::new(),
            device_drops,
        }
    }

    fn run(&mut self, stop: &AtomicBool) -> io::Result<()> {
        // Peers whose endpoint is known hear from us at once: after a
        // restart their sessions with us are gone, and waiting for their
        // rekey timeout would cost seconds of traffic.
        let initiated = self
            .pipeline
            .initiate_handshakes(Instant::now(), &mut self.out);
        if initiated > 0 {
            tracing::info!(peers = initiated, "handshakes initiated at start");
            self.flush()?;
        }
        let mut next_tick = Instant::now();
        let mut next_publish = Instant::now();
        let mut ready = PollSet::new(
            std::iter::once(self.udp.as_raw_fd())
                .chain(std::iter::once(self.fabric.as_raw_fd()))
                .chain(self.tenants.iter().map(|(_, t)| t.as_raw_fd()))
                .chain(std::iter::once(self.woken.as_raw_fd())),
        );
        while !stop.load(Ordering::Relaxed) {
            let changed = self.apply_commands();
            let now = Instant::now();
            if now >= next_tick {
                self.pipeline.tick(now, &mut self.out);
                self.flush()?;
                next_tick = now + TICK;
            }
            if changed || now >= next_publish {
                self.publish();
                next_publish = now + PUBLISH_EVERY;
            }
            ready.wait(next_tick)?;
            if ready.is_ready(0) {
                self.underlay_batches()?;
            }
            if ready.is_ready(1) {
                self.tun_batch(None)?;
            }
            for i in 0..self.tenants.len() {
                if ready.is_ready(2 + i) {
                    self.tun_batch(Some(i))?;
                }
            }
            if ready.is_ready(2 + self.tenants.len()) {
                // The commands themselves are read at the top of the loop.
                let mut drain = [0u8; 64];
                while self.woken.recv(&mut drain).is_ok() {}
            }
        }
        Ok(())
    }

    /// Applies every queued command; commits the VRFs once after a burst.
    fn apply_commands(&mut self) -> bool {
        let mut changed = false;
        let mut barriers = Vec::new();
        while let Ok(command) = self.commands.try_recv() {
            changed = true;
            match command {
                Command::Barrier(done) => barriers.push(done),
                Command::Route {
                    tenant,
                    prefix,
                    next_hop,
                } => {
                    let Some(vrf) = self.pipeline.vrfs_mut().get_mut(tenant) else {
                        tracing::warn!(%tenant, %prefix, "route for a tenant without VRF");
                        continue;
                    };
                    match next_hop {
                        Some(nh) => {
                            vrf.insert(prefix, nh);
                        }
                        None => {
                            vrf.remove(&prefix);
                        }
                    }
                }
                Command::Workload {
                    tenant,
                    address,
                    present: true,
                } => {
                    if let Err(e) = self.pipeline.add_workload(tenant, address) {
                        tracing::warn!(%address, "workload not recorded: {e}");
                    }
                }
                Command::Workload {
                    tenant,
                    address,
                    present: false,
                } => {
                    self.pipeline.remove_workload(tenant, address);
                }
            }
        }
        if changed {
            self.pipeline.vrfs_mut().commit_changed();
        }
        for done in barriers {
            // The caller may have given up waiting; nothing to do then.
            let _ = done.send(());
        }
        changed
    }

    /// recvmmsg → ingress, until the socket is drained (bounded so the TUNs
    /// get their turn). Datagrams go to the pipeline from the receive
    /// slots themselves (a GRO message split in place), no copy.
    fn underlay_batches(&mut self) -> io::Result<()> {
        for _ in 0..4 {
            let n = self.udp.recv_batch(&mut self.received)?;
            if n == 0 {
                break;
            }
            let now = Instant::now();
            for i in 0..n {
                if output_nearly_full(&self.out) {
                    self.flush()?;
                }
                let (datagram, from) = self.received.get(i);
                self.pipeline
                    .ingress_datagram(datagram, from, now, &mut self.out);
            }
            self.flush()?;
            if !self.received.is_full() {
                break;
            }
        }
        Ok(())
    }

    /// Reads up to a batch from one TUN (`None`: the fabric) and forwards it.
    fn tun_batch(&mut self, tenant: Option<usize>) -> io::Result<()> {
        self.egress.clear();
        let device = match tenant {
            None => &self.fabric,
            Some(i) => &self.tenants[i].1,
        };
        match tenant {
            Some(_) if TENANT_TUN_OFFLOAD => self.read_offload(tenant)?,
            _ => {
                while let Some(slot) = self.egress.free_slot() {
                    match device.recv(slot) {
                        Ok(len) => {
                            self.egress.commit(len, None);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        if self.egress.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        match tenant {
            None => self
                .pipeline
                .egress_fabric_batch(&self.egress, now, &mut self.out),
            Some(i) => {
                let id = self.tenants[i].0;
                self.pipeline
                    .egress_batch(id, &mut self.egress, now, &mut self.out);
            }
        }
        self.flush()
    }

    /// Reads super-packets from an offload TUN, split by tun-rs into
    /// packets straight into the egress batch's free slots (no copy).
    fn read_offload(&mut self, tenant: Option<usize>) -> io::Result<()> {
        let Some(i) = tenant else { return Ok(()) };
        let device = &self.tenants[i].1;
        // A read yields at most 64 KiB / MTU segments; stop while one more
        // could overflow the batch.
        while self.egress.capacity() - self.egress.len() >= 64 {
            let sizes = &mut self.segment_sizes;
            let super_packet = &mut self.super_packet;
            // tun-rs wants one size per buffer.
            let read = self.egress.with_free_slots(|slots| {
                let sizes = &mut sizes[..slots.len()];
                device.recv_multiple(super_packet, slots, sizes, 0)
            });
            let n = match read {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A super-packet tun-rs cannot split: dropped, go on.
                Err(e) if e.raw_os_error().is_none() || e.kind() == io::ErrorKind::InvalidInput => {
                    self.device_drops.record(DropReason::Malformed, Some(i));
                    continue;
                }
                Err(e) => return Err(e),
            };
            for &len in &self.segment_sizes[..n] {
                self.egress.commit(len, None);
            }
        }
        Ok(())
    }

    /// Sends the output's datagrams (sendmmsg) and writes its packets to
    /// their TUNs, then empties it.
    fn flush(&mut self) -> io::Result<()> {
        let underlay = &self.out.underlay;
        if !underlay.is_empty() {
            self.udp.send_datagrams(underlay.len(), |i| {
                underlay.datagram(i).unwrap_or((&[], NO_ENDPOINT))
            })?;
        }
        // Deliveries come in runs for one tenant: look the TUN up once a
        // run, and hand the run to the TUN as one GRO batch (consecutive
        // segments of a flow coalesced into super-packets, one write each),
        // flushed when the tenant changes and at the end.
        let mut last: Option<(TenantId, Option<usize>)> = None;
        let mut pending: Option<(usize, u64)> = None;
        for (packet, interface) in self.out.local.deliveries() {
            let tenant = match interface {
                Interface::Fabric => {
                    // A full TUN queue loses the packet like a full NIC
                    // ring would.
                    if self.fabric.send(packet).is_err() {
                        self.device_drops.record(DropReason::QueueFull, None);
                    }
                    continue;
                }
                Interface::Tenant(t) => match last {
                    Some((lt, index)) if lt == t => index,
                    _ => {
                        let index = self.tenant_index.get(&t).copied();
                        last = Some((t, index));
                        index
                    }
                },
            };
            let Some(i) = tenant else {
                self.device_drops.record(DropReason::UnknownTenant, None);
                continue;
            };
            let device = &self.tenants[i].1;
            if !TENANT_TUN_OFFLOAD {
                if device.send(packet).is_err() {
                    self.device_drops.record(DropReason::QueueFull, Some(i));
                }
                continue;
            }
            if pending.is_none_or(|(p, _)| p != i) {
                if let Some((p, errors)) = pending {
                    flush_tun_writes(
                        &mut self.tun_writes,
                        &self.tenants[p].1,
                        errors,
                        p,
                        &mut self.device_drops,
                    );
                }
                pending = Some((i, self.tun_writes.errors()));
            }
            let buf = self.tun_writes.next(device);
            let len = packet.len().min(buf.len());
            buf[..len].copy_from_slice(&packet[..len]);
            self.tun_writes.commit(len);
        }
        if let Some((p, errors)) = pending {
            flush_tun_writes(
                &mut self.tun_writes,
                &self.tenants[p].1,
                errors,
                p,
                &mut self.device_drops,
            );
        }
        self.out.clear();
        Ok(())
    }

    fn publish(&self) {
        let now = Instant::now();
        let wg = self.pipeline.wireguard();
        let snapshot = Snapshot {
            running: true,
            peers: wg
                .peers()
                .map(|p| PeerSnapshot {
                    public_key: *p.public_key.as_bytes(),
                    endpoint: p.endpoint,
                    last_handshake_secs: p
                        .metrics
                        .last_handshake
                        .map(|t| now.saturating_duration_since(t).as_secs()),
                    up: p.health == PeerHealth::Up,
                    rx_bytes: p.metrics.rx_bytes,
                    tx_bytes: p.metrics.tx_bytes,
                    rx_packets: p.metrics.rx_packets,
                    tx_packets: p.metrics.tx_packets,
                    handshakes: p.metrics.handshakes,
                    endpoint_changes: p.metrics.endpoint_changes,
                    drops: p.metrics.drops,
                })
                .collect(),
            drops: DropReason::ALL
                .iter()
                .map(|r| {
                    let packets = self.pipeline.drops().get(*r);
                    (*r, packets.wrapping_add(self.device_drops.node.get(*r)))
                })
                .collect(),
            routes: self
                .pipeline
                .vrfs()
                .iter()
                .flat_map(|v| v.routes().map(move |(p, nh)| (v.tenant(), p, *nh)))
                .collect(),
            tenants: self
                .tenants
                .iter()
                .filter_map(|(t, _)| Some((*t, self.pipeline.tenant_counters(*t)?)))
                .collect(),
            tenant_drops: self
                .tenants
                .iter()
                .zip(&self.device_drops.tenants)
                .filter_map(|((t, _), own)| {
                    let mut drops = self.pipeline.tenant_drops(*t)?.clone();
                    drops.merge(own);
                    Some((*t, drops))
                })
                .collect(),
        };
        if let Ok(mut s) = self.snapshot.lock() {
            *s = snapshot;
        }
    }
}

/// Writes the GRO batch of tenant TUN `tenant` and counts, for that
/// tenant, the write calls the device refused since the run began (its
/// error count was `errors_before`): a refused write of a coalesced
/// super-packet loses its segments as a full queue would.
fn flush_tun_writes(
    batch: &mut TunWriteBatch,
    device: &SyncDevice,
    errors_before: u64,
    tenant: usize,
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
fn output_nearly_full(out: &ForwardOutput) -> bool {
    let room = |b: &PacketBatch| b.capacity() - b.len();
    room(&out.underlay) <= OUTPUT_MARGIN || room(&out.local) <= OUTPUT_MARGIN
}
