//! Interface addresses.

use super::{Netlink, NetlinkError};
use futures_util::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressFlags};
use std::net::IpAddr;

impl Netlink {
    /// Puts `addr/prefix_len` on the link (replacing an identical one, so a
    /// repeat is a no-op). IPv6 addresses skip duplicate address detection:
    /// the agent's IPAM already made them unique, and DAD would hold the
    /// address "tentative" for a second after attach.
    pub async fn ensure_address(
        &self,
        index: u32,
        addr: IpAddr,
        prefix_len: u8,
        ifname: &str,
    ) -> Result<(), NetlinkError> {
        let mut request = self
            .handle()
            .address()
            .add(index, addr, prefix_len)
            .replace();
        if addr.is_ipv6() {
            request
                .message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        request.execute().await.map_err(|e| {
            NetlinkError::from_rtnetlink(format!("adding {addr}/{prefix_len} to {ifname}"), e)
        })
    }

    /// The addresses on a link, with their prefix lengths.
    pub async fn addresses(&self, index: u32) -> Result<Vec<(IpAddr, u8)>, NetlinkError> {
        let mut stream = self
            .handle()
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let mut out = Vec::new();
        while let Some(msg) = stream.try_next().await.map_err(|e| {
            NetlinkError::from_rtnetlink(format!("listing addresses of link {index}"), e)
        })? {
            for attr in &msg.attributes {
                if let AddressAttribute::Address(a) = attr {
                    out.push((*a, msg.header.prefix_len));
                }
            }
        }
        Ok(out)
    }
}
