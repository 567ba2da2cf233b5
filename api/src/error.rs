//! How a request fails: [`ApiError`] on the wire, with a stable code from
//! [`codes`] for programs and a message for a person.

use serde::{Deserialize, Serialize};

/// A failed request: a stable code and a sentence for a person.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// Machine-readable (`netns_not_found`, `ipam_exhausted`, ... see docs/api.md).
    pub code: String,
    /// What went wrong, naming the object concerned.
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// The stable error codes (`ApiError::code`); `docs/api.md` says what each
/// means and what a failure with it leaves behind. Clients match on these,
/// never on the message.
pub mod codes {
    /// Not JSON, not an object, unknown `op`, unknown or missing field, wrong
    /// type, line too long.
    pub const MALFORMED_REQUEST: &str = "malformed_request";
    /// Well-formed but not acceptable (bad container id, interface name,
    /// netns path, more than one requested address of a family).
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// The tenant is not in the agent's config.
    pub const UNKNOWN_TENANT: &str = "unknown_tenant";
    /// The netns path does not exist or is not a network namespace.
    pub const NETNS_NOT_FOUND: &str = "netns_not_found";
    /// The container id + interface is attached differently.
    pub const ALREADY_ATTACHED: &str = "already_attached";
    /// The namespace has an interface of that name the agent did not make.
    pub const INTERFACE_EXISTS: &str = "interface_exists";
    /// The tenant's prefix on this node has no free address.
    pub const IPAM_EXHAUSTED: &str = "ipam_exhausted";
    /// A requested address is held by another attachment.
    pub const ADDRESS_IN_USE: &str = "address_in_use";
    /// A requested address can never be a workload's.
    pub const ADDRESS_RESERVED: &str = "address_reserved";
    /// The forwarder or BGP did not take the workload's addresses.
    pub const DATAPLANE: &str = "dataplane";
    /// Another address-management refusal.
    pub const IPAM: &str = "ipam";
    /// The state file could not be written.
    pub const STATE: &str = "state";
    /// The kernel refused a step.
    pub const NETLINK: &str = "netlink";
    /// `check` of something not attached.
    pub const NOT_ATTACHED: &str = "not_attached";
    /// `check` found differences.
    pub const CHECK_FAILED: &str = "check_failed";
    /// The result could not be encoded (a bug).
    pub const INTERNAL: &str = "internal";
}
