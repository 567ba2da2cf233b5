//! The answers of the agent's API: the envelope (`ok` with a `result` or an
//! `error`) and the result of each request. `docs/api.md` documents them.

use crate::error::{ApiError, codes};
use crate::workload::{Attachment, WorkloadKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

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
            Err(e) => Response::failure(codes::INTERNAL, format!("cannot encode the result: {e}")),
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

/// Result of `detach`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detached {
    /// The attachment removed; `None` when there was none.
    pub removed: Option<Attachment>,
}

/// Result of `tenant_for_namespace`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantChoice {
    /// The tenant, or `None` when no tenant lists the namespace.
    pub tenant: Option<String>,
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

/// One path of the BGP RIB.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RibRoute {
    /// `vpnv4` or `vpnv6`.
    pub family: String,
    /// The route distinguisher (`10.255.0.12:1`, `65000:7`).
    pub rd: String,
    /// The prefix.
    pub prefix: String,
    /// The label stack (one label for MPLS/BGP VPNs).
    pub labels: Vec<u32>,
    /// The route targets (`65000:1`).
    pub route_targets: Vec<String>,
    /// The BGP next hop.
    pub next_hop: Option<IpAddr>,
    /// `local`, or the address of the peer it came from.
    pub from: String,
    /// The peer's configured name, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The best path of its prefix.
    pub best: bool,
    /// Kept across the sender's restart, waiting for a refresh.
    pub stale: bool,
    /// Seconds since it was learned or last changed.
    pub age_secs: u64,
    /// LOCAL_PREF, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<u32>,
    /// The tenants whose VRFs import it.
    pub vrfs: Vec<String>,
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
