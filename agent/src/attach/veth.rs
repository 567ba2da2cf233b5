//! Attach step: the veth pair, its workload end moved into the workload's
//! namespace under a temporary name. Idempotent: an interrupted attach
//! left the pair, or the end already moved.

use super::{AttachError, Attachments, HOST_VETH_MAC};
use crate::state::EndpointRecord;

impl Attachments {
    /// The veth pair, its workload end moved into the namespace.
    pub(super) async fn ensure_veth_pair(
        &self,
        record: &EndpointRecord,
        temp: &str,
        netns: &std::fs::File,
    ) -> Result<(), AttachError> {
        self.host
            .ensure_veth(&record.host_ifname, temp, HOST_VETH_MAC)
            .await?;
        // Still here after an earlier, interrupted attach or just created.
        if let Some(peer) = self.host.link_by_name(temp).await? {
            self.host
                .move_link_to_netns(peer.index, netns, &format!("{temp} (workload end)"))
                .await?;
        }
        Ok(())
    }
}
