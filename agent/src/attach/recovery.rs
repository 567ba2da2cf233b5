//! Removing half-made attachments: those a crash interrupted (on start)
//! and those whose rollback could not be written (on the next attach).

use super::{AttachError, Attachments};
use crate::ipam::WorkloadKey;
use crate::state::{EndpointPhase, EndpointRecord, StateStore};

impl Attachments {
    /// On start: removes attachments a crash left half-made (phase
    /// `attaching`), so their addresses and interfaces do not leak. Complete
    /// attachments are adopted as they are.
    pub async fn recover(&self) -> Result<Vec<WorkloadKey>, AttachError> {
        let mut store = self.store.lock().await;
        self.remove_half_made(&mut store, None).await
    }

    /// Removes every attachment in phase `attaching` or `detaching` except
    /// `keep` and those being torn down: those a crash interrupted, those
    /// whose rollback could not be written (a full disk), and those whose
    /// veth could not be deleted. Attach calls it too, so such leftovers go as soon as the
    /// disk has room again, not only at the next start.
    pub(super) async fn remove_half_made(
        &self,
        store: &mut StateStore,
        keep: Option<&WorkloadKey>,
    ) -> Result<Vec<WorkloadKey>, AttachError> {
        let half_made: Vec<EndpointRecord> = store
            .state()
            .endpoints
            .iter()
            .filter(|r| {
                r.phase != EndpointPhase::Attached
                    && Some(&r.key) != keep
                    && !self.teardowns.running(&r.key)
            })
            .cloned()
            .collect();
        for r in &half_made {
            tracing::warn!(endpoint = %r.key, "removing a half-made attachment");
            self.remove_objects(r, &mut super::timing::StepTimes::start())
                .await?;
            store.update_for_this_boot(|s| -> Result<(), AttachError> {
                s.endpoints.remove(&r.key);
                s.leases.release(&r.key);
                Ok(())
            })?;
        }
        Ok(half_made.into_iter().map(|r| r.key).collect())
    }
}
