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

    /// Deletes every IPv6 link-local address (fe80::/10) of a link; returns
    /// how many there were. Once `addr_gen_mode` is none the kernel makes
    /// no new one, but one made before (by an older agent, or before the
    /// sysctl was set) stays until deleted.
    pub async fn delete_ipv6_link_local(
        &self,
        index: u32,
        ifname: &str,
    ) -> Result<usize, NetlinkError> {
        let mut stream = self
            .handle()
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let mut link_local = Vec::new();
        while let Some(msg) = stream.try_next().await.map_err(|e| {
            NetlinkError::from_rtnetlink(format!("listing addresses of {ifname}"), e)
        })? {
            let is_link_local = msg.attributes.iter().any(|a| {
                matches!(a, AddressAttribute::Address(IpAddr::V6(v6)) if v6.is_unicast_link_local())
            });
            if is_link_local {
                link_local.push(msg);
            }
        }
        let count = link_local.len();
        for msg in link_local {
            self.handle()
                .address()
                .del(msg)
                .execute()
                .await
                .map_err(|e| {
                    NetlinkError::from_rtnetlink(
                        format!("deleting a link-local address of {ifname}"),
                        e,
                    )
                })?;
        }
        Ok(count)
    }
}
