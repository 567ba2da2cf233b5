//! Why an attach, detach or check failed, with the stable code the API
//! reports for each.

use crate::ipam::{IpamError, WorkloadKey};
use crate::netlink::NetlinkError;
use crate::state::StateError;
use std::path::PathBuf;
use thiserror::Error;

/// Why an attach, detach or check failed. Each has a stable code for the API.
#[derive(Debug, Error)]
pub enum AttachError {
    /// The request itself is wrong (empty id, bad interface name).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The tenant is not configured on this node.
    #[error("unknown tenant `{0}` (not in the agent's config)")]
    UnknownTenant(String),
    /// The namespace does not exist or is not a network namespace.
    #[error("{0}")]
    Netns(NetlinkError),
    /// The attachment exists with other parameters.
    #[error("{key} is already attached ({detail})")]
    Conflict {
        /// The attachment.
        key: WorkloadKey,
        /// What differs.
        detail: String,
    },
    /// The namespace already has an interface of the requested name that the
    /// agent did not make.
    #[error("{} already has an interface named {ifname}", netns.display())]
    InterfaceExists {
        /// The namespace.
        netns: PathBuf,
        /// The name taken.
        ifname: String,
    },
    /// No address left, or a lease in another tenant.
    #[error("{0}")]
    Ipam(#[from] IpamError),
    /// The state could not be written; nothing was changed.
    #[error("state: {0}")]
    State(#[from] StateError),
    /// A kernel operation failed; the attachment was rolled back.
    #[error("{0}")]
    Netlink(NetlinkError),
    /// The data plane or BGP did not take the workload's addresses; the
    /// attachment was rolled back.
    #[error("data plane: {0:#}")]
    Dataplane(anyhow::Error),
    /// There is no such attachment (check).
    #[error("{0} is not attached")]
    NotAttached(WorkloadKey),
    /// The attachment exists but is not as it should be (check).
    #[error("{key}: {problems}")]
    CheckFailed {
        /// The attachment.
        key: WorkloadKey,
        /// Every difference found, `; `-separated.
        problems: String,
    },
}

impl AttachError {
    /// A stable machine-readable code for the API (`docs/api.md`).
    pub fn code(&self) -> &'static str {
        match self {
            AttachError::InvalidRequest(_) => "invalid_request",
            AttachError::UnknownTenant(_) => "unknown_tenant",
            AttachError::Netns(_) => "netns_not_found",
            AttachError::Conflict { .. } => "already_attached",
            AttachError::InterfaceExists { .. } => "interface_exists",
            AttachError::Ipam(IpamError::Exhausted { .. }) => "ipam_exhausted",
            AttachError::Ipam(IpamError::AddressInUse { .. }) => "address_in_use",
            AttachError::Ipam(IpamError::AddressReserved { .. }) => "address_reserved",
            AttachError::Ipam(IpamError::OtherAddresses { .. }) => "already_attached",
            AttachError::Ipam(_) => "ipam",
            AttachError::State(_) => "state",
            AttachError::Netlink(_) => "netlink",
            AttachError::Dataplane(_) => "dataplane",
            AttachError::NotAttached(_) => "not_attached",
            AttachError::CheckFailed { .. } => "check_failed",
        }
    }
}

impl From<NetlinkError> for AttachError {
    fn from(e: NetlinkError) -> Self {
        match e {
            NetlinkError::Netns { .. } => AttachError::Netns(e),
            other => AttachError::Netlink(other),
        }
    }
}
