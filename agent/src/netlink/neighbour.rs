//! Permanent neighbour entries.
//!
//! Both ends of a workload's veth get a permanent entry for the other end, so
//! no ARP or neighbour discovery runs on the veth at all:
//! - in the workload, the link-local gateway (169.254.1.1, fe80::1) resolves
//!   to the host end's fixed MAC;
//! - on the host, the workload's address resolves to the workload's MAC.
//!
//! Chosen over proxy ARP on the host end because it needs no per-interface
//! sysctl, answers for exactly one address instead of every address the host
//! can route, works the same for IPv6 (proxy NDP would need an entry per
//! address anyway), and works when the host namespace has no IPv4 address of
//! its own to source ARP requests from.

use super::{Netlink, NetlinkError};
use netlink_packet_route::neighbour::NeighbourState;
use std::net::IpAddr;

impl Netlink {
    /// Sets `ip` to resolve to `mac` on the link, permanently (replacing any
    /// entry for `ip` there).
    pub async fn ensure_permanent_neighbour(
        &self,
        index: u32,
        ip: IpAddr,
        mac: [u8; 6],
        ifname: &str,
    ) -> Result<(), NetlinkError> {
        self.handle()
            .neighbours()
            .add(index, ip)
            .link_layer_address(&mac)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await
            .map_err(|e| {
                NetlinkError::from_rtnetlink(format!("adding neighbour {ip} on {ifname}"), e)
            })
    }
}
