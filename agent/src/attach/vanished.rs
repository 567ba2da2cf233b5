//! Attachments whose workload vanished without a detach: the runtime
//! deleted the network namespace (a crash, a lost CNI DEL, a node drained
//! by hand), the kernel deleted the veth with it, and only the lease and
//! the record are left. They are released, so addresses do not leak.

use super::{AttachError, Attachments};
use crate::ipam::WorkloadKey;
use crate::state::{EndpointPhase, EndpointRecord};

impl Attachments {
    /// Releases every attachment whose namespace file is gone *and* whose
    /// host-side veth is gone. Both must be missing: a namespace file can
    /// be unmounted while a process still holds the namespace (then the
    /// veth lives and the workload may still talk), and a missing veth with
    /// a live namespace is a fault for CHECK to report, not garbage.
    /// Returns the keys released.
    pub async fn release_vanished(&self) -> Result<Vec<WorkloadKey>, AttachError> {
        let candidates: Vec<EndpointRecord> = {
            let store = self.store.lock().await;
            store
                .state()
                .endpoints
                .iter()
                .filter(|r| r.phase == EndpointPhase::Attached && !r.netns.exists())
                .cloned()
                .collect()
        };
        let mut released = Vec::new();
        for r in candidates {
            if self.host.link_by_name(&r.host_ifname).await?.is_some() {
                continue;
            }
            tracing::warn!(
                endpoint = %r.key,
                netns = %r.netns.display(),
                "releasing an attachment whose namespace is gone"
            );
            self.detach(&r.key).await?;
            released.push(r.key);
        }
        Ok(released)
    }
}
