//! Attach step inside the workload's namespace: the veth end renamed to
//! the requested name, MTU, up, the addresses, a permanent neighbour for
//! the link-local gateway and the default route through it.

use super::addresses::{gateway_for, host_prefix_len};
use super::{AttachError, HOST_VETH_MAC};
use crate::netlink::{Netlink, NetlinkError};
use crate::state::EndpointRecord;

/// Inside the workload: rename the veth end, MTU, up, addresses, gateway
/// neighbour, default route. Returns the interface's MAC.
pub(super) async fn ensure_workload_side(
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
