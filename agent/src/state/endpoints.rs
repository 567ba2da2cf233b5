//! The endpoints this agent attached: everything needed to find, check and
//! remove their kernel objects again, even after the tenant left the config.

use crate::ipam::WorkloadKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

/// How far an attachment got. The record is written *before* the first
/// kernel object is created, so a crash in the middle leaves a record naming
/// everything that may exist; the agent removes such half-made attachments
/// on start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointPhase {
    /// Lease taken, interfaces may be partly made.
    Attaching,
    /// Every object is in place.
    Attached,
    /// Detached and its lease released; the veth pair is being deleted.
    Detaching,
}

/// One attached workload interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointRecord {
    /// Container id and interface name.
    pub key: WorkloadKey,
    /// Tenant name.
    pub tenant: String,
    /// Tenant id (the kernel ids below derive from it).
    pub tenant_id: u32,
    /// The workload's network namespace (path of its nsfs file).
    pub netns: PathBuf,
    /// The host end of the veth pair.
    pub host_ifname: String,
    /// The workload's addresses (/32 and /128 on its interface).
    pub addresses: Vec<IpAddr>,
    /// MTU set on both ends.
    pub mtu: u32,
    /// The tenant's kernel routing table.
    pub table_id: u32,
    /// Priority of the `iif <host_ifname>` rule.
    pub rule_priority: u32,
    /// The workload interface's MAC, once known.
    #[serde(default)]
    pub mac: Option<String>,
    /// How far the attachment got.
    pub phase: EndpointPhase,
    /// Who attached it (`cni:<network>`); records from before owners
    /// existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// Endpoint records by [`WorkloadKey::as_string`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Endpoints {
    by_key: BTreeMap<String, EndpointRecord>,
}

impl Endpoints {
    /// The record of an attachment.
    pub fn get(&self, key: &WorkloadKey) -> Option<&EndpointRecord> {
        self.by_key.get(&key.as_string())
    }

    /// Adds or replaces a record.
    pub fn insert(&mut self, record: EndpointRecord) {
        self.by_key.insert(record.key.as_string(), record);
    }

    /// Removes a record.
    pub fn remove(&mut self, key: &WorkloadKey) -> Option<EndpointRecord> {
        self.by_key.remove(&key.as_string())
    }

    /// All records, ordered by key.
    pub fn iter(&self) -> impl Iterator<Item = &EndpointRecord> {
        self.by_key.values()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}
