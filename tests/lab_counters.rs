//! The agent's counters against real traffic in the two-gateway lab
//! (`pisek_lab::lab`: an edge and two gateways, each a real `pisek-agent` in its
//! own namespace).
//!
//! Proves: a ping of N packets from gw1 to gw2 in tenant `city` shows in
//! `pisekctl peers --json` as at least N more packets sent to and received
//! from the edge on gw1, and on the edge as at least N more each way with
//! both gateways (it relays them); a workload that spoofs its source is
//! counted in its tenant's drops (`pisekctl drops --json`, tenant `city`,
//! not `conference`) and in `pisek_tenant_drops_total` on the metrics page.

use pisek_lab::Lab;
use serde_json::Value;
use std::time::Duration;

/// Echo requests in the ping (each is one packet each way).
const PINGS: u64 = 20;

/// The named peer's entry in node `node`'s `pisekctl peers --json`.
fn peer(lab: &Lab, node: usize, name: &str) -> Value {
    let peers = lab.json(node, &["peers", "--json"]).expect("peers");
    peers
        .as_array()
        .expect("a list")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no peer {name} on node {node}: {peers}"))
        .clone()
}

/// A counter of the named peer on node `node`.
fn peer_counter(lab: &Lab, node: usize, name: &str, counter: &str) -> u64 {
    peer(lab, node, name)[counter]
        .as_u64()
        .unwrap_or_else(|| panic!("{name}.{counter} on node {node} is not a number"))
}

#[test]
fn peer_and_tenant_counters_follow_real_traffic() {
    if !pisek_lab::require(
        "peer_and_tenant_counters_follow_real_traffic",
        &["ip", "ping", "python3", "sysctl"],
    ) {
        return;
    }
    let tag = pisek_lab::unique_tag("tc");
    let lab = Lab::start(&tag, pisek_lab::lab_binaries()).expect("the lab starts");
    lab.wait_until_ready(Duration::from_secs(20))
        .expect("peers, sessions and routes come up");
    let (gw1, edge) = (1, 0);
    let src = lab.workload("gw1", "city", 1).clone();
    let dst = lab.workload("gw2", "city", 1).clone();

    // Per peer: a ping of PINGS packets gw1 -> gw2 (through the edge).
    let counters = ["rx_packets", "tx_packets"];
    let before_gw1: Vec<u64> = counters
        .iter()
        .map(|c| peer_counter(&lab, gw1, "edge", c))
        .collect();
    let before_edge: Vec<(&str, &str, u64)> = ["gw1", "gw2"]
        .into_iter()
        .flat_map(|g| counters.map(|c| (g, c)))
        .map(|(g, c)| (g, c, peer_counter(&lab, edge, g, c)))
        .collect();
    let ping = lab
        .exec(
            &src.netns,
            "ping",
            &[
                "-c",
                &PINGS.to_string(),
                "-i",
                "0.02",
                "-W",
                "1",
                &dst.address.to_string(),
            ],
        )
        .expect("ping");
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
    );
    // The forwarder publishes its counters every 500 ms.
    pisek_lab::poll_until(
        "gw1's edge peer counts the ping both ways",
        Duration::from_secs(3),
        || {
            counters
                .iter()
                .zip(&before_gw1)
                .all(|(c, before)| peer_counter(&lab, gw1, "edge", c) >= before + PINGS)
                .then_some(())
        },
    );
    pisek_lab::poll_until(
        "the edge counts the relayed ping with both gateways",
        Duration::from_secs(3),
        || {
            before_edge
                .iter()
                .all(|(g, c, before)| peer_counter(&lab, edge, g, c) >= before + PINGS)
                .then_some(())
        },
    );
    let edge_on_gw1 = peer(&lab, gw1, "edge");
    assert!(
        edge_on_gw1["handshakes"].as_u64().is_some_and(|h| h >= 1),
        "{edge_on_gw1}"
    );
    assert!(edge_on_gw1["endpoint_changes"].is_u64(), "{edge_on_gw1}");
    assert!(edge_on_gw1["drops"].is_object(), "{edge_on_gw1}");
    let table = lab.pisekctl(gw1, &["peers"]).expect("peers");
    eprintln!("gw1$ pisekctl peers\n{table}");
    eprintln!("gw1$ pisekctl peers\n{table}");
    assert!(
        table.starts_with("PEER") && table.contains("RX PACKETS") && table.contains("TX PACKETS"),
        "{table}"
    );

    // Per tenant: a spoofed source from city's workload. The kernel's
    // strict rp_filter on the veth would drop it first; with it off, the
    // agent must drop it and count it for city (not conference).
    let attached = lab.json(gw1, &["endpoints", "--json"]).expect("endpoints");
    let host_if = attached
        .as_array()
        .expect("a list")
        .iter()
        .find(|e| e["netns"].as_str().is_some_and(|n| n.ends_with(&src.netns)))
        .and_then(|e| e["host_ifname"].as_str())
        .expect("the workload's host interface")
        .to_string();
    for key in ["all", host_if.as_str()] {
        let out = lab
            .exec(
                &lab.nodes[gw1].netns,
                "sysctl",
                &["-qw", &format!("net.ipv4.conf.{key}.rp_filter=0")],
            )
            .expect("sysctl");
        assert!(out.status.success());
    }
    // Nothing spoofed yet: the agent's TUNs are quiet (no kernel IPv6
    // chatter counted against a tenant; tests/lab_quiet_start.rs).
    let (city_before, conference_before) = (
        lab.drops(gw1, Some("city"), "spoofed-source")
            .expect("drops"),
        lab.drops(gw1, Some("conference"), "spoofed-source")
            .expect("drops"),
    );
    assert_eq!((city_before, conference_before), (0, 0), "no spoofing yet");
    let out = lab
        .exec(
            &src.netns,
            "ip",
            &["addr", "add", "10.1.1.99/32", "dev", "eth0"],
        )
        .expect("ip addr");
    assert!(out.status.success());
    let spoof = lab
        .exec(
            &src.netns,
            "ping",
            &[
                "-c",
                "3",
                "-i",
                "0.02",
                "-W",
                "1",
                "-I",
                "10.1.1.99",
                &dst.address.to_string(),
            ],
        )
        .expect("ping");
    assert!(!spoof.status.success(), "a spoofed ping got a reply");
    pisek_lab::poll_until(
        "spoofed-source drops counted for city",
        Duration::from_secs(3),
        || {
            (lab.drops(gw1, Some("city"), "spoofed-source")
                .expect("drops")
                >= city_before + 3)
                .then_some(())
        },
    );
    assert_eq!(
        lab.drops(gw1, Some("city"), "spoofed-source")
            .expect("drops"),
        city_before + 3,
        "each of the three spoofed echo requests counted once"
    );
    assert_eq!(
        lab.drops(gw1, Some("conference"), "spoofed-source")
            .expect("drops"),
        conference_before,
        "conference dropped nothing"
    );
    let table = lab.pisekctl(gw1, &["drops"]).expect("drops");
    eprintln!("gw1$ pisekctl drops\n{table}");
    eprintln!("gw1$ pisekctl drops\n{table}");
    assert!(
        table.lines().any(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            cells.len() == 3 && cells[0] == "spoofed-source" && cells[1] == "city"
        }),
        "{table}"
    );

    // The same on the metrics page of gw1, next to the node's total.
    let city = lab
        .metric(
            gw1,
            "pisek_tenant_drops_total{tenant=\"city\",reason=\"spoofed-source\"}",
        )
        .expect("metrics");
    assert!(city.is_some_and(|n| n >= city_before + 3), "{city:?}");
    let total = lab
        .metric(gw1, "pisek_drops_total{reason=\"spoofed-source\"}")
        .expect("metrics");
    assert!(total >= city, "node total {total:?} < city's {city:?}");
    let sent = lab
        .metric(
            gw1,
            "pisek_wireguard_peer_transmit_packets_total{peer=\"edge\",",
        )
        .expect("metrics");
    assert!(sent.is_some_and(|n| n >= PINGS), "{sent:?}");
}
