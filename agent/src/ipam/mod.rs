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
//!
//! Requested addresses (the CNI `ips` capability, Calico's IP reservation):
//! an attach may ask for one address per family. One inside a prefix of the
//! tenant on this node is leased exactly, or refused when another attachment
//! holds it or when it is reserved; it replaces the allocation from that
//! prefix. One outside every such prefix is a *stray* address (a pod that
//! moved and keeps its IP, a datacenter service with a fixed IP): it is
//! leased as asked, unique in the tenant on this node, and [`is_stray`] tells
//! the routing that it needs a host route of its own.

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use thiserror::Error;

// What identifies one attachment: a wire type of the API, so it lives in pisek-api.
pub use pisek_api::WorkloadKey;

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
    /// A requested address is held by another attachment of the tenant.
    #[error("tenant `{tenant}`: {address} is already attached to {holder}")]
    AddressInUse {
        /// The tenant.
        tenant: String,
        /// The address asked for.
        address: IpAddr,
        /// Who holds it.
        holder: WorkloadKey,
    },
    /// A requested address can never be a workload's.
    #[error("{address} cannot be requested: {reason}")]
    AddressReserved {
        /// The address asked for.
        address: IpAddr,
        /// Why (`the network address of 10.1.1.0/24`, `link-local`, ...).
        reason: String,
    },
    /// A requested address of a family the tenant does not route on this
    /// node: its workloads' off-node traffic of that family has no way out.
    #[error("tenant `{tenant}` has no {family} prefix on this node, so {address} cannot be routed")]
    FamilyNotRouted {
        /// The tenant.
        tenant: String,
        /// The address asked for.
        address: IpAddr,
        /// `IPv4` or `IPv6`.
        family: &'static str,
    },
    /// The attachment holds a lease without the requested address.
    #[error("{key} already holds {} (not {requested})", format_addresses(held))]
    OtherAddresses {
        /// The attachment.
        key: WorkloadKey,
        /// What it holds.
        held: Vec<IpAddr>,
        /// The address asked for that it does not hold.
        requested: IpAddr,
    },
}

fn format_addresses(addresses: &[IpAddr]) -> String {
    addresses
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
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
        self.allocate_requested(key, tenant, prefixes, &[])
    }

    /// [`Leases::allocate`] with requested addresses (at most one per
    /// family; the caller checks that). A requested address inside a prefix
    /// is leased exactly instead of that prefix's first free one; one outside
    /// every prefix is leased as a stray address, and no address of its
    /// family is allocated from the prefixes. Idempotent: an attachment
    /// that already holds every requested address gets its lease back;
    /// one that holds others is refused. On error nothing is leased.
    pub fn allocate_requested(
        &mut self,
        key: &WorkloadKey,
        tenant: &str,
        prefixes: &[IpNetwork],
        requested: &[IpAddr],
    ) -> Result<Lease, IpamError> {
        self.allocate_avoiding(key, tenant, prefixes, requested, &BTreeSet::new())
    }

    /// [`Leases::allocate_requested`] that never hands out an address in
    /// `avoid`: the tenant's learned host routes, workloads on other nodes
    /// (a stray address that lies in this node's prefix). Requested
    /// addresses are not checked against it: a workload that moved here
    /// asks for its own address while its old node may still advertise it.
    pub fn allocate_avoiding(
        &mut self,
        key: &WorkloadKey,
        tenant: &str,
        prefixes: &[IpNetwork],
        requested: &[IpAddr],
        avoid: &BTreeSet<IpAddr>,
    ) -> Result<Lease, IpamError> {
        if let Some(existing) = self.get(key) {
            if existing.tenant != tenant {
                return Err(IpamError::OtherTenant {
                    key: key.clone(),
                    existing: existing.tenant.clone(),
                });
            }
            if let Some(missing) = requested.iter().find(|a| !existing.addresses.contains(a)) {
                return Err(IpamError::OtherAddresses {
                    key: key.clone(),
                    held: existing.addresses.clone(),
                    requested: *missing,
                });
            }
            return Ok(existing.clone());
        }
        if prefixes.is_empty() {
            return Err(IpamError::NoPrefix(tenant.to_string()));
        }
        for address in requested {
            self.check_requested(tenant, prefixes, *address)?;
        }
        let used: BTreeSet<IpAddr> = self
            .leases
            .values()
            .filter(|l| l.tenant == tenant)
            .flat_map(|l| l.addresses.iter().copied())
            .chain(avoid.iter().copied())
            .collect();
        let mut addresses = Vec::with_capacity(prefixes.len());
        for prefix in prefixes {
            // A requested address of the prefix's family stands in for the
            // allocation from it: one address per family.
            if let Some(wanted) = requested.iter().find(|a| a.is_ipv4() == prefix.is_ipv4()) {
                if !addresses.contains(wanted) {
                    addresses.push(*wanted);
                }
                continue;
            }
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

    /// Refuses a requested address that is reserved, held by another
    /// attachment of the tenant, or of a family the tenant does not route.
    fn check_requested(
        &self,
        tenant: &str,
        prefixes: &[IpNetwork],
        address: IpAddr,
    ) -> Result<(), IpamError> {
        if let Some(reason) = reserved_reason(address, prefixes) {
            return Err(IpamError::AddressReserved { address, reason });
        }
        if !prefixes.iter().any(|p| p.is_ipv4() == address.is_ipv4()) {
            return Err(IpamError::FamilyNotRouted {
                tenant: tenant.to_string(),
                address,
                family: if address.is_ipv4() { "IPv4" } else { "IPv6" },
            });
        }
        let holder = self
            .leases
            .values()
            .find(|l| l.tenant == tenant && l.addresses.contains(&address));
        if let Some(holder) = holder {
            return Err(IpamError::AddressInUse {
                tenant: tenant.to_string(),
                address,
                holder: holder.key.clone(),
            });
        }
        Ok(())
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

/// Whether `address` lies outside every one of the tenant's `prefixes` on
/// this node: such an address is not covered by the node's aggregate route
/// and needs a host route (/32, /128) of its own, in the VRF and in BGP
/// (DESIGN.md, "Advertised routes").
pub fn is_stray(address: IpAddr, prefixes: &[IpNetwork]) -> bool {
    !prefixes.iter().any(|p| p.contains(address))
}

/// Why `address` can never be requested, if it cannot: the special
/// addresses of a prefix it falls in (those [`first_free`] skips), and
/// addresses no workload may hold anywhere.
fn reserved_reason(address: IpAddr, prefixes: &[IpNetwork]) -> Option<String> {
    for prefix in prefixes.iter().filter(|p| p.contains(address)) {
        if address == prefix.network() {
            // IPv6: the subnet-router anycast address (RFC 4291 §2.6.1).
            return Some(format!("it is the network address of {prefix}"));
        }
        if let IpNetwork::V4(net) = prefix
            && net.prefix() < 31
            && address == IpAddr::V4(net.broadcast())
        {
            return Some(format!("it is the broadcast address of {prefix}"));
        }
    }
    let reason = match address {
        IpAddr::V4(a) if a.is_unspecified() => "unspecified",
        IpAddr::V4(a) if a.is_loopback() => "loopback",
        IpAddr::V4(a) if a.is_multicast() => "multicast",
        IpAddr::V4(a) if a.is_broadcast() => "limited broadcast",
        // 169.254.0.0/16 holds the workloads' gateway (169.254.1.1).
        IpAddr::V4(a) if a.is_link_local() => "link-local (the workloads' gateway range)",
        IpAddr::V6(a) if a.is_unspecified() => "unspecified",
        IpAddr::V6(a) if a.is_loopback() => "loopback",
        IpAddr::V6(a) if a.is_multicast() => "multicast",
        // fe80::/10 holds the workloads' gateway (fe80::1).
        IpAddr::V6(a) if a.is_unicast_link_local() => "link-local (the workloads' gateway range)",
        _ => return None,
    };
    Some(format!("it is a {reason} address"))
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
