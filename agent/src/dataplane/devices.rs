//! The data plane's devices: the fabric TUN `pisek0` with the tunnel
//! address, one TUN `pisek-t<N>` per tenant, and the kernel routing that
//! sends a tenant's off-node traffic into its TUN.
//!
//! Per tenant, on top of what attach installs (`/32 dev <veth>` and
//! `unreachable default` in the tenant table, `iif <veth>` rules):
//! - `default dev pisek-t<N> table <T>`: off-node traffic of the tenant's
//!   workloads goes to the agent (DESIGN.md "The data path");
//! - `iif pisek-t<N> lookup <T>`: what the agent writes into the TUN (decapsulated
//!   packets for local workloads) is routed in the tenant's table, never in
//!   the host's main table.
//!
//! Every TUN is quiet: no IPv6 link-local address, no multicast, so the
//! kernel sends nothing of its own into the agent (DAD, MLD reports, router
//! solicitations would otherwise reach the pipeline as a workload's packets;
//! `netlink/quiet.rs`).
//!
//! Every step is idempotent, so a restarted agent adopts what it finds.

use crate::config::{Config, TenantConfig};
use crate::netlink::{Netlink, QuietChanges};
use anyhow::Context;
use ipnet::IpNet;
use pisek_overlay::forward::Mtu;
use pisek_overlay::vrf::TenantId;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use tun_rs::{DeviceBuilder, SyncDevice};

/// The node's TUN devices, opened non-blocking.
pub struct Devices {
    /// `pisek0`: the kernel's own traffic on the tunnel network.
    pub fabric: SyncDevice,
    /// `pisek-t<N>` of each tenant: its queues, one per forwarding worker
    /// (one only when the TUN could not be opened multi-queue).
    pub tenants: Vec<(TenantId, Vec<SyncDevice>)>,
}

/// The name of the fabric TUN.
pub const FABRIC_TUN: &str = "pisek0";

/// Opens (or adopts) the TUNs, each tenant TUN with `workers` queues, and
/// installs each tenant's default route and TUN rule.
pub async fn open_devices(
    config: &Config,
    mtu: &Mtu,
    host: &Netlink,
    workers: usize,
) -> anyhow::Result<Devices> {
    let tunnel = IpNet::new(config.tunnel.address, config.tunnel.network.prefix())
        .context("tunnel address and network prefix")?;
    let fabric = open_persistent_tun(host, FABRIC_TUN, Some(tunnel), mtu.fabric, false, false)
        .await
        .with_context(|| format!("opening the fabric TUN {FABRIC_TUN}"))?;
    let mut tenants = Vec::with_capacity(config.tenants.len());
    for tenant in &config.tenants {
        let name = tenant.tun_name();
        let queues = open_tenant_queues(host, &name, mtu.tenant, workers)
            .await
            .with_context(|| format!("opening the TUN {name} of tenant {}", tenant.name))?;
        set_queue_len(&queues[0], &name, config.dataplane.tun_queue_len);
        route_tenant_into_tun(tenant, host)
            .await
            .with_context(|| format!("routing tenant {} into {name}", tenant.name))?;
        tenants.push((TenantId(tenant.id), queues));
    }
    Ok(Devices { fabric, tenants })
}

/// Sets the TUN's queue length (every queue's: the kernel resizes them
/// all), also on a TUN an earlier run left. A refusal costs a warning: the
/// TUN forwards with the length it has.
fn set_queue_len(device: &SyncDevice, name: &str, len: u32) {
    if let Err(e) = device.set_tx_queue_len(len) {
        tracing::warn!(tun = name, len, error = %e, "cannot set the TUN's queue length");
    }
}

/// Tenant TUNs exchange TSO/GRO super-packets behind a virtio-net header
/// (IFF_VNET_HDR): one read carries up to 64 KiB of a pod's TCP flow, which
/// tun-rs splits into tenant-MTU packets. The fabric TUN carries only the
/// kernel's control traffic and stays plain.
pub const TENANT_TUN_OFFLOAD: bool = true;

/// The queues of tenant TUN `name`, one per worker. Tenant TUNs are always
/// created multi-queue (IFF_MULTI_QUEUE), so a restart with another worker
/// count adopts them; the kernel spreads the flows over the queues by hash.
/// A TUN an older agent left single-queue cannot be re-attached
/// multi-queue (the kernel refuses a flags mismatch): it is adopted as it
/// is, with one queue, and one worker serves it until it is recreated.
async fn open_tenant_queues(
    host: &Netlink,
    name: &str,
    mtu: usize,
    workers: usize,
) -> anyhow::Result<Vec<SyncDevice>> {
    let first = match open_persistent_tun(host, name, None, mtu, TENANT_TUN_OFFLOAD, true).await {
        Ok(device) => device,
        Err(e) => {
            tracing::warn!(tun = name, error = %e, "cannot open the TUN multi-queue: one worker serves it");
            return Ok(vec![
                open_persistent_tun(host, name, None, mtu, TENANT_TUN_OFFLOAD, false).await?,
            ]);
        }
    };
    let mut queues = Vec::with_capacity(workers);
    for _ in 1..workers {
        let queue = first
            .try_clone()
            .with_context(|| format!("opening another queue of {name}"))?;
        queue.set_nonblocking(true)?;
        queues.push(queue);
    }
    queues.insert(0, first);
    Ok(queues)
}

/// Creates the TUN `name`, or attaches to it if an earlier run left it
/// (persistent), with `mtu` and `address`, quiet (no IPv6 link-local
/// address, no multicast: [`Netlink::quiet_point_to_point`]), up and
/// non-blocking.
///
/// The kernel speaks on a TUN when its carrier comes up, that is when a
/// process opens it: an adopted TUN is quieted before it is opened, a new
/// one after it is created and before it is up. An adopted TUN keeps its
/// up state (taking it down would flush every route through it).
async fn open_persistent_tun(
    host: &Netlink,
    name: &str,
    address: Option<IpNet>,
    mtu: usize,
    offload: bool,
    multi_queue: bool,
) -> anyhow::Result<SyncDevice> {
    if host.link_by_name(name).await?.is_some() {
        quiet(host, name).await?;
    }
    let mtu = u16::try_from(mtu).unwrap_or(u16::MAX);
    let mut builder = DeviceBuilder::new()
        .name(name)
        .mtu(mtu)
        .inherit_enable_state()
        .offload(offload)
        .multi_queue(multi_queue);
    builder = match address {
        Some(IpNet::V4(a)) => builder.ipv4(a.addr(), a.prefix_len(), None),
        Some(IpNet::V6(a)) => builder.ipv6(a.addr(), a.prefix_len()),
        None => builder,
    };
    let device = builder.build_sync()?;
    // TUNSETPERSIST: the device outlives this process, so an agent restart
    // keeps every route and rule that names it.
    device.persist()?;
    quiet(host, name).await?;
    device.enabled(true)?;
    device.set_nonblocking(true)?;
    Ok(device)
}

/// Quiets a TUN and logs what an earlier run had left noisy. A kernel that
/// refuses (an old one without a per-device `addr_gen_mode`, a read-only
/// /proc/sys) costs a warning, not the node: the chatter it would have
/// stopped is counted as `link-scoped`, never forwarded.
async fn quiet(host: &Netlink, name: &str) -> anyhow::Result<()> {
    match host.quiet_point_to_point(name).await {
        Ok(changes) if changes != QuietChanges::default() => tracing::debug!(
            tun = name,
            link_local_deleted = changes.link_local_deleted,
            multicast_turned_off = changes.multicast_turned_off,
            "quieted the kernel on the TUN"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(
            tun = name,
            error = %e,
            "cannot quiet the kernel's IPv6 chatter on the TUN; it is dropped as link-scoped"
        ),
    }
    Ok(())
}

/// `default dev pisek-t<N>` in the tenant's table and `iif pisek-t<N>
/// lookup <table>`, for each address family the tenant has a prefix in.
async fn route_tenant_into_tun(tenant: &TenantConfig, host: &Netlink) -> anyhow::Result<()> {
    let name = tenant.tun_name();
    let link = host
        .link_by_name(&name)
        .await?
        .with_context(|| format!("{name} is missing after creating it"))?;
    for ipv6 in [false, true] {
        if !tenant.prefixes.iter().any(|p| p.is_ipv6() == ipv6) {
            continue;
        }
        let any: IpAddr = if ipv6 {
            Ipv6Addr::UNSPECIFIED.into()
        } else {
            Ipv4Addr::UNSPECIFIED.into()
        };
        host.ensure_unreachable_default(tenant.table_id(), ipv6)
            .await?;
        host.ensure_device_route(any, 0, link.index, tenant.table_id(), &name)
            .await?;
        for prefix in tenant.prefixes.iter().filter(|p| p.is_ipv6() == ipv6) {
            host.ensure_blackhole_prefix(prefix.network(), prefix.prefix(), tenant.table_id())
                .await?;
        }
        // A rule left by the previous run is adopted (the kernel refuses
        // an identical one with EEXIST).
        let exists = host.iif_rules(ipv6).await?.iter().any(|r| {
            r.iif == name && r.table == tenant.table_id() && r.priority == tenant.rule_priority()
        });
        if !exists {
            host.ensure_iif_rule(&name, tenant.table_id(), tenant.rule_priority(), ipv6)
                .await?;
        }
    }
    Ok(())
}
