//! Links: look up by name, create veth pairs, move, rename, configure, delete.

use super::{Netlink, NetlinkError, errno_of};
use futures_util::TryStreamExt;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo as NlLinkInfo,
};
use rtnetlink::{LinkMessageBuilder, LinkUnspec, LinkVeth};
use std::os::fd::AsRawFd;

/// What the agent needs to know about an existing link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface index.
    pub index: u32,
    /// Name.
    pub name: String,
    /// `veth`, `tun`, ... (the rtnetlink kind), if the link has one.
    pub kind: Option<String>,
    /// MAC address, if any.
    pub mac: Option<[u8; 6]>,
    /// MTU.
    pub mtu: Option<u32>,
    /// Administratively up.
    pub up: bool,
    /// IFF_MULTICAST: the kernel joins and reports multicast groups on it.
    pub multicast: bool,
}

impl Netlink {
    /// The link with this name, or `None` when there is none.
    pub async fn link_by_name(&self, name: &str) -> Result<Option<LinkInfo>, NetlinkError> {
        let mut links = self
            .handle()
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(msg)) => Ok(Some(describe(msg))),
            Ok(None) => Ok(None),
            Err(e) if errno_of(&e) == Some(libc_enodev()) => Ok(None),
            Err(e) => Err(NetlinkError::from_rtnetlink(
                format!("looking up link {name}"),
                e,
            )),
        }
    }

    /// Every link of this namespace.
    pub async fn links(&self) -> Result<Vec<LinkInfo>, NetlinkError> {
        let mut stream = self.handle().link().get().execute();
        let mut out = Vec::new();
        while let Some(msg) = stream
            .try_next()
            .await
            .map_err(|e| NetlinkError::from_rtnetlink("listing links", e))?
        {
            out.push(describe(msg));
        }
        Ok(out)
    }

    /// Creates the veth pair `host`/`peer`, the host end in this namespace
    /// with MAC `host_mac` and the peer in `peer_netns`, or adopts `host` if
    /// it already exists as a veth. Returns true when it created the pair.
    ///
    /// The peer is created in its namespace (IFLA_NET_NS_FD in the peer's
    /// message, as the CNI reference plugins do) rather than moved there
    /// afterwards: a move waits for an RCU grace period in the kernel
    /// (`dev_change_net_namespace`), which was most of an attach.
    pub async fn ensure_veth(
        &self,
        host: &str,
        peer: &str,
        host_mac: [u8; 6],
        peer_netns: &std::fs::File,
    ) -> Result<bool, NetlinkError> {
        if let Some(existing) = self.link_by_name(host).await? {
            if existing.kind.as_deref() != Some("veth") {
                return Err(NetlinkError::Conflict(format!(
                    "interface {host} exists and is not a veth (kind {})",
                    existing.kind.as_deref().unwrap_or("none")
                )));
            }
            return Ok(false);
        }
        let peer_message = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_string())
            .setns_by_fd(peer_netns.as_raw_fd())
            .build();
        let message = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(host.to_string())
            .address(host_mac.to_vec())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_message)))
            .build();
        self.handle()
            .link()
            .add(message)
            .execute()
            .await
            .map_err(|e| NetlinkError::from_rtnetlink(format!("creating veth {host}/{peer}"), e))?;
        Ok(true)
    }

    /// Moves a link of this namespace into the namespace open as `netns`.
    pub async fn move_link_to_netns(
        &self,
        index: u32,
        netns: &std::fs::File,
        what: &str,
    ) -> Result<(), NetlinkError> {
        let message = LinkMessageBuilder::<LinkUnspec>::new()
            .index(index)
            .setns_by_fd(netns.as_raw_fd())
            .build();
        self.set_link(message, || format!("moving {what} into its netns"))
            .await
    }

    /// Renames a (down) link.
    pub async fn rename_link(&self, index: u32, new_name: &str) -> Result<(), NetlinkError> {
        let message = LinkMessageBuilder::<LinkUnspec>::new()
            .index(index)
            .name(new_name.to_string())
            .build();
        self.set_link(message, || format!("renaming link {index} to {new_name}"))
            .await
    }

    /// Sets a link's MTU and brings it up (both idempotent in the kernel).
    pub async fn set_mtu_and_up(
        &self,
        index: u32,
        mtu: u32,
        name: &str,
    ) -> Result<(), NetlinkError> {
        let message = LinkMessageBuilder::<LinkUnspec>::new()
            .index(index)
            .mtu(mtu)
            .up()
            .build();
        self.set_link(message, || format!("setting {name} up with MTU {mtu}"))
            .await
    }

    /// Turns IFF_MULTICAST on or off. Off, the kernel joins no all-routers
    /// group on the link when forwarding goes on, and joins nothing for the
    /// host's multicast sockets there; groups joined before stay joined
    /// (and reported when the carrier comes up) until they are left
    /// (`quiet.rs` leaves them first).
    pub async fn set_multicast(
        &self,
        index: u32,
        on: bool,
        name: &str,
    ) -> Result<(), NetlinkError> {
        let message = LinkMessageBuilder::<LinkUnspec>::new()
            .index(index)
            .multicast(on)
            .build();
        self.set_link(message, || {
            format!(
                "turning multicast {} on {name}",
                if on { "on" } else { "off" }
            )
        })
        .await
    }

    /// Deletes the link with this name; a missing link is success. Returns
    /// true when it deleted one. Deleting one end of a veth pair deletes the
    /// other, wherever it is, and the routes through it.
    pub async fn delete_link(&self, name: &str) -> Result<bool, NetlinkError> {
        let Some(link) = self.link_by_name(name).await? else {
            return Ok(false);
        };
        match self.handle().link().del(link.index).execute().await {
            Ok(()) => Ok(true),
            Err(e) if errno_of(&e) == Some(libc_enodev()) => Ok(false),
            Err(e) => Err(NetlinkError::from_rtnetlink(
                format!("deleting link {name}"),
                e,
            )),
        }
    }

    /// Applies a link change; `what` describes it for the error.
    async fn set_link(
        &self,
        message: netlink_packet_route::link::LinkMessage,
        what: impl FnOnce() -> String,
    ) -> Result<(), NetlinkError> {
        self.handle()
            .link()
            .set(message)
            .execute()
            .await
            .map_err(|e| NetlinkError::from_rtnetlink(what(), e))
    }
}

const fn libc_enodev() -> i32 {
    nix::errno::Errno::ENODEV as i32
}

fn describe(msg: netlink_packet_route::link::LinkMessage) -> LinkInfo {
    let mut info = LinkInfo {
        index: msg.header.index,
        name: String::new(),
        kind: None,
        mac: None,
        mtu: None,
        up: msg.header.flags.contains(LinkFlags::Up),
        multicast: msg.header.flags.contains(LinkFlags::Multicast),
    };
    for attr in msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => info.name = name,
            LinkAttribute::Mtu(mtu) => info.mtu = Some(mtu),
            LinkAttribute::Address(bytes) => info.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok(),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let NlLinkInfo::Kind(kind) = i {
                        info.kind = Some(kind_name(&kind));
                    }
                }
            }
            _ => {}
        }
    }
    info
}

fn kind_name(kind: &InfoKind) -> String {
    match kind {
        InfoKind::Veth => "veth".into(),
        InfoKind::Tun => "tun".into(),
        other => other.to_string(),
    }
}
