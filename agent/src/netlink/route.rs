//! Routes: the workload's default route and the host's per-workload routes in
//! the tenant table.

use super::{Netlink, NetlinkError, errno_of};
use futures_util::TryStreamExt;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::RouteMessageBuilder;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Metric of the tenant tables' `unreachable default` (see
/// [`Netlink::ensure_unreachable_default`]).
pub const UNREACHABLE_METRIC: u32 = 4_278_198_272;

/// A route as the agent reads it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteEntry {
    /// Destination address (unspecified for a default route).
    pub destination: IpAddr,
    /// Destination prefix length.
    pub prefix_len: u8,
    /// Output interface index.
    pub oif: Option<u32>,
    /// Gateway.
    pub gateway: Option<IpAddr>,
    /// Routing table.
    pub table: u32,
}

impl Netlink {
    /// `dest/prefix_len dev <index> table <table> scope link`: a route to an
    /// on-link destination, with no gateway (the pod's /32 on the host side,
    /// the tenant's `default dev pisek-t<N>` on the data plane side).
    /// Replaces an existing route to the same destination in the table.
    pub async fn ensure_device_route(
        &self,
        dest: IpAddr,
        prefix_len: u8,
        index: u32,
        table: u32,
        ifname: &str,
    ) -> Result<(), NetlinkError> {
        let message = match dest {
            IpAddr::V4(d) => RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(d, prefix_len)
                .output_interface(index)
                .table_id(table)
                .scope(RouteScope::Link)
                .protocol(RouteProtocol::Static)
                .build(),
            IpAddr::V6(d) => RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(d, prefix_len)
                .output_interface(index)
                .table_id(table)
                .protocol(RouteProtocol::Static)
                .build(),
        };
        self.replace_route(message, || {
            format!("adding route {dest}/{prefix_len} dev {ifname} table {table}")
        })
        .await
    }

    /// `unreachable default metric 4278198272 table <table>`: the tenant
    /// table's last resort. A policy rule whose table has no matching route
    /// does not stop the lookup: the kernel goes on to the next rule and
    /// finally the main table, which would route a tenant's packets with the
    /// host's routes. This route makes every lookup in the table end there.
    /// Its metric is the highest usable (the one Linux VRF documentation
    /// uses), so the data plane's `default dev pisek-t<N>` wins over it.
    pub async fn ensure_unreachable_default(
        &self,
        table: u32,
        ipv6: bool,
    ) -> Result<(), NetlinkError> {
        let message = if ipv6 {
            RouteMessageBuilder::<Ipv6Addr>::new()
                .table_id(table)
                .kind(RouteType::Unreachable)
                .priority(UNREACHABLE_METRIC)
                .build()
        } else {
            RouteMessageBuilder::<Ipv4Addr>::new()
                .table_id(table)
                .kind(RouteType::Unreachable)
                .priority(UNREACHABLE_METRIC)
                .build()
        };
        self.replace_route(message, || {
            format!("adding unreachable default to table {table}")
        })
        .await
    }

    /// `blackhole <prefix> table <table>`: the node's own prefix of a
    /// tenant. Its workloads' /32 (/128) routes are more specific and win;
    /// an address of the prefix that no workload holds (an unused one, the
    /// directed broadcast) ends here instead of taking the tenant's
    /// `default dev pisek-t<N>` back into the data plane, where it would
    /// loop between the kernel and the VRF's local route and come back out
    /// as a packet whose source is no local workload's. Silent, like a
    /// router's discard route for an aggregate: an ICMP error from the host
    /// would leave through the main table.
    pub async fn ensure_blackhole_prefix(
        &self,
        dest: IpAddr,
        prefix_len: u8,
        table: u32,
    ) -> Result<(), NetlinkError> {
        let message = match dest {
            IpAddr::V4(d) => RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(d, prefix_len)
                .table_id(table)
                .kind(RouteType::BlackHole)
                .protocol(RouteProtocol::Static)
                .build(),
            IpAddr::V6(d) => RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(d, prefix_len)
                .table_id(table)
                .kind(RouteType::BlackHole)
                .protocol(RouteProtocol::Static)
                .build(),
        };
        self.replace_route(message, || {
            format!("adding blackhole {dest}/{prefix_len} to table {table}")
        })
        .await
    }

    /// `default via <gateway> dev <index> onlink` in the main table: the
    /// workload's only route. `onlink` because the gateway is in no subnet of
    /// the link (the workload's address is a /32).
    pub async fn ensure_default_route_onlink(
        &self,
        gateway: IpAddr,
        index: u32,
        ifname: &str,
    ) -> Result<(), NetlinkError> {
        let message = match gateway {
            IpAddr::V4(g) => RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(g)
                .output_interface(index)
                .onlink()
                .build(),
            IpAddr::V6(g) => RouteMessageBuilder::<Ipv6Addr>::new()
                .gateway(g)
                .output_interface(index)
                .onlink()
                .build(),
        };
        self.replace_route(message, || {
            format!("adding default route via {gateway} dev {ifname}")
        })
        .await
    }

    /// Deletes `dest/prefix_len` from a table; a missing route is success.
    pub async fn delete_route(
        &self,
        dest: IpAddr,
        prefix_len: u8,
        table: u32,
    ) -> Result<(), NetlinkError> {
        let message = match dest {
            IpAddr::V4(d) => RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(d, prefix_len)
                .table_id(table)
                .build(),
            IpAddr::V6(d) => RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(d, prefix_len)
                .table_id(table)
                .build(),
        };
        match self.handle().route().del(message).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno_of(&e) == Some(nix::errno::Errno::ESRCH as i32) => Ok(()),
            Err(e) => Err(NetlinkError::from_rtnetlink(
                format!("deleting route {dest}/{prefix_len} table {table}"),
                e,
            )),
        }
    }

    /// Every route of one family in one table.
    pub async fn routes_in_table(
        &self,
        ipv6: bool,
        table: u32,
    ) -> Result<Vec<RouteEntry>, NetlinkError> {
        let filter = if ipv6 {
            RouteMessageBuilder::<Ipv6Addr>::new().build()
        } else {
            RouteMessageBuilder::<Ipv4Addr>::new().build()
        };
        let mut stream = self.handle().route().get(filter).execute();
        let mut out = Vec::new();
        while let Some(msg) = stream.try_next().await.map_err(|e| {
            NetlinkError::from_rtnetlink(format!("listing routes of table {table}"), e)
        })? {
            let entry = describe(msg, ipv6);
            if entry.table == table {
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// Adds (or replaces) a route; `what` describes it for the error.
    async fn replace_route(
        &self,
        message: RouteMessage,
        what: impl FnOnce() -> String,
    ) -> Result<(), NetlinkError> {
        self.handle()
            .route()
            .add(message)
            .replace()
            .execute()
            .await
            .map_err(|e| NetlinkError::from_rtnetlink(what(), e))
    }
}

fn describe(msg: RouteMessage, ipv6: bool) -> RouteEntry {
    let unspecified = if ipv6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    let mut entry = RouteEntry {
        destination: unspecified,
        prefix_len: msg.header.destination_prefix_length,
        oif: None,
        gateway: None,
        table: u32::from(msg.header.table),
    };
    for attr in msg.attributes {
        match attr {
            RouteAttribute::Destination(a) => entry.destination = address(a).unwrap_or(unspecified),
            RouteAttribute::Gateway(a) => entry.gateway = address(a),
            RouteAttribute::Oif(i) => entry.oif = Some(i),
            RouteAttribute::Table(t) => entry.table = t,
            _ => {}
        }
    }
    entry
}

fn address(a: RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(v6)),
        _ => None,
    }
}
