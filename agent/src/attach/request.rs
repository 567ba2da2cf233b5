//! What to attach, and the checks a request passes before anything is
//! allocated: names (CNI container id, Linux interface name), the netns
//! path, one address per family. And the MTU the workload gets.

use super::AttachError;
use crate::config::Config;
use crate::ipam::WorkloadKey;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;

/// What to attach.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachRequest {
    /// The container id (CNI_CONTAINERID) or any unique name for a namespace.
    pub container_id: String,
    /// The workload's network namespace (an nsfs path).
    pub netns: PathBuf,
    /// The interface to create inside it.
    pub ifname: String,
    /// The tenant's name.
    pub tenant: String,
    /// Requested addresses, at most one per family (the CNI `ips`
    /// capability). Empty: allocate from the tenant's prefixes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<IpAddr>,
    /// MTU of both veth ends; `None`: [`workload_mtu`], also the most allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Who attaches (`cni:<network>`); scopes `gc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// The pod MTU: the underlay MTU minus WireGuard (32 bytes of header and tag,
/// plus the outer UDP and IP headers) minus the MPLSoUDP headers inside it
/// (tunnel IP, UDP, one 4-byte label), as DESIGN.md computes it. The
/// underlay's IP version is that of the listen address; the tunnel's that of
/// the tunnel network.
pub fn workload_mtu(config: &Config) -> u32 {
    let ip_header = |v6: bool| if v6 { 40 } else { 20 };
    let udp = 8;
    let wireguard = 32 + udp + ip_header(config.underlay.listen.is_ipv6());
    let mpls_over_udp = ip_header(config.tunnel.address.is_ipv6()) + udp + 4;
    config
        .underlay
        .mtu
        .saturating_sub(wireguard + mpls_over_udp)
}

/// Checks a request's names before anything is allocated.
pub(super) fn validate_request(req: &AttachRequest) -> Result<(), AttachError> {
    validate_key(&WorkloadKey::new(&req.container_id, &req.ifname))?;
    if !req.netns.is_absolute() {
        return Err(AttachError::InvalidRequest(format!(
            "netns `{}` is not an absolute path",
            req.netns.display()
        )));
    }
    if let Some(owner) = &req.owner
        && (owner.is_empty() || owner.len() > 256 || owner.chars().any(char::is_control))
    {
        return Err(AttachError::InvalidRequest(format!(
            "owner {owner:?} must be 1 to 256 printable characters"
        )));
    }
    // One address per family, as the workload gets one per family.
    for ipv4 in [true, false] {
        let same: Vec<String> = req
            .addresses
            .iter()
            .filter(|a| a.is_ipv4() == ipv4)
            .map(IpAddr::to_string)
            .collect();
        if same.len() > 1 {
            return Err(AttachError::InvalidRequest(format!(
                "at most one {} address may be requested, not {}",
                if ipv4 { "IPv4" } else { "IPv6" },
                same.join(", ")
            )));
        }
    }
    Ok(())
}

/// Checks a requested MTU against what the overlay can carry (`max`, the
/// node's [`workload_mtu`]) and what the address families need: IPv6 needs
/// 1280 (RFC 8200), IPv4 576 (RFC 791's datagram every host must accept).
pub(super) fn validate_mtu(req: &AttachRequest, max: u32, ipv6: bool) -> Result<(), AttachError> {
    let Some(mtu) = req.mtu else {
        return Ok(());
    };
    let min = if ipv6 { 1280 } else { 576 };
    if mtu < min || mtu > max {
        return Err(AttachError::InvalidRequest(format!(
            "MTU {mtu} is outside {min}..={max} (the overlay carries at most {max}{})",
            if ipv6 { "; IPv6 needs 1280" } else { "" }
        )));
    }
    Ok(())
}

pub(super) fn validate_key(key: &WorkloadKey) -> Result<(), AttachError> {
    let id = &key.container_id;
    // CNI spec §"Parameters": the container id is alphanumeric plus `_.-`.
    if id.is_empty()
        || id.len() > 256
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
    {
        return Err(AttachError::InvalidRequest(format!(
            "container id `{id}` must be 1-256 characters of A-Z, a-z, 0-9, `_`, `.`, `-`"
        )));
    }
    // Linux dev_valid_name(): 1-15 bytes, not `.`/`..`, no `/`, `:` or whitespace.
    let ifname = &key.ifname;
    if ifname.is_empty()
        || ifname.len() > 15
        || ifname == "."
        || ifname == ".."
        || ifname
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(AttachError::InvalidRequest(format!(
            "interface name `{ifname}` is not a valid Linux interface name"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_are_refused_before_anything_happens() {
        let ok = AttachRequest {
            container_id: "c1".into(),
            netns: "/run/netns/x".into(),
            ifname: "eth0".into(),
            tenant: "city".into(),
            addresses: Vec::new(),
            mtu: None,
            owner: None,
        };
        assert!(validate_request(&ok).is_ok());
        let two_v4 = AttachRequest {
            addresses: vec![
                "10.1.9.5".parse().expect("ip"),
                "10.1.9.6".parse().expect("ip"),
            ],
            ..ok.clone()
        };
        assert!(matches!(
            validate_request(&two_v4),
            Err(AttachError::InvalidRequest(m)) if m.contains("at most one IPv4")
        ));
        let dual = AttachRequest {
            addresses: vec![
                "10.1.9.5".parse().expect("ip"),
                "fd00:9::5".parse().expect("ip"),
            ],
            ..ok.clone()
        };
        assert!(validate_request(&dual).is_ok());
        for (id, ifname, netns) in [
            ("", "eth0", "/run/netns/x"),
            ("a/b", "eth0", "/run/netns/x"),
            ("c1", "", "/run/netns/x"),
            ("c1", "a-very-long-interface", "/run/netns/x"),
            ("c1", "eth 0", "/run/netns/x"),
            ("c1", "..", "/run/netns/x"),
            ("c1", "eth0", "relative/path"),
        ] {
            let req = AttachRequest {
                container_id: id.into(),
                ifname: ifname.into(),
                netns: netns.into(),
                ..ok.clone()
            };
            assert!(
                matches!(validate_request(&req), Err(AttachError::InvalidRequest(_))),
                "{req:?}"
            );
        }
    }
}
