//! Telling the data plane and BGP of a workload's addresses: the
//! [`WorkloadObserver`] learns them before an attach is answered and
//! forgets them before a detach is; on start it hears of every adopted
//! attachment again.

use super::{AttachError, Attachments};
use crate::config::Config;
use crate::ipam::{self, WorkloadKey};
use crate::state::{EndpointPhase, EndpointRecord};
use futures_util::future::BoxFuture;
use std::net::IpAddr;

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
    /// The host addresses the tenant has learned routes for (workloads on
    /// other nodes): the IPAM does not hand them out.
    fn learned_hosts(&self, _tenant_id: u32) -> Vec<IpAddr> {
        Vec::new()
    }
}

impl Attachments {
    /// The addresses the IPAM must skip for a tenant (see
    /// [`WorkloadObserver::learned_hosts`]).
    pub(super) fn learned_hosts(&self, tenant_id: u32) -> std::collections::BTreeSet<IpAddr> {
        self.observer
            .as_ref()
            .map(|o| o.learned_hosts(tenant_id).into_iter().collect())
            .unwrap_or_default()
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

    /// Tells the observer of a complete attachment.
    pub(super) async fn publish(&self, record: &EndpointRecord) -> Result<(), AttachError> {
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
    pub(super) async fn unpublish(&self, record: &EndpointRecord) {
        if let Some(o) = &self.observer
            && let Err(e) = o
                .detached(&WorkloadAddresses::of(record, &self.config))
                .await
        {
            tracing::error!(endpoint = %record.key, error = %e, "the data plane did not take a detach");
        }
    }
}
