//! CNI GC: detaching every attachment whose container the runtime no
//! longer lists.

use super::{AttachError, Attachments};
use crate::ipam::WorkloadKey;

impl Attachments {
    /// Detaches every attachment whose container is not in `live` (CNI GC,
    /// `cni.dev/valid-attachments`). With an `owner`, only that owner's
    /// attachments are candidates, so one CNI network's GC leaves another's
    /// and `pisekctl`'s alone. Returns the keys released, once their veth
    /// pairs are deleted.
    pub async fn collect_garbage(
        &self,
        live: &[WorkloadKey],
        owner: Option<&str>,
    ) -> Result<Vec<WorkloadKey>, AttachError> {
        let dead: Vec<WorkloadKey> = {
            let store = self.store.lock().await;
            let state = store.state();
            let owned =
                |r: &&crate::state::EndpointRecord| owner.is_none() || r.owner.as_deref() == owner;
            // A lease without a record is garbage whoever took it; with an
            // owner it is left to the agent's own sweep.
            let orphans = state
                .leases
                .iter()
                .filter(|l| owner.is_none() && state.endpoints.get(&l.key).is_none())
                .map(|l| l.key.clone());
            let mut keys: Vec<WorkloadKey> = state
                .endpoints
                .iter()
                .filter(owned)
                .map(|r| r.key.clone())
                .chain(orphans)
                .filter(|k| !live.contains(k))
                .collect();
            keys.sort();
            keys.dedup();
            keys
        };
        for key in &dead {
            self.detach(key).await?;
        }
        // Unlike a DEL, GC answers once the veth pairs are gone too: the
        // runtime calls it to reclaim what is left, off any pod's start-up
        // path, and checks nothing is.
        for key in &dead {
            self.teardowns.wait(key).await;
        }
        Ok(dead)
    }
}
