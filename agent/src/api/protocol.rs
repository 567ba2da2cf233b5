//! The messages of the agent's API: one JSON object per line each way.
//! `docs/api.md` documents every request and answer.

use crate::attach::Attachment;
use crate::ipam::WorkloadKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

/// The longest request line the server reads (bytes, newline excluded).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

fn default_ifname() -> String {
    "eth0".into()
}

/// A request, tagged by `op`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Attach a network namespace to a tenant.
    Attach {
        /// Container id (CNI_CONTAINERID) or another unique name.
        container_id: String,
        /// Path of the network namespace.
        netns: PathBuf,
        /// Interface name inside it (default `eth0`).
        #[serde(default = "default_ifname")]
        ifname: String,
        /// Tenant name.
        tenant: String,
        /// Requested addresses, at most one per family (CNI `ips`); absent:
        /// allocated from the tenant's prefixes. One outside every prefix of
        /// the tenant on this node is a stray address, advertised as a host
        /// route.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        addresses: Vec<IpAddr>,
    },
    /// Detach (idempotent).
    Detach {
        /// Container id.
        container_id: String,
        /// Interface name (default `eth0`).
        #[serde(default = "default_ifname")]
        ifname: String,
    },
    /// Compare an attachment with the live system.
    Check {
        /// Container id.
        container_id: String,
        /// Interface name (default `eth0`).
        #[serde(default = "default_ifname")]
        ifname: String,
    },
    /// Release every attachment not in `valid_attachments` (CNI GC).
    Gc {
        /// The attachments the runtime still has.
        valid_attachments: Vec<WorkloadKey>,
    },
    /// The agent's summary.
    Status,
    /// Attached endpoints.
    Endpoints,
    /// Tenants' VRFs.
    Vrfs,
    /// Routes, of one tenant or all.
    Routes {
        /// Tenant name; all tenants when absent.
        #[serde(default)]
        tenant: Option<String>,
    },
    /// WireGuard peers.
    Peers,
    /// BGP sessions.
    Bgp,
    /// Drop counters.
    Drops,
}

/// The answer to one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// True when the request succeeded; then `result` is set, else `error`.
    pub ok: bool,
    /// The op's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

impl Response {
    /// A success carrying `result`.
    pub fn success(result: impl Serialize) -> Response {
        match serde_json::to_value(result) {
            Ok(v) => Response {
                ok: true,
                result: Some(v),
                error: None,
            },
            Err(e) => Response::failure("internal", format!("cannot encode the result: {e}")),
        }
    }

    /// A failure.
    pub fn failure(code: &str, message: impl Into<String>) -> Response {
        Response {
            ok: false,
            result: None,
            error: Some(ApiError {
                code: code.to_string(),
                message: message.into(),
            }),
        }
    }
}

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

/// Result of `detach`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detached {
    /// The attachment removed; `None` when there was none.
    pub removed: Option<Attachment>,
}

/// Result of `gc`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcResult {
    /// The attachments released.
    pub released: Vec<WorkloadKey>,
}

/// Result of `status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Node name.
    pub node: String,
    /// `gateway` or `edge`.
    pub role: String,
    /// Agent version.
    pub version: String,
    /// Seconds since the agent started.
    pub uptime_secs: u64,
    /// This node's tunnel address.
    pub tunnel_address: IpAddr,
    /// Configured tenants.
    pub tenants: usize,
    /// Attached endpoints.
    pub endpoints: usize,
    /// Whether the data plane (TUNs, forwarder) runs in this agent.
    pub dataplane: bool,
}

/// One tenant's VRF.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrfInfo {
    /// Tenant name.
    pub tenant: String,
    /// Tenant id.
    pub id: u32,
    /// The VRF's MPLS label (absent until allocated).
    pub label: Option<u32>,
    /// Kernel routing table.
    pub table: u32,
    /// Policy rule priority.
    pub rule_priority: u32,
    /// The tenant's TUN.
    pub tun: String,
    /// This node's prefixes for the tenant.
    pub prefixes: Vec<String>,
    /// Route targets exported.
    pub export_route_targets: Vec<String>,
    /// Route targets imported.
    pub import_route_targets: Vec<String>,
    /// Local endpoints in the tenant.
    pub endpoints: usize,
}

/// One route of a VRF.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteInfo {
    /// Tenant name.
    pub tenant: String,
    /// Destination prefix.
    pub prefix: String,
    /// `local` (an attached endpoint) or `bgp`.
    pub source: String,
    /// Local interface, for local routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Next hop on the tunnel network, for remote routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop: Option<IpAddr>,
    /// MPLS label to push, for remote routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<u32>,
}

/// One WireGuard peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Peer name.
    pub name: String,
    /// Public key.
    pub public_key: String,
    /// Configured or learned endpoint.
    pub endpoint: Option<String>,
    /// The peer's tunnel address.
    pub tunnel_address: IpAddr,
    /// Seconds since the last handshake; `None` if never (or no data plane).
    pub last_handshake_secs: Option<u64>,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets received from the peer (decrypted, source allowed).
    #[serde(default)]
    pub rx_packets: u64,
    /// Packets sent to the peer (keepalives excluded).
    #[serde(default)]
    pub tx_packets: u64,
    /// Handshakes completed with the peer.
    #[serde(default)]
    pub handshakes: u64,
    /// Times the peer's endpoint changed (roaming).
    #[serde(default)]
    pub endpoint_changes: u64,
    /// Packets from or to the peer that WireGuard dropped, by reason
    /// (`decrypt-failed`, `replay`, `source-not-allowed`, ...); only
    /// reasons with drops are listed.
    #[serde(default)]
    pub drops: BTreeMap<String, u64>,
}

/// One BGP session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpSessionInfo {
    /// Neighbor address.
    pub neighbor: IpAddr,
    /// Neighbor name.
    pub name: Option<String>,
    /// FSM state (`Idle`, `Established`, ...).
    pub state: String,
    /// Seconds in that state.
    pub uptime_secs: Option<u64>,
    /// Routes received.
    pub received: u64,
    /// Routes advertised.
    pub advertised: u64,
}

/// One drop counter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropCounter {
    /// The reason (`spoofed-source`, `no-route`, ...).
    pub reason: String,
    /// The tenant the drops happened in; `None` for the node's total
    /// (which includes every tenant's).
    pub tenant: Option<String>,
    /// Packets dropped.
    pub packets: u64,
}
