//! Facts about a workload's addresses that every step needs: the host
//! prefix length, the gateway of its family, the families present.

use super::{GATEWAY_V4, GATEWAY_V6};
use std::net::IpAddr;

pub(super) fn host_prefix_len(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

pub(super) fn gateway_for(addr: IpAddr) -> IpAddr {
    if addr.is_ipv4() {
        IpAddr::V4(GATEWAY_V4)
    } else {
        IpAddr::V6(GATEWAY_V6)
    }
}

/// The address families present, as the `ipv6` flag of the netlink calls.
pub(super) fn families(addresses: &[IpAddr]) -> Vec<bool> {
    let mut out = Vec::new();
    if addresses.iter().any(IpAddr::is_ipv4) {
        out.push(false);
    }
    if addresses.iter().any(IpAddr::is_ipv6) {
        out.push(true);
    }
    out
}
