//! Attach step on the host: the host end up with the MTU, strict reverse
//! path filtering, a permanent neighbour and a route in the tenant's table
//! per address, the tenant's `unreachable default`, and the `iif` rule per
//! family.

use super::addresses::{families, host_prefix_len};
use super::{AttachError, Attachments};
use crate::netlink::{self, NetlinkError};
use crate::state::EndpointRecord;
use std::net::IpAddr;

impl Attachments {
    /// Host end up with the MTU, neighbours, routes in the tenant table, and
    /// the `iif` rule per family.
    pub(super) async fn ensure_host_side(
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
}
