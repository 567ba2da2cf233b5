//! The queue as the collector's tasks share it: the MQTT input appends and
//! commits, the Graphite writer reads and acknowledges.

use super::DurableQueue;
use crate::metrics::Metrics;
use std::sync::atomic::Ordering;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// The queue behind a mutex, with a wake-up for each side.
pub struct SharedQueue {
    queue: Mutex<DurableQueue>,
    /// Signalled when new records are committed (wakes the writer).
    data_ready: Condvar,
    /// Signalled when records are acknowledged (wakes a waiting input).
    pub space_freed: tokio::sync::Notify,
}

impl SharedQueue {
    /// Shares `queue`.
    pub fn new(queue: DurableQueue) -> SharedQueue {
        SharedQueue {
            queue: Mutex::new(queue),
            data_ready: Condvar::new(),
            space_freed: tokio::sync::Notify::new(),
        }
    }

    /// Locks the queue. A poisoned lock (a panic elsewhere while holding it)
    /// is taken over: the queue's state is only changed by whole operations.
    pub fn lock(&self) -> MutexGuard<'_, DurableQueue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the writer after a commit.
    pub fn notify_data(&self) {
        self.data_ready.notify_all();
    }

    /// Waits up to `timeout` for a commit (or a spurious wake-up); returns the guard.
    pub fn wait_for_data<'a>(
        &'a self,
        guard: MutexGuard<'a, DurableQueue>,
        timeout: Duration,
    ) -> MutexGuard<'a, DurableQueue> {
        match self.data_ready.wait_timeout(guard, timeout) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        }
    }

    /// Publishes the queue's gauges.
    pub fn update_gauges(queue: &DurableQueue, metrics: &Metrics) {
        metrics
            .queue_depth_bytes
            .store(queue.depth_bytes(), Ordering::Relaxed);
        metrics
            .queue_corrupt_records
            .store(queue.corrupt_skips(), Ordering::Relaxed);
    }
}
