//! Attach step: the veth pair, its workload end created in the workload's
//! namespace under a temporary name. Idempotent: an interrupted attach
//! left the pair (by an agent older than creation in the namespace, the
//! workload end may still be in the host's namespace: it is moved).

use super::{AttachError, Attachments, HOST_VETH_MAC};
use crate::state::EndpointRecord;

impl Attachments {
    /// The veth pair, its workload end in the namespace.
    pub(super) async fn ensure_veth_pair(
        &self,
        record: &EndpointRecord,
        temp: &str,
        netns: &std::fs::File,
    ) -> Result<(), AttachError> {
        let created = self
            .host
            .ensure_veth(&record.host_ifname, temp, HOST_VETH_MAC, netns)
            .await?;
        if created {
            return Ok(());
        }
        // Left in the host's namespace by an interrupted attach of an agent
        // that created the pair here and moved the end.
        if let Some(peer) = self.host.link_by_name(temp).await? {
            self.host
                .move_link_to_netns(peer.index, netns, &format!("{temp} (workload end)"))
                .await?;
        }
        Ok(())
    }
}
