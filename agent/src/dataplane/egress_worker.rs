//! The forwarding workers beyond the first: each reads its own queue of
//! every tenant TUN (multi-queue, IFF_MULTI_QUEUE) and forwards what it
//! reads.
//!
//! poll (its queues) → TUN read batch → pipeline lock → `egress_batch` →
//! unlock → sendmmsg, TUN writes.
//!
//! The kernel picks a TUN queue per flow (by the flow's hash, or by the
//! queue the flow's last packet was written to): a flow's packets come out
//! of one queue at a time, one worker reads them in order and sends them
//! in order, so each flow stays in order. The pipeline (WireGuard sessions,
//! VRFs, counters) is shared: a worker holds its lock for one batch, never
//! per packet; the TUN reads, sendmmsg and TUN writes run outside it, in
//! parallel with the other workers.
//!
//! The first worker (`forwarder.rs`) keeps everything else: the underlay
//! socket's receive side, the fabric TUN, queue 0 of every tenant TUN,
//! timers, commands and the snapshot.

use super::poll::PollSet;
use super::worker_io::{DeviceDrops, WorkerIo};
use pisek_overlay::forward::Pipeline;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a worker waits in poll before it looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// A running worker: its thread and the drops it made, which the first
/// worker publishes.
pub(super) struct EgressWorker {
    pub thread: JoinHandle<io::Result<()>>,
    pub drops: Arc<Mutex<DeviceDrops>>,
}

impl EgressWorker {
    /// Starts worker number `n` over `io` (its queues and buffers).
    pub fn spawn(
        n: usize,
        pipeline: Arc<Mutex<Pipeline>>,
        io: WorkerIo,
        stop: Arc<AtomicBool>,
    ) -> io::Result<EgressWorker> {
        let drops = Arc::new(Mutex::new(DeviceDrops::new(io.drops.tenants.len())));
        let mut state = Worker {
            pipeline,
            io,
            published: Arc::clone(&drops),
        };
        let thread = std::thread::Builder::new()
            .name(format!("pisek-fwd-{n}"))
            .spawn(move || state.run(&stop))?;
        Ok(EgressWorker { thread, drops })
    }
}

struct Worker {
    pipeline: Arc<Mutex<Pipeline>>,
    io: WorkerIo,
    /// Where this worker's drops go when it made some (a lock per batch
    /// with drops, none otherwise).
    published: Arc<Mutex<DeviceDrops>>,
}

impl Worker {
    fn run(&mut self, stop: &AtomicBool) -> io::Result<()> {
        let mut ready = PollSet::new(self.io.tenants.iter().map(|q| q.device.as_raw_fd()));
        while !stop.load(Ordering::Relaxed) {
            ready.wait(Instant::now() + STOP_CHECK)?;
            for queue in 0..self.io.tenants.len() {
                if ready.is_ready(queue) {
                    self.forward(queue)?;
                }
            }
            self.publish_drops();
        }
        Ok(())
    }

    /// One batch from queue `queue`: read, forward under the lock, send.
    fn forward(&mut self, queue: usize) -> io::Result<()> {
        self.io.read_tenant(queue)?;
        if self.io.egress.is_empty() {
            return Ok(());
        }
        let tenant = self.io.tenants[queue].tenant;
        let now = Instant::now();
        {
            let mut pipeline = self.pipeline.lock().unwrap_or_else(PoisonError::into_inner);
            pipeline.egress_batch(tenant, &mut self.io.egress, now, &mut self.io.out);
        }
        self.io.flush(None)
    }

    /// Hands the drops counted since the last call to the first worker.
    fn publish_drops(&mut self) {
        if !self.io.drops.dirty {
            return;
        }
        let mut published = self
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        published.merge(&self.io.drops);
        self.io.drops.clear();
    }
}
