//! What the API names a workload by ([`WorkloadKey`]) and what an attach
//! answers ([`Attachment`]). The agent's IPAM and attach code use these same
//! types, so what the agent stores and what it answers cannot drift apart.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;

/// What identifies one attachment: the container and the interface name in
/// its namespace (CNI's `CNI_CONTAINERID` + `CNI_IFNAME`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadKey {
    /// The runtime's container id (or any unique name for a plain namespace).
    pub container_id: String,
    /// The interface name inside the workload's namespace (`eth0`).
    pub ifname: String,
}

impl WorkloadKey {
    /// A key from its two parts.
    pub fn new(container_id: impl Into<String>, ifname: impl Into<String>) -> WorkloadKey {
        WorkloadKey {
            container_id: container_id.into(),
            ifname: ifname.into(),
        }
    }

    /// The key as one string, `<container id>/<ifname>`; container ids and
    /// interface names never contain `/`, so the form is unambiguous.
    pub fn as_string(&self) -> String {
        format!("{}/{}", self.container_id, self.ifname)
    }
}

impl std::fmt::Display for WorkloadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "container {} interface {}",
            self.container_id, self.ifname
        )
    }
}

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
    /// Who attached it (`cni:<network name>`), if the request said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}
