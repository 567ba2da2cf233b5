//! CNI GC: detaching every attachment whose container the runtime no
//! longer lists.

use super::{AttachError, Attachments};
use crate::ipam::WorkloadKey;

impl Attachments {
    /// Detaches every attachment whose container is not in `live` (CNI GC,
    /// `cni.dev/valid-attachments`). Returns the keys released.
    pub async fn collect_garbage(
        &self,
        live: &[WorkloadKey],
    ) -> Result<Vec<WorkloadKey>, AttachError> {
        let dead: Vec<WorkloadKey> = {
            let store = self.store.lock().await;
            let state = store.state();
            let mut keys: Vec<WorkloadKey> = state
                .endpoints
                .iter()
                .map(|r| r.key.clone())
                .chain(state.leases.iter().map(|l| l.key.clone()))
                .filter(|k| !live.contains(k))
                .collect();
            keys.sort();
            keys.dedup();
            keys
        };
        for key in &dead {
            self.detach(key).await?;
        }
        Ok(dead)
    }
}
