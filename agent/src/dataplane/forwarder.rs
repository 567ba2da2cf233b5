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
use super::underlay::{BATCH_SIZE, DatagramBatch, UdpBatchSocket};
use pisek_overlay::drop::{DropCounters, DropReason};
use pisek_overlay::forward::{ForwardOutput, Interface, PacketBatch, Pipeline};
use pisek_overlay::vrf::TenantId;
use pisek_overlay::wg::PeerHealth;
use std::collections::HashMap;
use std::io;
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

/// Room for the largest underlay datagram (an Ethernet jumbo frame).
const DATAGRAM_SLOT: usize = 9216;

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
        udp: UdpBatchSocket,
    ) -> io::Result<Forwarder> {
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
    /// recvmmsg lands here ...
    received: DatagramBatch,
    /// ... and is handed to the pipeline from here.
    ingress: PacketBatch,
    egress: PacketBatch,
    out: ForwardOutput,
    /// sendmmsg batch.
    to_send: DatagramBatch,
    /// Offload reads from tenant TUNs: the super-packet and its segments.
    super_packet: Vec<u8>,
    segments: Vec<Vec<u8>>,
    segment_sizes: Vec<usize>,
    /// A packet for an offload TUN behind its (empty) virtio-net header.
    tun_write: Vec<u8>,
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
        let ingress = pipeline.ingress_input(BATCH_SIZE);
        let egress = pipeline.egress_input(TUN_BATCH);
        // Handshakes and ICMP errors take output slots too.
        let out = ForwardOutput::new(BATCH_SIZE + 16, &pipeline.config().mtu);
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
            received: DatagramBatch::new(BATCH_SIZE, DATAGRAM_SLOT),
            ingress,
            egress,
            out,
            to_send: DatagramBatch::new(BATCH_SIZE, DATAGRAM_SLOT),
            super_packet: vec![0; TUN_SUPER_PACKET],
            segments: vec![vec![0; TUN_SUPER_PACKET]; IDEAL_BATCH_SIZE],
            segment_sizes: vec![0; IDEAL_BATCH_SIZE],
            tun_write: vec![0; TUN_SUPER_PACKET],
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
    /// get their turn).
    fn underlay_batches(&mut self) -> io::Result<()> {
        for _ in 0..4 {
            let n = self.udp.recv_batch(&mut self.received)?;
            if n == 0 {
                break;
            }
            self.ingress.clear();
            for i in 0..n {
                let (datagram, from) = self.received.get(i);
                self.ingress.push_datagram(datagram, from);
            }
            self.pipeline
                .ingress_batch(&self.ingress, Instant::now(), &mut self.out);
            self.flush()?;
            if n < self.received.capacity() {
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

    /// Reads super-packets from an offload TUN, split into packets, into the
    /// egress batch (one copy each: tun-rs splits into its own buffers).
    fn read_offload(&mut self, tenant: Option<usize>) -> io::Result<()> {
        let Some(i) = tenant else { return Ok(()) };
        let device = &self.tenants[i].1;
        // A read yields at most 64 KiB / MTU segments; stop while one more
        // could overflow the batch.
        while self.egress.capacity() - self.egress.len() >= 64 {
            let n = match device.recv_multiple(
                &mut self.super_packet,
                &mut self.segments,
                &mut self.segment_sizes,
                0,
            ) {
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
            for (segment, &len) in self.segments.iter().zip(&self.segment_sizes).take(n) {
                let Some(slot) = self.egress.free_slot() else {
                    break;
                };
                let len = len.min(slot.len());
                slot[..len].copy_from_slice(&segment[..len]);
                self.egress.commit(len, None);
            }
        }
        Ok(())
    }

    /// Sends the output's datagrams (sendmmsg) and writes its packets to
    /// their TUNs, then empties it.
    fn flush(&mut self) -> io::Result<()> {
        for (datagram, endpoint) in self.out.underlay.datagrams() {
            if self.to_send.is_full() {
                self.udp.send_batch(&mut self.to_send)?;
            }
            let slot = self.to_send.next_slot();
            let len = datagram.len().min(slot.len());
            slot[..len].copy_from_slice(&datagram[..len]);
            self.to_send.commit(len, endpoint);
        }
        if !self.to_send.is_empty() {
            self.udp.send_batch(&mut self.to_send)?;
        }
        // Deliveries come in runs for one tenant: look the TUN up once a run.
        let mut last: Option<(TenantId, Option<usize>)> = None;
        for (packet, interface) in self.out.local.deliveries() {
            let (device, tenant) = match interface {
                Interface::Fabric => (Some(&self.fabric), None),
                Interface::Tenant(t) => {
                    let index = match last {
                        Some((lt, index)) if lt == t => index,
                        _ => {
                            let index = self.tenant_index.get(&t).copied();
                            last = Some((t, index));
                            index
                        }
                    };
                    (index.map(|i| &self.tenants[i].1), index)
                }
            };
            let written = match (device, interface) {
                (Some(d), Interface::Tenant(_)) if TENANT_TUN_OFFLOAD => {
                    // An all-zero virtio-net header: one plain packet. The
                    // header bytes are zeroed at allocation and never written.
                    let total = VIRTIO_NET_HDR_LEN + packet.len();
                    if total <= self.tun_write.len() {
                        self.tun_write[VIRTIO_NET_HDR_LEN..total].copy_from_slice(packet);
                        d.send(&self.tun_write[..total]).is_ok()
                    } else {
                        false
                    }
                }
                (Some(d), _) => d.send(packet).is_ok(),
                (None, _) => false,
            };
            // A full TUN queue loses the packet like a full NIC ring would.
            if !written {
                let reason = if device.is_some() {
                    DropReason::QueueFull
                } else {
                    DropReason::UnknownTenant
                };
                self.device_drops.record(reason, tenant);
            }
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
