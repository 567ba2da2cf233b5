//! A quiet point-to-point device: the kernel sends nothing on its own out
//! of the agent's TUNs.
//!
//! Left to its defaults, Linux gives a new TUN an IPv6 link-local address
//! (random interface identifier) and, with forwarding on, joins the
//! all-routers groups; each time the TUN's carrier comes up (the agent
//! opens it) it sends MLDv2 reports for them to ff02::16, from `fe80::` or
//! `::`. Those packets leave through the TUN into the agent, where they
//! look like a workload's traffic from an address that is no workload's.
//! A TUN is a routed point-to-point hop with no neighbours and no
//! multicast routing, so none of that has a purpose on it. The agent makes
//! it quiet the way WireGuard's own device is (`IFF_POINTOPOINT |
//! IFF_NOARP`, no `IFF_MULTICAST`) and Calico's host-side interfaces are
//! (no router advertisements, no link-local chatter):
//!
//! ```text
//! sysctl net.ipv6.conf.<tun>.addr_gen_mode = 1      no link-local address
//!                           .accept_ra = 0          no router discovery
//!                           .router_solicitations = 0
//!                           .accept_dad = 0         no DAD (also: NOARP)
//!                           .force_mld_version = 1  leaving a group is silent
//! delete fe80::/10 addresses                          left by an older run
//! forwarding 0 -> 1 while IFF_MULTICAST is still on   leaves ff02::2, ff05::2
//! ip link set <tun> multicast off                     no MLD / IGMP reports
//! ```
//! IPv6 stays enabled (not `disable_ipv6`): IPv6 routes through the TUN
//! need it, and it needs no link-local address to route.
//!
//! Applied to a TUN the agent creates before it is up, and to a TUN it
//! adopts (restart) before it opens it: the carrier comes up only once the
//! device is quiet. Every step is idempotent. Checked on this kernel
//! (6.18) with a TUN read for seconds after it came up: defaults, 2 MLDv2
//! reports (join ff02::2); multicast off alone, the same 2; forwarding
//! toggled under MLDv2, 2 state-change reports (leave ff02::2); all of the
//! above, none, on creation and on adoption of a TUN an older run left
//! with a link-local address and reported groups.

use super::sysctl;
use super::{Netlink, NetlinkError};

impl Netlink {
    /// Makes the point-to-point device `name` quiet (see the module doc).
    /// Returns what it changed, for the log; a missing device is an error.
    pub async fn quiet_point_to_point(&self, name: &str) -> Result<QuietChanges, NetlinkError> {
        let link = self
            .link_by_name(name)
            .await?
            .ok_or_else(|| NetlinkError::Conflict(format!("{name} does not exist")))?;
        let kernel =
            |what: String| move |source: std::io::Error| NetlinkError::Kernel { what, source };
        sysctl::quiet_ipv6_on_point_to_point(name)
            .map_err(kernel(format!("quieting IPv6 on {name}")))?;
        let mut changes = QuietChanges {
            link_local_deleted: self.delete_ipv6_link_local(link.index, name).await?,
            ..QuietChanges::default()
        };
        if link.multicast {
            // The kernel leaves the all-routers groups only when forwarding
            // goes off on a multicast device; once multicast is off it
            // neither leaves nor joins them. So: off and on again first.
            let forwarding = sysctl::ipv6_forwarding(name)
                .map_err(kernel(format!("reading IPv6 forwarding of {name}")))?;
            if forwarding == Some(true) {
                sysctl::set_ipv6_forwarding(name, false)
                    .map_err(kernel(format!("leaving the all-routers groups on {name}")))?;
            }
            // Forwarding comes back on whether or not multicast went off:
            // a TUN without IPv6 forwarding would stop the tenant's IPv6.
            let multicast = self.set_multicast(link.index, false, name).await;
            if forwarding == Some(true) {
                sysctl::set_ipv6_forwarding(name, true)
                    .map_err(kernel(format!("restoring IPv6 forwarding on {name}")))?;
            }
            multicast?;
            changes.multicast_turned_off = true;
        }
        Ok(changes)
    }
}

/// What [`Netlink::quiet_point_to_point`] found to change on a device: all
/// zero for a device this agent version created (or already quieted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuietChanges {
    /// IPv6 link-local addresses deleted.
    pub link_local_deleted: usize,
    /// IFF_MULTICAST was on and is now off.
    pub multicast_turned_off: bool,
}
