//! The requests of the agent's API: one JSON object per line, tagged by `op`.
//! `docs/api.md` documents every request.

use crate::workload::WorkloadKey;
use serde::{Deserialize, Serialize};
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
        /// MTU of both veth ends; absent: the node's workload MTU, which is
        /// also the most it may be.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mtu: Option<u32>,
        /// Who attaches (`cni:<network name>`, `pisekctl`): a `gc` that
        /// names an owner releases only that owner's attachments.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
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
        /// Only attachments of this owner are candidates (a CNI network
        /// collects its own garbage, not `pisekctl`'s or another
        /// network's); absent: every attachment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
    },
    /// The tenant whose `namespaces` list (agent.toml) holds a Kubernetes
    /// namespace: the CNI plugin's fallback when its own config maps none.
    TenantForNamespace {
        /// The Kubernetes namespace.
        namespace: String,
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
    /// Every path of the BGP RIB (`show bgp vpnv4 all`).
    BgpRib {
        /// Only paths this tenant's VRF imports.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vrf: Option<String>,
        /// Only `vpnv4` or `vpnv6`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        family: Option<String>,
    },
    /// Drop counters.
    Drops,
}

impl Request {
    /// The request's `op`, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Attach { .. } => "attach",
            Request::Detach { .. } => "detach",
            Request::Check { .. } => "check",
            Request::Gc { .. } => "gc",
            Request::TenantForNamespace { .. } => "tenant_for_namespace",
            Request::Status => "status",
            Request::Endpoints => "endpoints",
            Request::Vrfs => "vrfs",
            Request::Routes { .. } => "routes",
            Request::Peers => "peers",
            Request::Bgp => "bgp",
            Request::BgpRib { .. } => "bgp_rib",
            Request::Drops => "drops",
        }
    }
}
