//! CNI CHECK: an attachment compared with the live system, host side and
//! workload side; the error lists every difference.

use super::addresses::{families, host_prefix_len};
use super::naming::{format_mac, parse_mac};
use super::request::validate_key;
use super::{AttachError, Attachment, Attachments, GATEWAY_V4, GATEWAY_V6, MAIN_TABLE};
use crate::ipam::WorkloadKey;
use crate::netlink::{self, Netlink, NetlinkError};
use crate::state::{EndpointPhase, EndpointRecord};
use std::net::IpAddr;

impl Attachments {
    /// Compares an attachment with the live system; the error lists every
    /// difference.
    pub async fn check(&self, key: &WorkloadKey) -> Result<Attachment, AttachError> {
        validate_key(key)?;
        let record = {
            let store = self.store.lock().await;
            store.state().endpoints.get(key).cloned()
        }
        .filter(|r| r.phase == EndpointPhase::Attached)
        .ok_or_else(|| AttachError::NotAttached(key.clone()))?;
        let mut problems = Vec::new();
        self.check_host_side(&record, &mut problems).await?;
        match netlink::open_netns(&record.netns)
            .and_then(|file| Netlink::open_in_netns(&file, &record.netns))
        {
            Ok(workload) => check_workload_side(&workload, &record, &mut problems).await?,
            Err(e) => problems.push(e.to_string()),
        }
        if problems.is_empty() {
            Ok(Attachment::from(&record))
        } else {
            Err(AttachError::CheckFailed {
                key: key.clone(),
                problems: problems.join("; "),
            })
        }
    }

    pub(super) async fn check_host_side(
        &self,
        r: &EndpointRecord,
        problems: &mut Vec<String>,
    ) -> Result<(), NetlinkError> {
        let Some(link) = self.host.link_by_name(&r.host_ifname).await? else {
            problems.push(format!("host interface {} is missing", r.host_ifname));
            return Ok(());
        };
        if !link.up {
            problems.push(format!("host interface {} is down", r.host_ifname));
        }
        for ipv6 in families(&r.addresses) {
            let rules = self.host.iif_rules(ipv6).await?;
            if !rules.iter().any(|x| {
                x.iif == r.host_ifname && x.table == r.table_id && x.priority == r.rule_priority
            }) {
                problems.push(format!(
                    "rule iif {} lookup {} is missing",
                    r.host_ifname, r.table_id
                ));
            }
        }
        for addr in &r.addresses {
            let routes = self
                .host
                .routes_in_table(addr.is_ipv6(), r.table_id)
                .await?;
            if !routes.iter().any(|x| {
                x.destination == *addr
                    && x.prefix_len == host_prefix_len(*addr)
                    && x.oif == Some(link.index)
            }) {
                problems.push(format!(
                    "route {addr} dev {} table {} is missing",
                    r.host_ifname, r.table_id
                ));
            }
        }
        Ok(())
    }
}

pub(super) async fn check_workload_side(
    workload: &Netlink,
    r: &EndpointRecord,
    problems: &mut Vec<String>,
) -> Result<(), NetlinkError> {
    let ifname = &r.key.ifname;
    let Some(link) = workload.link_by_name(ifname).await? else {
        problems.push(format!("{ifname} is missing in {}", r.netns.display()));
        return Ok(());
    };
    if !link.up {
        problems.push(format!("{ifname} is down"));
    }
    if let (Some(want), Some(have)) = (r.mac.as_deref().and_then(parse_mac), link.mac)
        && want != have
    {
        problems.push(format!(
            "{ifname} has MAC {} instead of {}",
            format_mac(have),
            format_mac(want)
        ));
    }
    let addresses = workload.addresses(link.index).await?;
    for addr in &r.addresses {
        if !addresses.contains(&(*addr, host_prefix_len(*addr))) {
            problems.push(format!("{ifname} lacks {addr}/{}", host_prefix_len(*addr)));
        }
    }
    for ipv6 in families(&r.addresses) {
        let routes = workload.routes_in_table(ipv6, MAIN_TABLE).await?;
        let gateway = if ipv6 {
            IpAddr::V6(GATEWAY_V6)
        } else {
            IpAddr::V4(GATEWAY_V4)
        };
        if !routes
            .iter()
            .any(|x| x.prefix_len == 0 && x.gateway == Some(gateway) && x.oif == Some(link.index))
        {
            problems.push(format!(
                "default route via {gateway} dev {ifname} is missing"
            ));
        }
    }
    Ok(())
}
