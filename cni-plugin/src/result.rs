//! The ADD result in the version asked for, and CHECK's comparison of
//! `prevResult` with the agent's attachment.
//!
//! Interfaces: 0 is the host end of the veth, 1 the pod's (with `sandbox`,
//! and `mtu` from 1.1.0 on); every IP is on interface 1, with the
//! link-local gateway the agent answers on; one default route per family.

use crate::error::{CniError, codes};
use crate::version::Version;
use pisek_api::Attachment;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::path::Path;

/// The result of an ADD.
pub fn add_result(att: &Attachment, version: Version, dns: Option<&Value>) -> Value {
    let mut pod = json!({
        "name": att.ifname,
        "sandbox": att.netns.display().to_string(),
    });
    if let Some(mac) = &att.mac {
        pod["mac"] = json!(mac);
    }
    if version.interfaces_carry_mtu() {
        pod["mtu"] = json!(att.mtu);
    }
    let mut ips = Vec::new();
    let mut routes = Vec::new();
    for (address, gateway) in att.addresses.iter().zip(&att.gateways) {
        let mut ip = json!({
            "address": address,
            "gateway": gateway.to_string(),
            "interface": 1,
        });
        if version.ips_carry_version() {
            ip["version"] = json!(if gateway.is_ipv4() { "4" } else { "6" });
        }
        ips.push(ip);
        let dst = if gateway.is_ipv4() {
            "0.0.0.0/0"
        } else {
            "::/0"
        };
        routes.push(json!({"dst": dst, "gw": gateway.to_string()}));
    }
    json!({
        "cniVersion": version.as_str(),
        "interfaces": [{"name": att.host_ifname}, pod],
        "ips": ips,
        "routes": routes,
        "dns": dns.cloned().unwrap_or_else(|| json!({})),
    })
}

/// CHECK: the `prevResult` the runtime kept must describe what the agent
/// has (the agent checks the live system against its own record): the
/// pod's interface in this netns, the same addresses, a default route per
/// family. Every difference is listed.
pub fn check_prev_result(
    prev: &Value,
    att: &Attachment,
    ifname: &str,
    netns: &Path,
) -> Result<(), CniError> {
    let mut problems = Vec::new();
    let interfaces = prev["interfaces"].as_array().cloned().unwrap_or_default();
    let pod_index = interfaces.iter().position(|i| i["name"] == ifname);
    match pod_index.map(|i| &interfaces[i]) {
        None => problems.push(format!("prevResult has no interface `{ifname}`")),
        Some(i) => {
            if let Some(sandbox) = i["sandbox"].as_str()
                && Path::new(sandbox) != netns
            {
                problems.push(format!(
                    "interface `{ifname}` is in {sandbox} in prevResult, not {}",
                    netns.display()
                ));
            }
            if let (Some(mac), Some(have)) = (i["mac"].as_str(), &att.mac)
                && !mac.eq_ignore_ascii_case(have)
            {
                problems.push(format!("MAC {mac} in prevResult, {have} attached"));
            }
        }
    }
    let ips = prev["ips"].as_array().cloned().unwrap_or_default();
    let mut listed: Vec<String> = ips
        .iter()
        .filter(|ip| {
            // An IP without an interface index belongs to whatever
            // interface; one with an index must name the pod's.
            ip.get("interface")
                .and_then(Value::as_u64)
                .is_none_or(|n| Some(n as usize) == pod_index)
        })
        .filter_map(|ip| ip["address"].as_str().map(str::to_string))
        .collect();
    let mut attached = att.addresses.clone();
    listed.sort();
    attached.sort();
    if listed != attached {
        problems.push(format!(
            "addresses {} in prevResult, {} attached",
            listed.join(", "),
            attached.join(", ")
        ));
    }
    let routes = prev["routes"].as_array().cloned().unwrap_or_default();
    for gateway in &att.gateways {
        let dst = if gateway.is_ipv4() {
            "0.0.0.0/0"
        } else {
            "::/0"
        };
        let has = routes.iter().any(|r| {
            r["dst"] == dst
                && r["gw"]
                    .as_str()
                    .is_none_or(|gw| gw.parse::<IpAddr>().ok() == Some(*gateway))
        });
        if !has {
            problems.push(format!("prevResult has no route {dst} via {gateway}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(
            codes::CHECK_FAILED,
            format!("{ifname} differs from prevResult"),
        )
        .details(problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn attachment() -> Attachment {
        Attachment {
            container_id: "c1".into(),
            ifname: "eth0".into(),
            tenant: "city".into(),
            netns: PathBuf::from("/run/netns/p1"),
            host_ifname: "pk0123456789ab".into(),
            mac: Some("0a:58:0a:01:01:02".into()),
            addresses: vec!["10.1.1.2/32".into(), "fd00:1:1::2/128".into()],
            gateways: vec![
                "169.254.1.1".parse().expect("ip"),
                "fe80::1".parse().expect("ip"),
            ],
            mtu: 1408,
            owner: None,
        }
    }

    #[test]
    fn results_follow_the_version() {
        let old = add_result(&attachment(), Version::V0_3_1, None);
        assert_eq!(old["cniVersion"], "0.3.1");
        assert_eq!(old["ips"][0]["version"], "4");
        assert_eq!(old["ips"][1]["version"], "6");
        assert!(old["interfaces"][1].get("mtu").is_none());
        let v1 = add_result(&attachment(), Version::V1_0_0, None);
        assert!(v1["ips"][0].get("version").is_none());
        let v11 = add_result(
            &attachment(),
            Version::V1_1_0,
            Some(&json!({"nameservers": ["10.0.0.53"]})),
        );
        assert_eq!(
            v11["interfaces"][1],
            json!({"name":"eth0","sandbox":"/run/netns/p1","mac":"0a:58:0a:01:01:02","mtu":1408})
        );
        assert_eq!(
            v11["ips"][0],
            json!({"address":"10.1.1.2/32","gateway":"169.254.1.1","interface":1})
        );
        assert_eq!(v11["routes"][1], json!({"dst":"::/0","gw":"fe80::1"}));
        assert_eq!(v11["dns"]["nameservers"][0], "10.0.0.53");
    }

    #[test]
    fn check_accepts_its_own_result_in_every_version() {
        for v in [Version::V0_4_0, Version::V1_0_0, Version::V1_1_0] {
            let prev = add_result(&attachment(), v, None);
            check_prev_result(&prev, &attachment(), "eth0", Path::new("/run/netns/p1"))
                .expect("own result");
        }
    }

    #[test]
    fn check_lists_every_difference() {
        let mut prev = add_result(&attachment(), Version::V1_0_0, None);
        prev["ips"][0]["address"] = json!("10.1.1.99/32");
        prev["routes"] = json!([]);
        let e = check_prev_result(&prev, &attachment(), "eth0", Path::new("/run/netns/other"))
            .expect_err("differs");
        assert_eq!(e.code, codes::CHECK_FAILED);
        for part in ["10.1.1.99/32", "no route 0.0.0.0/0", "/run/netns/other"] {
            assert!(e.details.contains(part), "{part}: {e}");
        }
        let e = check_prev_result(&json!({}), &attachment(), "eth0", Path::new("/x"))
            .expect_err("empty");
        assert!(e.details.contains("no interface `eth0`"), "{e}");
    }
}
