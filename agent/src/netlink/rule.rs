//! Policy rules `iif <dev> lookup <table>`: the tenant's traffic, whatever
//! its addresses, is routed in the tenant's own table, so tenants may overlap
//! and the host's main table is never consulted for them.

use super::{Netlink, NetlinkError, errno_of};
use futures_util::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::IpVersion;

/// An `iif <dev> lookup <table>` rule as read back from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IifRule {
    /// The input interface name.
    pub iif: String,
    /// The table looked up.
    pub table: u32,
    /// The rule's priority.
    pub priority: u32,
    /// IPv6 (else IPv4).
    pub ipv6: bool,
}

impl Netlink {
    /// Adds `iif <iif> lookup <table> priority <priority>` for one family.
    /// The kernel does not add an identical rule twice when the request lacks
    /// NLM_F_EXCL (fib_nl_newrule), so a repeat is a no-op.
    pub async fn ensure_iif_rule(
        &self,
        iif: &str,
        table: u32,
        priority: u32,
        ipv6: bool,
    ) -> Result<(), NetlinkError> {
        let request = self
            .handle()
            .rule()
            .add()
            .input_interface(iif.to_string())
            .table_id(table)
            .priority(priority)
            .action(RuleAction::ToTable);
        let result = if ipv6 {
            request.v6().execute().await
        } else {
            request.v4().execute().await
        };
        result.map_err(|e| {
            NetlinkError::from_rtnetlink(
                format!("adding rule iif {iif} lookup {table} priority {priority}"),
                e,
            )
        })
    }

    /// Deletes `iif <iif> lookup <table> priority <priority>` for one family;
    /// a missing rule is success. Rules name their interface, so they outlive
    /// it: deleting the veth does not delete its rule.
    pub async fn delete_iif_rule(
        &self,
        iif: &str,
        table: u32,
        priority: u32,
        ipv6: bool,
    ) -> Result<(), NetlinkError> {
        let mut message = RuleMessage::default();
        message.header.family = if ipv6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        message.header.action = RuleAction::ToTable;
        message
            .attributes
            .push(RuleAttribute::Iifname(iif.to_string()));
        message.attributes.push(RuleAttribute::Table(table));
        message.attributes.push(RuleAttribute::Priority(priority));
        match self.handle().rule().del(message).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno_of(&e) == Some(nix::errno::Errno::ENOENT as i32) => Ok(()),
            Err(e) => Err(NetlinkError::from_rtnetlink(
                format!("deleting rule iif {iif} lookup {table}"),
                e,
            )),
        }
    }

    /// Every `iif` rule of one family.
    pub async fn iif_rules(&self, ipv6: bool) -> Result<Vec<IifRule>, NetlinkError> {
        let version = if ipv6 { IpVersion::V6 } else { IpVersion::V4 };
        let mut stream = self.handle().rule().get(version).execute();
        let mut out = Vec::new();
        while let Some(msg) = stream
            .try_next()
            .await
            .map_err(|e| NetlinkError::from_rtnetlink("listing policy rules", e))?
        {
            let mut rule = IifRule {
                iif: String::new(),
                table: u32::from(msg.header.table),
                priority: 0,
                ipv6,
            };
            for attr in msg.attributes {
                match attr {
                    RuleAttribute::Iifname(name) => rule.iif = name,
                    RuleAttribute::Table(t) => rule.table = t,
                    RuleAttribute::Priority(p) => rule.priority = p,
                    _ => {}
                }
            }
            if !rule.iif.is_empty() {
                out.push(rule);
            }
        }
        Ok(out)
    }
}
