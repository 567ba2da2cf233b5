//! Detach, after the answer: deleting the rules and the veth pair.
//!
//! The kernel's unregistering of a network device waits for RCU grace
//! periods, partly under the routing netlink lock: 10-30 ms per veth pair
//! here, whatever the pair carried, and every netlink request waits behind
//! it. Done inside the detach, that was most of a CNI DEL. So a detach
//! answers once the workload is off the overlay (data plane and BGP told)
//! and its lease is free, and one worker, on a thread of its own at a
//! lower priority, deletes what the detaches left, one attachment at a
//! time, with [`delete_objects`].
//!
//! Not in batches (`ip link delete group N`, which the worker once used so
//! that pairs shared one set of grace periods): the grace periods are
//! sleeps, but the unregistering between them is CPU the kernel does not
//! give up (most distribution kernels do not preempt inside a system
//! call), and a batch of eight held a CPU for 1-2 ms at a stretch, long
//! enough for the forwarder thread woken on that CPU to make a concurrent
//! DEL three times slower. A drained node's pairs thus go at some 60 a
//! second; the runtime's deletion of each pod's namespace takes its pair
//! with it anyway.
//!
//! Until its pair is gone a workload's packets still reach the tenant's
//! table, where the data plane drops them (their source is no longer
//! attached). The record stays, in phase `detaching`, so a crash in between
//! still finds the objects ([`Attachments::recover`]); an attach of the same
//! container and interface waits for the teardown, since it would create
//! the same host interface name. The address may be leased again at once:
//! the new attachment's host route replaces the old one, and the old end's
//! address lives in the old namespace only.

use super::Attachments;
use super::naming::peer_temp_ifname;
use super::timing::StepTimes;
use crate::ipam::WorkloadKey;
use crate::netlink::{Netlink, NetlinkError};
use crate::state::{EndpointPhase, EndpointRecord, StateError, StateStore};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc, watch};

/// The teardown thread's nice value: the kernel deletes veth pairs inside
/// its `sendmsg`, CPU the next CNI request would otherwise wait for.
const TEARDOWN_NICENESS: i32 = 10;

/// The teardowns queued or under way, by endpoint, and the worker's queue.
#[derive(Clone, Default)]
pub(super) struct Teardowns {
    running: Arc<std::sync::Mutex<HashMap<WorkloadKey, watch::Receiver<bool>>>>,
    queue: Arc<std::sync::OnceLock<mpsc::UnboundedSender<Job>>>,
}

/// One detached attachment to delete, and whom to tell.
struct Job {
    record: EndpointRecord,
    finished: watch::Sender<bool>,
}

impl Teardowns {
    /// Whether the objects of `key` are queued or being deleted.
    pub(super) fn running(&self, key: &WorkloadKey) -> bool {
        self.lock().contains_key(key)
    }

    /// Waits until no teardown of `key` is queued or runs.
    pub(super) async fn wait(&self, key: &WorkloadKey) {
        let done = self.lock().get(key).cloned();
        if let Some(mut done) = done {
            // A dropped sender (the worker stopped) ends the wait too.
            let _ = done.wait_for(|finished| *finished).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WorkloadKey, watch::Receiver<bool>>> {
        // The map holds no invariant a panicking holder could break.
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Attachments {
    /// Queues the deletion of the objects of `record` (in phase
    /// `detaching`); the worker drops the record when they are gone.
    pub(super) fn tear_down(&self, record: EndpointRecord) {
        let (finished, done) = watch::channel(false);
        self.teardowns.lock().insert(record.key.clone(), done);
        let queue = self.teardowns.queue.get_or_init(|| {
            let (queue, jobs) = mpsc::unbounded_channel();
            // Its own connection, off the runtime's workers: a pair's
            // delete holds the kernel's `sendmsg` for 10-30 ms.
            let host = Netlink::open_on_own_thread("pisek-teardown", TEARDOWN_NICENESS)
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "teardown: sharing the agent's netlink connection");
                    self.host.clone()
                });
            tokio::spawn(worker(
                jobs,
                host,
                Arc::clone(&self.store),
                self.teardowns.clone(),
            ));
            queue
        });
        if let Err(mpsc::error::SendError(job)) = queue.send(Job { record, finished }) {
            // The worker is gone (the runtime is stopping): the record stays
            // `detaching` and the next start deletes what it names.
            self.teardowns.lock().remove(&job.record.key);
        }
    }
}

/// Deletes each queued attachment's objects, drops its record, tells its
/// waiters; again.
async fn worker(
    mut jobs: mpsc::UnboundedReceiver<Job>,
    host: Netlink,
    store: Arc<Mutex<StateStore>>,
    teardowns: Teardowns,
) {
    while let Some(job) = jobs.recv().await {
        let record = &job.record;
        let mut times = StepTimes::start();
        match delete_objects(&host, record, &mut times).await {
            Ok(()) => {
                drop_record(&store, record).await;
                times.mark("record");
                times.log("teardown", &record.key);
            }
            // The record stays `detaching`: the next attach or start removes
            // what is left.
            Err(e) => tracing::error!(
                endpoint = %record.key,
                error = %e,
                "deleting a detached workload's rules and veth pair"
            ),
        }
        teardowns.lock().remove(&record.key);
        let _ = job.finished.send(true);
    }
}

/// The `iif` rules of an attachment: they name the interface and outlive
/// it, so they are deleted explicitly.
async fn delete_rules(host: &Netlink, r: &EndpointRecord) -> Result<(), NetlinkError> {
    for ipv6 in [false, true] {
        host.delete_iif_rule(&r.host_ifname, r.table_id, r.rule_priority, ipv6)
            .await?;
    }
    Ok(())
}

/// Deletes every kernel object of one attachment (teardown, rollback,
/// recovery):
/// rules, then the host end, which deletes the workload end, the routes
/// through it and its neighbour entries. All steps tolerate objects that
/// are already gone.
pub(super) async fn delete_objects(
    host: &Netlink,
    r: &EndpointRecord,
    times: &mut StepTimes,
) -> Result<(), NetlinkError> {
    delete_rules(host, r).await?;
    times.mark("rules");
    host.delete_link(&r.host_ifname).await?;
    times.mark("link");
    host.delete_link(&peer_temp_ifname(&r.key)).await?;
    times.mark("temp-link");
    Ok(())
}

/// Drops the record if still `detaching` (an attach of the same interface
/// waits for the teardown, so none was taken over meanwhile).
async fn drop_record(store: &Mutex<StateStore>, record: &EndpointRecord) {
    let mut store = store.lock().await;
    let dropped = store.update(|s| -> Result<(), StateError> {
        if s.endpoints
            .get(&record.key)
            .is_some_and(|e| e.phase == EndpointPhase::Detaching)
        {
            s.endpoints.remove(&record.key);
        }
        Ok(())
    });
    if let Err(e) = dropped {
        // Harmless: the record names nothing that still exists; the next
        // start drops it.
        tracing::warn!(endpoint = %record.key, error = %e, "could not drop a detached workload's record");
    }
}
