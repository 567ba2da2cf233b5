//! The forwarder threads: TUN and UDP batches through the `Pipeline`.
//!
//! The first worker's turn: commands → timers (every [`TICK`]) → poll →
//! underlay batch (recvmmsg → `ingress_batch` → TUN writes, datagrams out)
//! → the fabric TUN and queue 0 of each tenant TUN (reads →
//! `egress_batch` / `egress_fabric_batch` → sendmmsg, TUN writes). Workers
//! 1.. (`egress_worker.rs`) read the other queues of the tenant TUNs.
//!
//! Commands come through a [`CommandSender`] (`commands.rs`), which also
//! wakes the poll, so a command takes effect within one turn, not at the
//! next tick. Every 500 ms (and after commands) the thread publishes a
//! [`Snapshot`] (`snapshot.rs`) for the API and the metrics.
//!
//! The pipeline sits behind a mutex that a worker holds for one batch;
//! with one worker nobody else takes it.

use super::commands::{Command, CommandSender};
use super::devices::Devices;
use super::egress_worker::EgressWorker;
use super::poll::PollSet;
use super::snapshot::{PeerSnapshot, Snapshot};
use super::underlay::{BATCH_SIZE, DatagramBatch, GRO_SLOT_LEN, UdpBatchSocket};
use super::worker_io::{DeviceDrops, TenantQueue, WorkerIo, output_nearly_full, read_plain};
use pisek_overlay::drop::DropReason;
use pisek_overlay::forward::Pipeline;
use pisek_overlay::wg::PeerHealth;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tun_rs::SyncDevice;

/// How often the pipeline's timers run (WireGuard handshakes, keepalives,
/// failover; docs/dataplane.md asks for 100-250 ms).
pub const TICK: Duration = Duration::from_millis(100);

/// How often the snapshot for the API is refreshed.
const PUBLISH_EVERY: Duration = Duration::from_millis(500);

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
        let configured = devices.tenants.len();
        let pipeline = Arc::new(Mutex::new(pipeline));
        let udp = Arc::new(udp);
        // Queue k of every tenant TUN goes to worker k.
        let mut queues: Vec<Vec<TenantQueue>> = Vec::new();
        for (index, (tenant, devices)) in devices.tenants.into_iter().enumerate() {
            let devices: Vec<Arc<SyncDevice>> = devices.into_iter().map(Arc::new).collect();
            for (k, device) in devices.iter().enumerate() {
                if queues.len() <= k {
                    queues.resize_with(k + 1, Vec::new);
                }
                // The first worker writes the decrypted packets: through
                // every queue (`TenantQueue::writers`).
                let writers = if k == 0 && devices.len() > 1 {
                    devices.clone()
                } else {
                    Vec::new()
                };
                queues[k].push(TenantQueue {
                    tenant,
                    index,
                    device: Arc::clone(device),
                    writers,
                });
            }
        }
        let mut queues = queues.into_iter();
        let first = queues.next().unwrap_or_default();
        let mut workers = Vec::new();
        for (k, tenants) in queues.enumerate() {
            let io = {
                let p = lock(&pipeline);
                WorkerIo::new(&p, tenants, configured, Arc::clone(&udp))
            };
            workers.push(EgressWorker::spawn(
                k + 1,
                Arc::clone(&pipeline),
                io,
                Arc::clone(&stop),
            )?);
        }
        let io = {
            let p = lock(&pipeline);
            WorkerIo::new(&p, first, configured, udp)
        };
        let mut state = Loop::new(
            pipeline,
            devices.fabric,
            io,
            workers,
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

/// The first worker's state: every buffer is allocated here, once.
struct Loop {
    pipeline: Arc<Mutex<Pipeline>>,
    fabric: SyncDevice,
    /// Queue 0 of each tenant TUN, the socket, the egress batch and output.
    io: WorkerIo,
    /// The other workers, stopped and joined when this loop ends.
    workers: Vec<EgressWorker>,
    commands: Receiver<Command>,
    /// Readable when a command was sent: part of the poll set.
    woken: UnixDatagram,
    snapshot: Arc<Mutex<Snapshot>>,
    /// recvmmsg lands here (slots for UDP GRO messages), and the pipeline
    /// reads the datagrams from here.
    received: DatagramBatch,
}

/// The pipeline, for one batch or one control-plane change. A worker that
/// panicked holding it left nothing half-written that a batch depends on
/// (counters at worst), so a poisoned lock is taken all the same.
fn lock(pipeline: &Mutex<Pipeline>) -> MutexGuard<'_, Pipeline> {
    pipeline.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Loop {
    fn new(
        pipeline: Arc<Mutex<Pipeline>>,
        fabric: SyncDevice,
        io: WorkerIo,
        workers: Vec<EgressWorker>,
        (commands, woken): (Receiver<Command>, UnixDatagram),
        snapshot: Arc<Mutex<Snapshot>>,
    ) -> Loop {
        Loop {
            pipeline,
            fabric,
            io,
            workers,
            commands,
            woken,
            snapshot,
            received: DatagramBatch::new(BATCH_SIZE, GRO_SLOT_LEN),
        }
    }

    /// Runs the loop, then stops and joins the other workers.
    fn run(&mut self, stop: &AtomicBool) -> io::Result<()> {
        let result = self.turns(stop);
        // The other workers share the stop flag; on an error here they
        // must stop too.
        stop.store(true, Ordering::Relaxed);
        for worker in self.workers.drain(..) {
            match worker.thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "a forwarding worker failed"),
                Err(_) => tracing::error!("a forwarding worker panicked"),
            }
        }
        result
    }

    fn turns(&mut self, stop: &AtomicBool) -> io::Result<()> {
        // Peers whose endpoint is known hear from us at once: after a
        // restart their sessions with us are gone, and waiting for their
        // rekey timeout would cost seconds of traffic.
        let initiated = lock(&self.pipeline).initiate_handshakes(Instant::now(), &mut self.io.out);
        if initiated > 0 {
            tracing::info!(peers = initiated, "handshakes initiated at start");
            self.flush()?;
        }
        let mut next_tick = Instant::now();
        let mut next_publish = Instant::now();
        let tenants = self.io.tenants.len();
        let mut ready = PollSet::new(
            std::iter::once(self.io.udp().as_raw_fd())
                .chain(std::iter::once(self.fabric.as_raw_fd()))
                .chain(self.io.tenants.iter().map(|q| q.device.as_raw_fd()))
                .chain(std::iter::once(self.woken.as_raw_fd())),
        );
        while !stop.load(Ordering::Relaxed) {
            let changed = self.apply_commands();
            let now = Instant::now();
            if now >= next_tick {
                lock(&self.pipeline).tick(now, &mut self.io.out);
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
                self.fabric_batch()?;
            }
            for queue in 0..tenants {
                if ready.is_ready(2 + queue) {
                    self.tenant_batch(queue)?;
                }
            }
            if ready.is_ready(2 + tenants) {
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
        // Locked once, at the first command: a turn without commands
        // leaves the other workers alone.
        let mut guard = None;
        while let Ok(command) = self.commands.try_recv() {
            changed = true;
            let pipeline = guard.get_or_insert_with(|| lock(&self.pipeline));
            match command {
                Command::Barrier(done) => barriers.push(done),
                Command::Route {
                    tenant,
                    prefix,
                    next_hop,
                } => {
                    let Some(vrf) = pipeline.vrfs_mut().get_mut(tenant) else {
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
                    if let Err(e) = pipeline.add_workload(tenant, address) {
                        tracing::warn!(%address, "workload not recorded: {e}");
                    }
                }
                Command::Workload {
                    tenant,
                    address,
                    present: false,
                } => {
                    pipeline.remove_workload(tenant, address);
                }
            }
        }
        if let Some(pipeline) = guard.as_mut() {
            pipeline.vrfs_mut().commit_changed();
        }
        drop(guard);
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
            let n = self.io.udp().recv_batch(&mut self.received)?;
            if n == 0 {
                break;
            }
            let now = Instant::now();
            let mut pipeline = lock(&self.pipeline);
            for i in 0..n {
                if output_nearly_full(&self.io.out) {
                    self.io.flush(Some(&self.fabric))?;
                }
                let (datagram, from) = self.received.get(i);
                pipeline.ingress_datagram(datagram, from, now, &mut self.io.out);
            }
            drop(pipeline);
            self.flush()?;
            if !self.received.is_full() {
                break;
            }
        }
        Ok(())
    }

    /// Reads up to a batch from the fabric TUN and forwards it.
    fn fabric_batch(&mut self) -> io::Result<()> {
        self.io.egress.clear();
        read_plain(&self.fabric, &mut self.io.egress)?;
        if self.io.egress.is_empty() {
            return Ok(());
        }
        lock(&self.pipeline).egress_fabric_batch(&self.io.egress, Instant::now(), &mut self.io.out);
        self.flush()
    }

    /// Reads up to a batch from this worker's queue `queue` of a tenant TUN
    /// and forwards it.
    fn tenant_batch(&mut self, queue: usize) -> io::Result<()> {
        self.io.read_tenant(queue)?;
        if self.io.egress.is_empty() {
            return Ok(());
        }
        let tenant = self.io.tenants[queue].tenant;
        lock(&self.pipeline).egress_batch(
            tenant,
            &mut self.io.egress,
            Instant::now(),
            &mut self.io.out,
        );
        self.flush()
    }

    /// Sends the output's datagrams and writes its packets to their TUNs.
    fn flush(&mut self) -> io::Result<()> {
        self.io.flush(Some(&self.fabric))
    }

    fn publish(&self) {
        let now = Instant::now();
        // Every worker's own drops, each lock held for a copy.
        let mut device_drops = self.io.drops.clone();
        for worker in &self.workers {
            device_drops.merge(&worker.drops.lock().unwrap_or_else(PoisonError::into_inner));
        }
        let pipeline = lock(&self.pipeline);
        let snapshot = snapshot(&pipeline, &self.io, &device_drops, now);
        drop(pipeline);
        if let Ok(mut s) = self.snapshot.lock() {
            *s = snapshot;
        }
    }
}

/// What the API and the metrics see of `pipeline` and of the devices'
/// own drops (`io` names the tenants, in configured order).
fn snapshot(
    pipeline: &Pipeline,
    io: &WorkerIo,
    device_drops: &DeviceDrops,
    now: Instant,
) -> Snapshot {
    let wg = pipeline.wireguard();
    Snapshot {
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
                let packets = pipeline.drops().get(*r);
                (*r, packets.wrapping_add(device_drops.node.get(*r)))
            })
            .collect(),
        routes: pipeline
            .vrfs()
            .iter()
            .flat_map(|v| v.routes().map(move |(p, nh)| (v.tenant(), p, *nh)))
            .collect(),
        tenants: io
            .tenants
            .iter()
            .filter_map(|q| Some((q.tenant, pipeline.tenant_counters(q.tenant)?)))
            .collect(),
        tenant_drops: io
            .tenants
            .iter()
            .filter_map(|q| {
                let mut drops = pipeline.tenant_drops(q.tenant)?.clone();
                if let Some(own) = device_drops.tenants.get(q.index) {
                    drops.merge(own);
                }
                Some((q.tenant, drops))
            })
            .collect(),
    }
}
