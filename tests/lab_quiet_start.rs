//! A node start and the lab's attaches count no `spoofed-source` drop.
//!
//! The kernel speaks on its own on every new interface: IPv6 duplicate
//! address detection, MLD reports, router solicitations, from `::` or a
//! `fe80::` source to `ff02::` groups. On the agent's TUNs those packets
//! reach the pipeline as if a workload had sent them. Operators alert on
//! `spoofed-source` (a workload lying about its address), so a node start
//! must leave it at zero: the agent keeps the kernel quiet on its TUNs, and
//! whatever link-scoped packet still comes is counted as `link-local`.
//!
//! Proves, in the two-gateway lab (`pisek::lab`, three real agents with
//! dual-stack tenants and their workloads attached): once the overlay
//! carries a ping from gw1 to gw2 over IPv4 and IPv6 in `city`,
//! `pisekctl drops --json` on every node shows zero `spoofed-source`
//! node-wide and for every tenant, and the TUNs have no IPv6 link-local
//! address (the kernel's source of the chatter).

mod common;

use pisek::lab::{Binaries, Lab, TENANTS};
use serde_json::Value;
use std::net::IpAddr;
use std::time::Duration;

fn binaries() -> Binaries {
    Binaries {
        agent: common::workspace_binary("pisek-agent"),
        pisekctl: common::workspace_binary("pisekctl"),
    }
}

/// The `packets` of the `reason` row of `tenant` (`None`: node-wide) in a
/// `pisekctl drops --json` answer.
fn drops(answer: &Value, tenant: Option<&str>, reason: &str) -> Option<u64> {
    answer
        .as_array()?
        .iter()
        .find(|d| d["reason"] == reason && d["tenant"].as_str() == tenant)?["packets"]
        .as_u64()
}

#[test]
fn a_node_start_counts_no_spoofed_source() {
    if !common::require("a_node_start_counts_no_spoofed_source", &["ip", "ping"]) {
        return;
    }
    let tag = common::unique_tag("qs");
    let lab = Lab::start(&tag, binaries()).expect("the lab starts");
    lab.wait_until_ready(Duration::from_secs(20))
        .expect("peers, sessions and routes come up");

    // Routes in the VRFs are not yet a working path: wait until a ping
    // crosses the overlay both ways, in both families.
    let src = lab.workload("gw1", "city", 1).clone();
    let dst = lab.workload("gw2", "city", 1).clone();
    for to in [IpAddr::V4(dst.address), IpAddr::V6(dst.address_v6)] {
        common::poll_until(
            &format!("a ping from gw1 to gw2 ({to}) in city"),
            Duration::from_secs(10),
            || lab.ping(&src, to, 1).ok().filter(|(ok, _)| *ok).map(|_| ()),
        );
    }

    for (i, node) in lab.nodes.iter().enumerate() {
        let answer = lab.json(i, &["drops", "--json"]).expect("drops");
        let rows = std::iter::once(None).chain(TENANTS.iter().map(|(t, _)| Some(*t)));
        for tenant in rows {
            let spoofed = drops(&answer, tenant, "spoofed-source");
            eprintln!(
                "{} {}: spoofed-source {spoofed:?}, link-scoped {:?}, no-peer {:?}",
                node.name,
                tenant.unwrap_or("node"),
                drops(&answer, tenant, "link-scoped"),
                drops(&answer, tenant, "no-peer"),
            );
            assert_eq!(
                spoofed,
                Some(0),
                "{}: spoofed-source for {} after start and attach: {answer}\nlogs:\n{}",
                node.name,
                tenant.unwrap_or("the node"),
                lab.logs()
            );
        }

        // The cause, not only the symptom: no TUN has a link-local
        // address to send DAD, MLD or router solicitations from.
        let tuns = ["pisek0", "pisek-t1", "pisek-t2"];
        for tun in tuns {
            let out = lab
                .exec(&node.netns, "ip", &["-6", "-o", "addr", "show", "dev", tun])
                .expect("ip addr");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{}: {tun} exists", node.name);
            assert!(
                !text.contains("fe80:"),
                "{}: {tun} has a link-local address: {text}",
                node.name
            );
        }
    }
}
