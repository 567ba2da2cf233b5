//! Address management for workloads: each tenant's addresses come from this
//! node's prefix(es) for the tenant (like Kubernetes' podCIDR with host-local).
//!
//! Leases are keyed by container id + interface name, as the CNI spec keys an
//! attachment, so a repeated ADD gets the same addresses and a DEL releases
//! exactly what the ADD took. This module is pure bookkeeping: the state
//! module persists a [`Leases`] table atomically, together with the endpoint
//! that uses it.
//!
//! Addresses handed out: a workload gets one address per configured prefix
//! (IPv4 and/or IPv6). The network address is never handed out (nor, in IPv4,
//! the broadcast address), because some stacks still treat them specially;
//! the pods' gateway is link-local (169.254.1.1 / fe80::1), so no address of
//! the prefix is reserved for it.

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use thiserror::Error;

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

/// The addresses one attachment holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Who holds it.
    pub key: WorkloadKey,
    /// The tenant the addresses belong to (addresses are only unique within a tenant).
    pub tenant: String,
    /// One address per prefix of the tenant on this node.
    pub addresses: Vec<IpAddr>,
}

/// Why an address could not be leased.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum IpamError {
    /// Every usable address of a prefix is leased.
    #[error("tenant `{tenant}`: no free address left in {prefix} ({in_use} leased)")]
    Exhausted {
        /// The tenant.
        tenant: String,
        /// The full prefix.
        prefix: IpNetwork,
        /// How many addresses of it are leased.
        in_use: usize,
    },
    /// The attachment already holds a lease in another tenant.
    #[error("{key} already holds addresses in tenant `{existing}`")]
    OtherTenant {
        /// The attachment.
        key: WorkloadKey,
        /// The tenant of its lease.
        existing: String,
    },
    /// The tenant has no prefix on this node.
    #[error("tenant `{0}` has no prefix on this node")]
    NoPrefix(String),
}

/// Every lease of this node, all tenants. Serialized into the state file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Leases {
    /// Leases by [`WorkloadKey::as_string`].
    leases: BTreeMap<String, Lease>,
}

impl Leases {
    /// The lease an attachment holds.
    pub fn get(&self, key: &WorkloadKey) -> Option<&Lease> {
        self.leases.get(&key.as_string())
    }

    /// All leases, ordered by key.
    pub fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values()
    }

    /// Number of leases.
    pub fn len(&self) -> usize {
        self.leases.len()
    }

    /// True when nothing is leased.
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    /// Leases one address from each of `prefixes` for `key` in `tenant`.
    /// Idempotent: an attachment that already holds a lease in the tenant
    /// gets it back unchanged. On error nothing is leased.
    pub fn allocate(
        &mut self,
        key: &WorkloadKey,
        tenant: &str,
        prefixes: &[IpNetwork],
    ) -> Result<Lease, IpamError> {
        if let Some(existing) = self.get(key) {
            if existing.tenant != tenant {
                return Err(IpamError::OtherTenant {
                    key: key.clone(),
                    existing: existing.tenant.clone(),
                });
            }
            return Ok(existing.clone());
        }
        if prefixes.is_empty() {
            return Err(IpamError::NoPrefix(tenant.to_string()));
        }
        let used: BTreeSet<IpAddr> = self
            .leases
            .values()
            .filter(|l| l.tenant == tenant)
            .flat_map(|l| l.addresses.iter().copied())
            .collect();
        let mut addresses = Vec::with_capacity(prefixes.len());
        for prefix in prefixes {
            match first_free(*prefix, &used) {
                Some(addr) => addresses.push(addr),
                None => {
                    return Err(IpamError::Exhausted {
                        tenant: tenant.to_string(),
                        prefix: *prefix,
                        in_use: used.iter().filter(|a| prefix.contains(**a)).count(),
                    });
                }
            }
        }
        let lease = Lease {
            key: key.clone(),
            tenant: tenant.to_string(),
            addresses,
        };
        self.leases.insert(key.as_string(), lease.clone());
        Ok(lease)
    }

    /// Releases an attachment's lease; `None` if it held none (a repeated
    /// release is not an error).
    pub fn release(&mut self, key: &WorkloadKey) -> Option<Lease> {
        self.leases.remove(&key.as_string())
    }

    /// Releases every lease whose container `is_alive` says is gone, and
    /// returns them (CNI GC: the runtime names the containers it still has).
    pub fn collect_garbage(&mut self, is_alive: impl Fn(&WorkloadKey) -> bool) -> Vec<Lease> {
        let dead: Vec<String> = self
            .leases
            .iter()
            .filter(|(_, l)| !is_alive(&l.key))
            .map(|(k, _)| k.clone())
            .collect();
        dead.iter().filter_map(|k| self.leases.remove(k)).collect()
    }
}

/// The lowest address of `prefix` that is usable and not in `used`.
fn first_free(prefix: IpNetwork, used: &BTreeSet<IpAddr>) -> Option<IpAddr> {
    match prefix {
        IpNetwork::V4(net) => {
            let base = u32::from(net.network());
            let size = net.size();
            // Skip the network address and, below /31, the broadcast address.
            let last = if net.prefix() >= 31 { size } else { size - 1 };
            (1..last)
                .map(|i| IpAddr::V4(Ipv4Addr::from(base + i)))
                .find(|a| !used.contains(a))
        }
        IpNetwork::V6(net) => {
            let base = u128::from(net.network());
            // Skip the subnet-router anycast address (RFC 4291 §2.6.1).
            let size = net.size();
            (1..size)
                .map(|i| IpAddr::V6(Ipv6Addr::from(base + i)))
                .find(|a| !used.contains(a))
        }
    }
}

#[cfg(test)]
mod tests;
