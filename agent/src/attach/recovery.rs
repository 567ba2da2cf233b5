//! Removing half-made attachments: those a crash interrupted (on start)
//! and those whose rollback could not be written (on the next attach).

use super::naming::is_attachment_ifname;
use super::{AttachError, Attachments};
use crate::ipam::WorkloadKey;
use crate::state::{EndpointPhase, EndpointRecord, StateStore};
use std::collections::HashSet;

impl Attachments {
    /// On start: removes attachments a crash left half-made (a record in
    /// phase `attaching` or `detaching`, or interfaces and rules without a
    /// record), so their addresses and interfaces do not leak. Complete
    /// attachments are adopted as they are.
    pub async fn recover(&self) -> Result<Vec<WorkloadKey>, AttachError> {
        let mut store = self.store.lock().await;
        let removed = self.remove_half_made(&mut store, None).await?;
        self.remove_unrecorded(&store).await?;
        Ok(removed)
    }

    /// Deletes the host-side interfaces with an attachment's name that no
    /// record names, and their `iif` rules: what an attach interrupted
    /// before its record was written left (or an older agent whose state
    /// was lost). Deleting the host end deletes the workload's end too.
    async fn remove_unrecorded(&self, store: &StateStore) -> Result<(), AttachError> {
        let recorded: HashSet<&str> = store
            .state()
            .endpoints
            .iter()
            .map(|r| r.host_ifname.as_str())
            .collect();
        let unrecorded = |name: &str| is_attachment_ifname(name) && !recorded.contains(name);
        for link in self.host.links().await? {
            if unrecorded(&link.name) {
                tracing::warn!(interface = %link.name, "deleting an interface no attachment names");
                self.host.delete_link(&link.name).await?;
            }
        }
        for ipv6 in [false, true] {
            for rule in self.host.iif_rules(ipv6).await? {
                if unrecorded(&rule.iif) {
                    tracing::warn!(iif = %rule.iif, table = rule.table, "deleting a rule no attachment names");
                    self.host
                        .delete_iif_rule(&rule.iif, rule.table, rule.priority, ipv6)
                        .await?;
                }
            }
        }
        Ok(())
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
            store.update(|s| -> Result<(), AttachError> {
                s.endpoints.remove(&r.key);
                s.leases.release(&r.key);
                Ok(())
            })?;
        }
        Ok(half_made.into_iter().map(|r| r.key).collect())
    }
}
