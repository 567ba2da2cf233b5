//! An attached interface as the CNI plugin and `pisekctl` see it, built
//! from the endpoint record.

use super::addresses::{gateway_for, host_prefix_len};
use crate::state::EndpointRecord;

// An attached interface, as the API answers it: a wire type, so it lives in pisek-api.
pub use pisek_api::Attachment;

impl From<&EndpointRecord> for Attachment {
    fn from(r: &EndpointRecord) -> Self {
        Attachment {
            container_id: r.key.container_id.clone(),
            ifname: r.key.ifname.clone(),
            tenant: r.tenant.clone(),
            netns: r.netns.clone(),
            host_ifname: r.host_ifname.clone(),
            mac: r.mac.clone(),
            addresses: r
                .addresses
                .iter()
                .map(|a| format!("{a}/{}", host_prefix_len(*a)))
                .collect(),
            gateways: r.addresses.iter().map(|a| gateway_for(*a)).collect(),
            mtu: r.mtu,
            owner: r.owner.clone(),
        }
    }
}
