//! Attaching workloads: a network namespace gets a veth into its tenant.
//!
//! An attach is a sequence of idempotent `ensure_*` steps (the CNI reference
//! plugins' pattern):
//!
//! ```text
//! validate -> open netns -> [state: lease + record "attaching"]
//!   -> ensure_veth_pair -> ensure_workload_side -> ensure_host_side
//!   -> [state: record "attached"] -> observer: data plane + BGP learn the addresses
//! ```
//!
//! The record is persisted *before* the first kernel object exists and names
//! every object the steps may create, so whatever fails (a step, the disk, the
//! agent itself), the attachment can be removed completely: a failed step
//! rolls back at once; a crash is rolled back by [`Attachments::recover`] at
//! the next start. A repeated attach of the same container id and interface
//! returns the existing result.
//!
//! The [`WorkloadObserver`] (the data plane and BGP) learns an attachment's
//! addresses *before* the attach is answered, and forgets them before a
//! detach is answered: a workload's first packet after its attach returned
//! passes the forwarder's anti-spoofing check, and a stray address is in the
//! VRF and advertised by then.
//!
//! What an attached workload looks like (DESIGN.md, "Pods attach by veth"):
//! - workload: `<ifname>` with the address(es) as /32 and /128, a permanent
//!   neighbour for the link-local gateway ([`GATEWAY_V4`], [`GATEWAY_V6`]) at
//!   [`HOST_VETH_MAC`], `default via <gateway> dev <ifname> onlink`;
//! - host: `pk<hash>` (MAC [`HOST_VETH_MAC`]), a permanent neighbour for each
//!   workload address, `<addr> dev pk<hash>` in the tenant's table, and
//!   `iif pk<hash> lookup <table>` per address family;
//! - per tenant (shared by its attachments, kept on detach): `unreachable
//!   default` in the tenant's table, so no lookup falls through to the main
//!   table.

use crate::config::{Config, TenantConfig};
use crate::ipam::{self, IpamError, Lease, WorkloadKey};
use crate::netlink::{self, Netlink, NetlinkError};
use crate::state::{EndpointPhase, EndpointRecord, StateError, StateStore};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Arc;
use thiserror::Error;
use tokio::sync::Mutex;

/// The workloads' IPv4 gateway: link-local, so it is the same on every node
/// and in every tenant, and never collides with a tenant's addresses.
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The workloads' IPv6 gateway.
pub const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
/// The MAC of every host-side veth end: fixed, so the workload's permanent
/// neighbour entry stays right when the host end is recreated. Locally
/// administered (bit 1 of the first octet), as Calico does.
pub const HOST_VETH_MAC: [u8; 6] = [0xee; 6];

/// The kernel's main routing table (RT_TABLE_MAIN), where the workload's
/// default route lives.
const MAIN_TABLE: u32 = 254;

/// What to attach.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachRequest {
    /// The container id (CNI_CONTAINERID) or any unique name for a namespace.
    pub container_id: String,
    /// The workload's network namespace (an nsfs path).
    pub netns: PathBuf,
    /// The interface to create inside it.
    pub ifname: String,
    /// The tenant's name.
    pub tenant: String,
    /// Requested addresses, at most one per family (the CNI `ips`
    /// capability). Empty: allocate from the tenant's prefixes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<IpAddr>,
}

/// An attachment's addresses as the data plane and the routing see them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadAddresses {
    /// The attachment.
    pub key: WorkloadKey,
    /// Tenant name.
    pub tenant: String,
    /// Tenant id (the VRF).
    pub tenant_id: u32,
    /// Every address of the workload (anti-spoofing).
    pub addresses: Vec<IpAddr>,
    /// Those outside every prefix of the tenant on this node: each needs a
    /// host route in the VRF and in BGP (DESIGN.md, "Advertised routes").
    pub stray: Vec<IpAddr>,
}

impl WorkloadAddresses {
    /// The addresses of an endpoint record; stray ones are judged against
    /// the tenant's prefixes in `config` (none when the tenant left it).
    pub fn of(record: &EndpointRecord, config: &Config) -> WorkloadAddresses {
        let prefixes = config
            .tenant(&record.tenant)
            .map(|t| t.prefixes.as_slice())
            .unwrap_or_default();
        WorkloadAddresses {
            key: record.key.clone(),
            tenant: record.tenant.clone(),
            tenant_id: record.tenant_id,
            addresses: record.addresses.clone(),
            stray: if prefixes.is_empty() {
                Vec::new()
            } else {
                record
                    .addresses
                    .iter()
                    .copied()
                    .filter(|a| ipam::is_stray(*a, prefixes))
                    .collect()
            },
        }
    }
}

/// Whoever must know a workload's addresses before its attach or detach is
/// answered: the forwarder (anti-spoofing, stray host routes) and BGP
/// (stray host routes advertised). Both calls are idempotent.
pub trait WorkloadObserver: Send + Sync {
    /// The workload is attached; returns once the change is in effect.
    fn attached<'a>(&'a self, workload: &'a WorkloadAddresses)
    -> BoxFuture<'a, anyhow::Result<()>>;
    /// The workload is being detached; returns once it is forgotten.
    fn detached<'a>(&'a self, workload: &'a WorkloadAddresses)
    -> BoxFuture<'a, anyhow::Result<()>>;
}

// An attached interface, as the API answers it: a wire type, so it lives in pisek-api.
pub use pisek_api::Attachment;

impl From<&EndpointRecord> for Attachment {
    fn from(r: &EndpointRecord) -> Self {
        Attachment {
            container_id: r.key.container_id.clone(),
            ifname: r.key.ifname.clone(),
            tenant: r.tenant.clone(),
            netns: r.netns.clone(),
            host_ifname: r.host_ifname.clone(),
            mac: r.mac.clone(),
            addresses: r
                .addresses
                .iter()
                .map(|a| format!("{a}/{}", host_prefix_len(*a)))
                .collect(),
            gateways: r.addresses.iter().map(|a| gateway_for(*a)).collect(),
            mtu: r.mtu,
        }
    }
}

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

/// The pod MTU: the underlay MTU minus WireGuard (32 bytes of header and tag,
/// plus the outer UDP and IP headers) minus the MPLSoUDP headers inside it
/// (tunnel IP, UDP, one 4-byte label), as DESIGN.md computes it. The
/// underlay's IP version is that of the listen address; the tunnel's that of
/// the tunnel network.
pub fn workload_mtu(config: &Config) -> u32 {
    let ip_header = |v6: bool| if v6 { 40 } else { 20 };
    let udp = 8;
    let wireguard = 32 + udp + ip_header(config.underlay.listen.is_ipv6());
    let mpls_over_udp = ip_header(config.tunnel.address.is_ipv6()) + udp + 4;
    config
        .underlay
        .mtu
        .saturating_sub(wireguard + mpls_over_udp)
}

/// The host-side interface name of an attachment: `pk` and 11 hex digits of a
/// hash of container id and interface name (13 bytes, within IFNAMSIZ). Same
/// inputs, same name, so an agent that lost its state still finds it.
pub fn host_ifname(key: &WorkloadKey) -> String {
    format!("pk{:011x}", fnv1a(&key.as_string()) & 0xfff_ffff_ffff)
}

/// The temporary name of the workload end while it is still in the host
/// namespace (renamed to the requested name inside the workload's).
fn peer_temp_ifname(key: &WorkloadKey) -> String {
    format!("pkp{:011x}", fnv1a(&key.as_string()) & 0xfff_ffff_ffff)
}

/// FNV-1a, 64 bit: stable across Rust versions, unlike `DefaultHasher`.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn host_prefix_len(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

fn gateway_for(addr: IpAddr) -> IpAddr {
    if addr.is_ipv4() {
        IpAddr::V4(GATEWAY_V4)
    } else {
        IpAddr::V6(GATEWAY_V6)
    }
}

fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let bytes: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    <[u8; 6]>::try_from(bytes.as_slice()).ok()
}

/// Checks a request's names before anything is allocated.
fn validate_request(req: &AttachRequest) -> Result<(), AttachError> {
    validate_key(&WorkloadKey::new(&req.container_id, &req.ifname))?;
    if !req.netns.is_absolute() {
        return Err(AttachError::InvalidRequest(format!(
            "netns `{}` is not an absolute path",
            req.netns.display()
        )));
    }
    // One address per family, as the workload gets one per family.
    for ipv4 in [true, false] {
        let same: Vec<String> = req
            .addresses
            .iter()
            .filter(|a| a.is_ipv4() == ipv4)
            .map(IpAddr::to_string)
            .collect();
        if same.len() > 1 {
            return Err(AttachError::InvalidRequest(format!(
                "at most one {} address may be requested, not {}",
                if ipv4 { "IPv4" } else { "IPv6" },
                same.join(", ")
            )));
        }
    }
    Ok(())
}

fn validate_key(key: &WorkloadKey) -> Result<(), AttachError> {
    let id = &key.container_id;
    // CNI spec §"Parameters": the container id is alphanumeric plus `_.-`.
    if id.is_empty()
        || id.len() > 256
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
    {
        return Err(AttachError::InvalidRequest(format!(
            "container id `{id}` must be 1-256 characters of A-Z, a-z, 0-9, `_`, `.`, `-`"
        )));
    }
    // Linux dev_valid_name(): 1-15 bytes, not `.`/`..`, no `/`, `:` or whitespace.
    let ifname = &key.ifname;
    if ifname.is_empty()
        || ifname.len() > 15
        || ifname == "."
        || ifname == ".."
        || ifname
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(AttachError::InvalidRequest(format!(
            "interface name `{ifname}` is not a valid Linux interface name"
        )));
    }
    Ok(())
}

/// The attachments of this node: config, state and the host's netlink socket.
pub struct Attachments {
    config: Arc<Config>,
    store: Arc<Mutex<StateStore>>,
    host: Netlink,
    observer: Option<Arc<dyn WorkloadObserver>>,
}

impl Attachments {
    /// Attachments over an opened state store, doing netlink work in the
    /// calling process's namespace.
    pub fn new(config: Arc<Config>, store: Arc<Mutex<StateStore>>, host: Netlink) -> Attachments {
        Attachments {
            config,
            store,
            host,
            observer: None,
        }
    }

    /// Tells `observer` of every attach and detach before it is answered.
    pub fn with_observer(mut self, observer: Arc<dyn WorkloadObserver>) -> Attachments {
        self.observer = Some(observer);
        self
    }

    /// Tells the observer of every complete attachment again: on start,
    /// for the attachments adopted from the state.
    pub async fn publish_all(&self) -> anyhow::Result<()> {
        let Some(observer) = &self.observer else {
            return Ok(());
        };
        // Under the lock: no attach or detach interleaves with the replay.
        let store = self.store.lock().await;
        for record in store.state().endpoints.iter() {
            if record.phase == EndpointPhase::Attached {
                observer
                    .attached(&WorkloadAddresses::of(record, &self.config))
                    .await?;
            }
        }
        Ok(())
    }

    /// The state store (for listing).
    pub fn store(&self) -> &Arc<Mutex<StateStore>> {
        &self.store
    }

    /// Attaches a workload; returns the attachment (the existing one for a
    /// repeated request). On error nothing is left behind: no interface, no
    /// lease, no record.
    pub async fn attach(&self, req: &AttachRequest) -> Result<Attachment, AttachError> {
        validate_request(req)?;
        let tenant = self
            .config
            .tenant(&req.tenant)
            .ok_or_else(|| AttachError::UnknownTenant(req.tenant.clone()))?
            .clone();
        let key = WorkloadKey::new(&req.container_id, &req.ifname);
        let mut store = self.store.lock().await;
        if let Err(e) = self.remove_half_made(&mut store, Some(&key)).await {
            tracing::warn!(error = %e, "half-made attachments remain");
        }
        if let Some(existing) = store.state().endpoints.get(&key) {
            if let Some(missing) = req
                .addresses
                .iter()
                .find(|a| !existing.addresses.contains(a))
            {
                return Err(AttachError::Conflict {
                    key,
                    detail: format!(
                        "with {}, not {missing}",
                        existing
                            .addresses
                            .iter()
                            .map(IpAddr::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
            if existing.tenant != req.tenant || existing.netns != req.netns {
                return Err(AttachError::Conflict {
                    key,
                    detail: format!(
                        "in tenant `{}`, netns {}",
                        existing.tenant,
                        existing.netns.display()
                    ),
                });
            }
            if existing.phase == EndpointPhase::Attached {
                return Ok(Attachment::from(existing));
            }
        }
        // Before anything is allocated: the namespace must exist.
        let netns = netlink::open_netns(&req.netns).map_err(AttachError::Netns)?;
        let record = store.update(|s| -> Result<EndpointRecord, AttachError> {
            let lease = s.leases.allocate_requested(
                &key,
                &tenant.name,
                &tenant.prefixes,
                &req.addresses,
            )?;
            let record = self.new_record(req, &tenant, &lease);
            s.endpoints.insert(record.clone());
            Ok(record)
        })?;
        match self.ensure_objects(&record, &netns).await {
            Ok(mac) => {
                let done = store.update(|s| -> Result<EndpointRecord, AttachError> {
                    let mut r = record.clone();
                    r.mac = Some(format_mac(mac));
                    r.phase = EndpointPhase::Attached;
                    s.endpoints.insert(r.clone());
                    Ok(r)
                });
                let published = match done {
                    Ok(r) => self.publish(&r).await.map(|()| r),
                    Err(e) => Err(e),
                };
                match published {
                    Ok(r) => Ok(Attachment::from(&r)),
                    Err(e) => {
                        self.roll_back(&mut store, &record).await;
                        Err(e)
                    }
                }
            }
            Err(e) => {
                self.roll_back(&mut store, &record).await;
                Err(e)
            }
        }
    }

    fn new_record(
        &self,
        req: &AttachRequest,
        tenant: &TenantConfig,
        lease: &Lease,
    ) -> EndpointRecord {
        EndpointRecord {
            key: lease.key.clone(),
            tenant: tenant.name.clone(),
            tenant_id: tenant.id,
            netns: req.netns.clone(),
            host_ifname: host_ifname(&lease.key),
            addresses: lease.addresses.clone(),
            mtu: workload_mtu(&self.config),
            table_id: tenant.table_id(),
            rule_priority: tenant.rule_priority(),
            mac: None,
            phase: EndpointPhase::Attaching,
        }
    }

    /// Every kernel object of an attachment; returns the workload's MAC.
    async fn ensure_objects(
        &self,
        record: &EndpointRecord,
        netns: &std::fs::File,
    ) -> Result<[u8; 6], AttachError> {
        let temp = peer_temp_ifname(&record.key);
        self.ensure_veth_pair(record, &temp, netns).await?;
        let workload = Netlink::open_in_netns(netns, &record.netns)?;
        let mac = ensure_workload_side(&workload, record, &temp).await?;
        self.ensure_host_side(record, mac).await?;
        Ok(mac)
    }

    /// The veth pair, its workload end moved into the namespace.
    async fn ensure_veth_pair(
        &self,
        record: &EndpointRecord,
        temp: &str,
        netns: &std::fs::File,
    ) -> Result<(), AttachError> {
        self.host
            .ensure_veth(&record.host_ifname, temp, HOST_VETH_MAC)
            .await?;
        // Still here after an earlier, interrupted attach or just created.
        if let Some(peer) = self.host.link_by_name(temp).await? {
            self.host
                .move_link_to_netns(peer.index, netns, &format!("{temp} (workload end)"))
                .await?;
        }
        Ok(())
    }

    /// Host end up with the MTU, neighbours, routes in the tenant table, and
    /// the `iif` rule per family.
    async fn ensure_host_side(
        &self,
        r: &EndpointRecord,
        workload_mac: [u8; 6],
    ) -> Result<(), AttachError> {
        let host = &self.host;
        let link = host.link_by_name(&r.host_ifname).await?.ok_or_else(|| {
            AttachError::Netlink(NetlinkError::Conflict(format!(
                "host interface {} vanished during attach",
                r.host_ifname
            )))
        })?;
        host.set_mtu_and_up(link.index, r.mtu, &r.host_ifname)
            .await?;
        if r.addresses.iter().any(IpAddr::is_ipv4) {
            netlink::sysctl::enable_strict_rp_filter(&r.host_ifname).map_err(|source| {
                AttachError::Netlink(NetlinkError::Kernel {
                    what: format!("configuring {}", r.host_ifname),
                    source,
                })
            })?;
        }
        for addr in &r.addresses {
            host.ensure_permanent_neighbour(link.index, *addr, workload_mac, &r.host_ifname)
                .await?;
            host.ensure_device_route(
                *addr,
                host_prefix_len(*addr),
                link.index,
                r.table_id,
                &r.host_ifname,
            )
            .await?;
        }
        for ipv6 in families(&r.addresses) {
            // Before the rule: from its first packet the workload's traffic
            // must end in the tenant's table, never in the host's main table.
            host.ensure_unreachable_default(r.table_id, ipv6).await?;
            host.ensure_iif_rule(&r.host_ifname, r.table_id, r.rule_priority, ipv6)
                .await?;
        }
        Ok(())
    }

    /// Tells the observer of a complete attachment.
    async fn publish(&self, record: &EndpointRecord) -> Result<(), AttachError> {
        match &self.observer {
            Some(o) => o
                .attached(&WorkloadAddresses::of(record, &self.config))
                .await
                .map_err(AttachError::Dataplane),
            None => Ok(()),
        }
    }

    /// Tells the observer an attachment goes away. A data plane that cannot
    /// be told (it stopped) does not hold up a detach: CNI DEL must succeed.
    async fn unpublish(&self, record: &EndpointRecord) {
        if let Some(o) = &self.observer
            && let Err(e) = o
                .detached(&WorkloadAddresses::of(record, &self.config))
                .await
        {
            tracing::error!(endpoint = %record.key, error = %e, "the data plane did not take a detach");
        }
    }

    /// Removes every kernel object of an attachment (all steps tolerate
    /// objects that are already gone), then its lease and record.
    async fn roll_back(&self, store: &mut StateStore, record: &EndpointRecord) {
        self.unpublish(record).await;
        if let Err(e) = self.remove_objects(record).await {
            tracing::error!(endpoint = %record.key, error = %e, "rolling back a failed attach");
        }
        let removed = store.update(|s| -> Result<(), StateError> {
            s.endpoints.remove(&record.key);
            s.leases.release(&record.key);
            Ok(())
        });
        if let Err(e) = removed {
            // The record stays in phase `attaching`; the next start removes it.
            tracing::error!(endpoint = %record.key, error = %e, "could not drop the record of a failed attach");
        }
    }

    async fn remove_objects(&self, r: &EndpointRecord) -> Result<(), NetlinkError> {
        // Rules name the interface and outlive it: delete them explicitly.
        for ipv6 in [false, true] {
            self.host
                .delete_iif_rule(&r.host_ifname, r.table_id, r.rule_priority, ipv6)
                .await?;
        }
        // Deleting the host end deletes the workload end, the routes through
        // it and its neighbour entries. A workload end that was never moved
        // is still under its temporary name here.
        self.host.delete_link(&r.host_ifname).await?;
        self.host.delete_link(&peer_temp_ifname(&r.key)).await?;
        Ok(())
    }

    /// Detaches a workload. Idempotent: detaching what is not attached (or
    /// whose namespace is gone) succeeds. Returns the removed attachment.
    pub async fn detach(&self, key: &WorkloadKey) -> Result<Option<Attachment>, AttachError> {
        validate_key(key)?;
        let mut store = self.store.lock().await;
        let record = store.state().endpoints.get(key).cloned();
        match &record {
            Some(r) => {
                self.unpublish(r).await;
                self.remove_objects(r).await?;
            }
            // No record: still remove an interface by its derived name, in
            // case an earlier state was lost.
            None => {
                self.host.delete_link(&host_ifname(key)).await?;
            }
        }
        store.update(|s| -> Result<(), AttachError> {
            s.endpoints.remove(key);
            s.leases.release(key);
            Ok(())
        })?;
        Ok(record.as_ref().map(Attachment::from))
    }

    /// Compares an attachment with the live system; the error lists every
    /// difference.
    pub async fn check(&self, key: &WorkloadKey) -> Result<Attachment, AttachError> {
        validate_key(key)?;
        let record = {
            let store = self.store.lock().await;
            store.state().endpoints.get(key).cloned()
        }
        .filter(|r| r.phase == EndpointPhase::Attached)
        .ok_or_else(|| AttachError::NotAttached(key.clone()))?;
        let mut problems = Vec::new();
        self.check_host_side(&record, &mut problems).await?;
        match netlink::open_netns(&record.netns)
            .and_then(|file| Netlink::open_in_netns(&file, &record.netns))
        {
            Ok(workload) => check_workload_side(&workload, &record, &mut problems).await?,
            Err(e) => problems.push(e.to_string()),
        }
        if problems.is_empty() {
            Ok(Attachment::from(&record))
        } else {
            Err(AttachError::CheckFailed {
                key: key.clone(),
                problems: problems.join("; "),
            })
        }
    }

    async fn check_host_side(
        &self,
        r: &EndpointRecord,
        problems: &mut Vec<String>,
    ) -> Result<(), NetlinkError> {
        let Some(link) = self.host.link_by_name(&r.host_ifname).await? else {
            problems.push(format!("host interface {} is missing", r.host_ifname));
            return Ok(());
        };
        if !link.up {
            problems.push(format!("host interface {} is down", r.host_ifname));
        }
        for ipv6 in families(&r.addresses) {
            let rules = self.host.iif_rules(ipv6).await?;
            if !rules.iter().any(|x| {
                x.iif == r.host_ifname && x.table == r.table_id && x.priority == r.rule_priority
            }) {
                problems.push(format!(
                    "rule iif {} lookup {} is missing",
                    r.host_ifname, r.table_id
                ));
            }
        }
        for addr in &r.addresses {
            let routes = self
                .host
                .routes_in_table(addr.is_ipv6(), r.table_id)
                .await?;
            if !routes.iter().any(|x| {
                x.destination == *addr
                    && x.prefix_len == host_prefix_len(*addr)
                    && x.oif == Some(link.index)
            }) {
                problems.push(format!(
                    "route {addr} dev {} table {} is missing",
                    r.host_ifname, r.table_id
                ));
            }
        }
        Ok(())
    }

    /// Lists the attachments.
    pub async fn list(&self) -> Vec<Attachment> {
        let store = self.store.lock().await;
        store
            .state()
            .endpoints
            .iter()
            .map(Attachment::from)
            .collect()
    }

    /// Detaches every attachment whose container is not in `live` (CNI GC,
    /// `cni.dev/valid-attachments`). Returns the keys released.
    pub async fn collect_garbage(
        &self,
        live: &[WorkloadKey],
    ) -> Result<Vec<WorkloadKey>, AttachError> {
        let dead: Vec<WorkloadKey> = {
            let store = self.store.lock().await;
            let state = store.state();
            let mut keys: Vec<WorkloadKey> = state
                .endpoints
                .iter()
                .map(|r| r.key.clone())
                .chain(state.leases.iter().map(|l| l.key.clone()))
                .filter(|k| !live.contains(k))
                .collect();
            keys.sort();
            keys.dedup();
            keys
        };
        for key in &dead {
            self.detach(key).await?;
        }
        Ok(dead)
    }

    /// On start: removes attachments a crash left half-made (phase
    /// `attaching`), so their addresses and interfaces do not leak. Complete
    /// attachments are adopted as they are.
    pub async fn recover(&self) -> Result<Vec<WorkloadKey>, AttachError> {
        let mut store = self.store.lock().await;
        self.remove_half_made(&mut store, None).await
    }

    /// Removes every attachment in phase `attaching` except `keep`: those a
    /// crash interrupted, and those whose rollback could not be written (a
    /// full disk). Attach calls it too, so such leftovers go as soon as the
    /// disk has room again, not only at the next start.
    async fn remove_half_made(
        &self,
        store: &mut StateStore,
        keep: Option<&WorkloadKey>,
    ) -> Result<Vec<WorkloadKey>, AttachError> {
        let half_made: Vec<EndpointRecord> = store
            .state()
            .endpoints
            .iter()
            .filter(|r| r.phase == EndpointPhase::Attaching && Some(&r.key) != keep)
            .cloned()
            .collect();
        for r in &half_made {
            tracing::warn!(endpoint = %r.key, "removing a half-made attachment");
            self.remove_objects(r).await?;
            store.update(|s| -> Result<(), AttachError> {
                s.endpoints.remove(&r.key);
                s.leases.release(&r.key);
                Ok(())
            })?;
        }
        Ok(half_made.into_iter().map(|r| r.key).collect())
    }
}

/// The address families present, as the `ipv6` flag of the netlink calls.
fn families(addresses: &[IpAddr]) -> Vec<bool> {
    let mut out = Vec::new();
    if addresses.iter().any(IpAddr::is_ipv4) {
        out.push(false);
    }
    if addresses.iter().any(IpAddr::is_ipv6) {
        out.push(true);
    }
    out
}

/// Inside the workload: rename the veth end, MTU, up, addresses, gateway
/// neighbour, default route. Returns the interface's MAC.
async fn ensure_workload_side(
    workload: &Netlink,
    r: &EndpointRecord,
    temp: &str,
) -> Result<[u8; 6], AttachError> {
    let ifname = &r.key.ifname;
    let link = match workload.link_by_name(temp).await? {
        Some(moved) => {
            workload
                .rename_link(moved.index, ifname)
                .await
                .map_err(|e| {
                    if e.errno() == Some(nix::errno::Errno::EEXIST as i32) {
                        AttachError::InterfaceExists {
                            netns: r.netns.clone(),
                            ifname: ifname.clone(),
                        }
                    } else {
                        e.into()
                    }
                })?;
            moved.index
        }
        None => match workload.link_by_name(ifname).await? {
            Some(existing) if existing.kind.as_deref() == Some("veth") => existing.index,
            _ => {
                return Err(AttachError::Netlink(NetlinkError::Conflict(format!(
                    "the workload end of {} is in neither namespace",
                    r.host_ifname
                ))));
            }
        },
    };
    workload.set_mtu_and_up(link, r.mtu, ifname).await?;
    for addr in &r.addresses {
        workload
            .ensure_address(link, *addr, host_prefix_len(*addr), ifname)
            .await
            .map_err(|e| {
                // The kernel's only hint that IPv6 is off on the interface.
                if addr.is_ipv6() && e.errno() == Some(nix::errno::Errno::EACCES as i32) {
                    AttachError::Netlink(NetlinkError::Conflict(format!(
                        "cannot add {addr} to {ifname}: IPv6 is disabled in {} \
                         (net.ipv6.conf.{ifname}.disable_ipv6) but tenant `{}` is dual stack",
                        r.netns.display(),
                        r.tenant
                    )))
                } else {
                    e.into()
                }
            })?;
    }
    for addr in &r.addresses {
        let gateway = gateway_for(*addr);
        workload
            .ensure_permanent_neighbour(link, gateway, HOST_VETH_MAC, ifname)
            .await?;
        workload
            .ensure_default_route_onlink(gateway, link, ifname)
            .await?;
    }
    let mac = workload
        .link_by_name(ifname)
        .await?
        .and_then(|l| l.mac)
        .ok_or_else(|| {
            AttachError::Netlink(NetlinkError::Conflict(format!(
                "{ifname} in {} has no MAC address",
                r.netns.display()
            )))
        })?;
    Ok(mac)
}

async fn check_workload_side(
    workload: &Netlink,
    r: &EndpointRecord,
    problems: &mut Vec<String>,
) -> Result<(), NetlinkError> {
    let ifname = &r.key.ifname;
    let Some(link) = workload.link_by_name(ifname).await? else {
        problems.push(format!("{ifname} is missing in {}", r.netns.display()));
        return Ok(());
    };
    if !link.up {
        problems.push(format!("{ifname} is down"));
    }
    if let (Some(want), Some(have)) = (r.mac.as_deref().and_then(parse_mac), link.mac)
        && want != have
    {
        problems.push(format!(
            "{ifname} has MAC {} instead of {}",
            format_mac(have),
            format_mac(want)
        ));
    }
    let addresses = workload.addresses(link.index).await?;
    for addr in &r.addresses {
        if !addresses.contains(&(*addr, host_prefix_len(*addr))) {
            problems.push(format!("{ifname} lacks {addr}/{}", host_prefix_len(*addr)));
        }
    }
    for ipv6 in families(&r.addresses) {
        let routes = workload.routes_in_table(ipv6, MAIN_TABLE).await?;
        let gateway = if ipv6 {
            IpAddr::V6(GATEWAY_V6)
        } else {
            IpAddr::V4(GATEWAY_V4)
        };
        if !routes
            .iter()
            .any(|x| x.prefix_len == 0 && x.gateway == Some(gateway) && x.oif == Some(link.index))
        {
            problems.push(format!(
                "default route via {gateway} dev {ifname} is missing"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ifname_is_stable_and_fits_ifnamsiz() {
        let key = WorkloadKey::new("abc123", "eth0");
        let name = host_ifname(&key);
        assert_eq!(name, host_ifname(&key.clone()));
        assert_eq!(name.len(), 13);
        assert!(name.starts_with("pk"));
        assert_ne!(name, host_ifname(&WorkloadKey::new("abc123", "net1")));
        assert!(peer_temp_ifname(&key).len() <= 15);
    }

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        // From the FNV reference test suite.
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn bad_names_are_refused_before_anything_happens() {
        let ok = AttachRequest {
            container_id: "c1".into(),
            netns: "/run/netns/x".into(),
            ifname: "eth0".into(),
            tenant: "city".into(),
            addresses: Vec::new(),
        };
        assert!(validate_request(&ok).is_ok());
        let two_v4 = AttachRequest {
            addresses: vec![
                "10.1.9.5".parse().expect("ip"),
                "10.1.9.6".parse().expect("ip"),
            ],
            ..ok.clone()
        };
        assert!(matches!(
            validate_request(&two_v4),
            Err(AttachError::InvalidRequest(m)) if m.contains("at most one IPv4")
        ));
        let dual = AttachRequest {
            addresses: vec![
                "10.1.9.5".parse().expect("ip"),
                "fd00:9::5".parse().expect("ip"),
            ],
            ..ok.clone()
        };
        assert!(validate_request(&dual).is_ok());
        for (id, ifname, netns) in [
            ("", "eth0", "/run/netns/x"),
            ("a/b", "eth0", "/run/netns/x"),
            ("c1", "", "/run/netns/x"),
            ("c1", "a-very-long-interface", "/run/netns/x"),
            ("c1", "eth 0", "/run/netns/x"),
            ("c1", "..", "/run/netns/x"),
            ("c1", "eth0", "relative/path"),
        ] {
            let req = AttachRequest {
                container_id: id.into(),
                ifname: ifname.into(),
                netns: netns.into(),
                ..ok.clone()
            };
            assert!(
                matches!(validate_request(&req), Err(AttachError::InvalidRequest(_))),
                "{req:?}"
            );
        }
    }

    #[test]
    fn mac_round_trips_through_text() {
        let mac = [0x02, 0xab, 0, 1, 0xfe, 0xff];
        assert_eq!(format_mac(mac), "02:ab:00:01:fe:ff");
        assert_eq!(parse_mac("02:ab:00:01:fe:ff"), Some(mac));
        assert_eq!(parse_mac("02:ab"), None);
    }
}
