//! Attaching workloads: a network namespace gets a veth into its tenant.
//!
//! An attach is a sequence of idempotent `ensure_*` steps (the CNI reference
//! plugins' pattern):
//!
//! ```text
//! validate -> open netns -> lease (in memory, the store locked)
//!   -> ensure_veth_pair -> ensure_workload_side -> ensure_host_side
//!   -> [state: lease + record "attached"] -> observer: data plane + BGP learn the addresses
//! ```
//!
//! Every object the steps create in the host namespace is named after the
//! workload's key (`pk<hash>`, `naming.rs`), so whatever fails, the
//! attachment can be removed completely: a failed step or a failed write
//! rolls back at once; a crash before the record was written leaves
//! interfaces and rules no record names, which [`Attachments::recover`]
//! deletes at the next start, by name (as Calico sweeps `cali*`). One state
//! write per attach, not one before and one after, and to the runtime
//! directory without an fsync (`state/documents.rs`): it is on the path of
//! every CNI ADD, and fsync stalls were the ADD's tail. A repeated
//! attach of the same container id and interface returns the existing
//! result.
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
//!
//! A detach answers once the workload is off the overlay (observer told,
//! lease released) and deletes its rules and veth pair after the answer:
//! the kernel holds its routing lock for 20-30 ms to unregister a pair,
//! which any netlink request would wait for (`teardown.rs`).
//!
//! Files: `request.rs` (validation, MTU), `naming.rs` (interface names),
//! `veth.rs`, `workload_side.rs`, `host_side.rs` (the ensure steps),
//! `observer.rs` (data plane and BGP), `check.rs`, `gc.rs`, `recovery.rs`,
//! `vanished.rs` (attachments whose namespace went without a detach),
//! `teardown.rs` (the veth pair after a detach), `timing.rs` (step times);
//! this file orchestrates attach and detach and rolls back.

mod addresses;
mod attachment;
mod check;
mod error;
mod gc;
mod host_side;
mod naming;
mod observer;
mod recovery;
mod request;
mod teardown;
mod timing;
mod vanished;
mod veth;
mod workload_side;

pub use attachment::Attachment;
pub use error::AttachError;
pub use naming::host_ifname;
pub use observer::{WorkloadAddresses, WorkloadObserver};
pub use request::{AttachRequest, workload_mtu};

use crate::config::{Config, TenantConfig};
use crate::ipam::{Lease, WorkloadKey};
use crate::netlink::{self, Netlink, NetlinkError};
use crate::state::{EndpointPhase, EndpointRecord, StateError, StateStore};
use naming::{format_mac, peer_temp_ifname};
use request::{validate_key, validate_request};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use teardown::Teardowns;
use timing::StepTimes;
use tokio::sync::Mutex;
use workload_side::ensure_workload_side;

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

/// The attachments of this node: config, state and the host's netlink socket.
pub struct Attachments {
    config: Arc<Config>,
    store: Arc<Mutex<StateStore>>,
    host: Netlink,
    observer: Option<Arc<dyn WorkloadObserver>>,
    teardowns: Teardowns,
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
            teardowns: Teardowns::default(),
        }
    }

    /// Tells `observer` of every attach and detach before it is answered.
    pub fn with_observer(mut self, observer: Arc<dyn WorkloadObserver>) -> Attachments {
        self.observer = Some(observer);
        self
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
        let ipv6 = tenant.prefixes.iter().any(|p| p.is_ipv6());
        request::validate_mtu(req, workload_mtu(&self.config), ipv6)?;
        let key = WorkloadKey::new(&req.container_id, &req.ifname);
        let mut times = StepTimes::start();
        // A detach of the same interface may still be deleting the veth
        // pair whose host name this attach is about to use.
        self.teardowns.wait(&key).await;
        let mut store = self.store.lock().await;
        times.mark("wait");
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
        times.mark("check");
        let avoid = self.learned_hosts(tenant.id);
        // The lease is taken in memory (the store stays locked until the
        // record is written): the one write of an attach is the finished
        // record with its lease.
        let mut leases = store.state().leases.clone();
        let lease = leases.allocate_avoiding(
            &key,
            &tenant.name,
            &tenant.prefixes,
            &req.addresses,
            &avoid,
        )?;
        let record = self.new_record(req, &tenant, &lease);
        times.mark("lease");
        match self.ensure_objects(&record, &netns, &mut times).await {
            Ok(mac) => {
                let done = store.update(|s| -> Result<EndpointRecord, AttachError> {
                    let mut r = record.clone();
                    r.mac = Some(format_mac(mac));
                    r.phase = EndpointPhase::Attached;
                    s.leases = leases;
                    s.endpoints.insert(r.clone());
                    Ok(r)
                });
                times.mark("record");
                let published = match done {
                    Ok(r) => self.publish(&r).await.map(|()| r),
                    Err(e) => Err(e),
                };
                times.mark("publish");
                match published {
                    Ok(r) => {
                        times.log("attach", &key);
                        Ok(Attachment::from(&r))
                    }
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
            mtu: req.mtu.unwrap_or_else(|| workload_mtu(&self.config)),
            table_id: tenant.table_id(),
            rule_priority: tenant.rule_priority(),
            mac: None,
            phase: EndpointPhase::Attaching,
            owner: req.owner.clone(),
        }
    }

    /// Every kernel object of an attachment; returns the workload's MAC.
    async fn ensure_objects(
        &self,
        record: &EndpointRecord,
        netns: &std::fs::File,
        times: &mut StepTimes,
    ) -> Result<[u8; 6], AttachError> {
        let temp = peer_temp_ifname(&record.key);
        self.ensure_veth_pair(record, &temp, netns).await?;
        times.mark("veth");
        let workload = Netlink::open_in_netns(netns, &record.netns)?;
        times.mark("netns-socket");
        let mac = ensure_workload_side(&workload, record, &temp).await?;
        times.mark("workload-side");
        self.ensure_host_side(record, mac).await?;
        times.mark("host-side");
        Ok(mac)
    }

    /// Removes every kernel object of an attachment (all steps tolerate
    /// objects that are already gone), then its lease and record.
    async fn roll_back(&self, store: &mut StateStore, record: &EndpointRecord) {
        self.unpublish(record).await;
        if let Err(e) = self.remove_objects(record, &mut StepTimes::start()).await {
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

    async fn remove_objects(
        &self,
        r: &EndpointRecord,
        times: &mut StepTimes,
    ) -> Result<(), NetlinkError> {
        teardown::delete_objects(&self.host, r, times).await
    }

    /// Detaches a workload. Idempotent: detaching what is not attached (or
    /// whose namespace is gone) succeeds. Returns the removed attachment.
    pub async fn detach(&self, key: &WorkloadKey) -> Result<Option<Attachment>, AttachError> {
        validate_key(key)?;
        let mut times = StepTimes::start();
        let mut store = self.store.lock().await;
        times.mark("wait");
        let record = store
            .state()
            .endpoints
            .get(key)
            .filter(|r| r.phase != EndpointPhase::Detaching || !self.teardowns.running(key))
            .cloned();
        let Some(r) = record else {
            // Nothing, or a teardown under way. Without a record, still
            // remove an interface by its derived name, in case an earlier
            // state was lost.
            if !self.teardowns.running(key) {
                self.host.delete_link(&host_ifname(key)).await?;
                store.update(|s| -> Result<(), AttachError> {
                    s.leases.release(key);
                    Ok(())
                })?;
            }
            return Ok(None);
        };
        self.unpublish(&r).await;
        times.mark("unpublish");
        // The rules and the veth pair go after the answer (teardown.rs): the
        // workload is off the overlay once the data plane forgot it.
        let detaching = store.update(|s| -> Result<EndpointRecord, AttachError> {
            let mut d = r.clone();
            d.phase = EndpointPhase::Detaching;
            s.endpoints.insert(d.clone());
            s.leases.release(key);
            Ok(d)
        })?;
        times.mark("record");
        times.log("detach", key);
        self.tear_down(detaching);
        Ok(Some(Attachment::from(&r)))
    }

    /// Lists the attachments.
    pub async fn list(&self) -> Vec<Attachment> {
        let store = self.store.lock().await;
        store
            .state()
            .endpoints
            .iter()
            .filter(|r| r.phase != EndpointPhase::Detaching)
            .map(Attachment::from)
            .collect()
    }
}
