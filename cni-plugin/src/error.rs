//! How the plugin fails: the CNI specification's error object on stdout,
//! with the spec's codes (1-7, 11, 50) and Pisek's own from 100 up
//! (`docs/cni.md` lists them). Each agent error code maps to one CNI code.

use pisek_api::ApiError;
use serde::Serialize;

/// The error codes of the plugin.
pub mod codes {
    /// Incompatible CNI version (spec).
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration (spec).
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist (spec): the netns is not there.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables (spec).
    pub const INVALID_ENVIRONMENT: u32 = 4;
    /// I/O failure (spec): stdin could not be read.
    pub const IO_FAILURE: u32 = 5;
    /// Failed to decode content (spec): stdin is not JSON.
    pub const DECODE: u32 = 6;
    /// Invalid network configuration (spec).
    pub const INVALID_CONFIG: u32 = 7;
    /// Try again later (spec): the agent is not reachable now.
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// Plugin not available (spec, STATUS): the agent is not reachable.
    pub const NOT_AVAILABLE: u32 = 50;
    /// The agent refused the request as invalid (a requested MTU or
    /// address it cannot give, a version mismatch between plugin and agent).
    pub const AGENT_REFUSED: u32 = 100;
    /// The chosen tenant is not in the agent's config.
    pub const UNKNOWN_TENANT: u32 = 101;
    /// The netns already has an interface of that name that Pisek did not
    /// make.
    pub const INTERFACE_EXISTS: u32 = 102;
    /// The container id and interface are attached differently (another
    /// tenant, netns or address).
    pub const ALREADY_ATTACHED: u32 = 103;
    /// The tenant's prefix on this node has no free address.
    pub const IPAM_EXHAUSTED: u32 = 104;
    /// A requested address is taken or can never be a workload's.
    pub const ADDRESS_UNAVAILABLE: u32 = 105;
    /// The agent failed (kernel, data plane, state file); nothing is left.
    pub const AGENT_FAILED: u32 = 106;
    /// CHECK found differences.
    pub const CHECK_FAILED: u32 = 107;
    /// No tenant could be chosen: no `PISEK_TENANT`, no annotation, no
    /// namespace mapping and no default.
    pub const NO_TENANT: u32 = 108;
    /// The agent's answer could not be decoded.
    pub const AGENT_ANSWER: u32 = 109;
}

/// A failure, as the CNI specification reports it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{msg} (code {code}){}", if details.is_empty() { String::new() } else { format!(": {details}") })]
pub struct CniError {
    /// The code ([`codes`]).
    pub code: u32,
    /// A short message.
    pub msg: String,
    /// More about it.
    pub details: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorJson<'a> {
    cni_version: &'a str,
    code: u32,
    msg: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    details: &'a str,
}

impl CniError {
    /// An error with a message and no details.
    pub fn new(code: u32, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// The same error with details.
    pub fn details(mut self, details: impl Into<String>) -> CniError {
        self.details = details.into();
        self
    }

    /// The error object the spec prescribes, in `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> String {
        serde_json::to_string(&ErrorJson {
            cni_version,
            code: self.code,
            msg: &self.msg,
            details: &self.details,
        })
        .unwrap_or_else(|_| format!(r#"{{"cniVersion":"{cni_version}","code":{}}}"#, self.code))
    }

    /// The CNI error for an error the agent answered.
    pub fn from_agent(e: &ApiError) -> CniError {
        use pisek_api::codes as api;
        let code = match e.code.as_str() {
            api::NETNS_NOT_FOUND => codes::UNKNOWN_CONTAINER,
            api::UNKNOWN_TENANT => codes::UNKNOWN_TENANT,
            api::INTERFACE_EXISTS => codes::INTERFACE_EXISTS,
            api::ALREADY_ATTACHED => codes::ALREADY_ATTACHED,
            api::IPAM_EXHAUSTED => codes::IPAM_EXHAUSTED,
            api::ADDRESS_IN_USE | api::ADDRESS_RESERVED | api::IPAM => codes::ADDRESS_UNAVAILABLE,
            api::CHECK_FAILED | api::NOT_ATTACHED => codes::CHECK_FAILED,
            api::MALFORMED_REQUEST | api::INVALID_REQUEST => codes::AGENT_REFUSED,
            _ => codes::AGENT_FAILED,
        };
        CniError::new(code, e.message.clone()).details(format!("agent error code `{}`", e.code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_object_is_the_specs() {
        let e = CniError::new(codes::TRY_AGAIN_LATER, "agent not reachable").details("socket");
        assert_eq!(
            e.to_json("1.1.0"),
            r#"{"cniVersion":"1.1.0","code":11,"msg":"agent not reachable","details":"socket"}"#
        );
        let bare = CniError::new(codes::DECODE, "not JSON");
        assert_eq!(
            bare.to_json("0.3.1"),
            r#"{"cniVersion":"0.3.1","code":6,"msg":"not JSON"}"#
        );
    }

    #[test]
    fn every_agent_code_maps_to_a_cni_code() {
        use pisek_api::codes as api;
        for (agent, cni) in [
            (api::NETNS_NOT_FOUND, codes::UNKNOWN_CONTAINER),
            (api::UNKNOWN_TENANT, codes::UNKNOWN_TENANT),
            (api::INTERFACE_EXISTS, codes::INTERFACE_EXISTS),
            (api::ALREADY_ATTACHED, codes::ALREADY_ATTACHED),
            (api::IPAM_EXHAUSTED, codes::IPAM_EXHAUSTED),
            (api::ADDRESS_IN_USE, codes::ADDRESS_UNAVAILABLE),
            (api::ADDRESS_RESERVED, codes::ADDRESS_UNAVAILABLE),
            (api::CHECK_FAILED, codes::CHECK_FAILED),
            (api::INVALID_REQUEST, codes::AGENT_REFUSED),
            (api::NETLINK, codes::AGENT_FAILED),
            (api::STATE, codes::AGENT_FAILED),
            (api::DATAPLANE, codes::AGENT_FAILED),
        ] {
            let e = CniError::from_agent(&ApiError {
                code: agent.into(),
                message: "m".into(),
            });
            assert_eq!(e.code, cni, "{agent}");
        }
    }
}
