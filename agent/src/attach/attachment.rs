//! An attached interface as the CNI plugin and `pisekctl` see it, built
//! from the endpoint record.

use super::addresses::{gateway_for, host_prefix_len};
use crate::state::EndpointRecord;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;

/// An attached interface, as the CNI plugin reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// Container id.
    pub container_id: String,
    /// Interface inside the workload.
    pub ifname: String,
    /// Tenant name.
    pub tenant: String,
    /// The workload's namespace.
    pub netns: PathBuf,
    /// The host end of the veth.
    pub host_ifname: String,
    /// The workload interface's MAC (`aa:bb:..`).
    pub mac: Option<String>,
    /// Addresses with prefix length (`10.1.1.2/32`).
    pub addresses: Vec<String>,
    /// The gateway of each address family.
    pub gateways: Vec<IpAddr>,
    /// MTU of both ends.
    pub mtu: u32,
}

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
        }
    }
}
