//! Requested and stray addresses in the two-gateway lab (`pisek_lab::lab`): a
//! namespace attached on gw1 in `city` with a fixed address outside gw1's
//! prefix (a pod that moved and kept its IP) is reachable from gw2 through
//! a /32 that gw1 advertises with the VRF's label; the route stays in
//! `city`, survives an agent restart and goes away on detach. A requested
//! address inside gw1's prefix is leased exactly, a taken or reserved one is
//! refused and leaves nothing behind, and a workload's first packet after
//! its attach returned is forwarded, not dropped as spoofed. With `gobgpd`
//! as the route reflector, the independent reflector holds the /32, reflects
//! it to gw2, and drops it on detach.

use pisek_lab::Netns;
use pisek_lab::{Lab, Reflector};
use std::time::Duration;

/// gw1 and gw2 in the lab's node list, and the edge.
const EDGE: usize = 0;
const GW1: usize = 1;
const GW2: usize = 2;
const GW1_TUNNEL: &str = "10.255.0.11";
const STRAY: &str = "10.1.9.5";
const CONVERGENCE: Duration = Duration::from_secs(10);

/// The BGP route of `node` for `prefix` in `tenant`: (next hop, label).
fn learned_route(lab: &Lab, node: usize, tenant: &str, prefix: &str) -> Option<(String, u64)> {
    let routes = lab
        .json(node, &["routes", "--tenant", tenant, "--json"])
        .expect("routes");
    routes.as_array()?.iter().find_map(|r| {
        (r["prefix"] == prefix && r["source"] == "bgp").then(|| {
            (
                r["next_hop"].as_str().unwrap_or_default().to_string(),
                r["label"].as_u64().unwrap_or_default(),
            )
        })
    })
}

fn vrf_label(lab: &Lab, node: usize, tenant: &str) -> u64 {
    let vrfs = lab.json(node, &["vrfs", "--json"]).expect("vrfs");
    vrfs.as_array()
        .and_then(|v| v.iter().find(|v| v["tenant"] == tenant))
        .and_then(|v| v["label"].as_u64())
        .expect("the tenant's label")
}

fn attach(lab: &Lab, ns: &Netns, address: &str) -> anyhow::Result<serde_json::Value> {
    let out = lab.pisekctl(
        GW1,
        &[
            "attach",
            "--netns",
            &ns.path().display().to_string(),
            "--tenant",
            "city",
            "--address",
            address,
            "--json",
        ],
    )?;
    Ok(serde_json::from_str(&out)?)
}

/// The IPv4 addresses of an attach answer (a dual-stack tenant also gets
/// an IPv6 address from its prefix).
fn ipv4_addresses(answer: &serde_json::Value) -> Vec<String> {
    answer["addresses"]
        .as_array()
        .expect("addresses")
        .iter()
        .filter_map(|a| a.as_str())
        .filter(|a| !a.contains(':'))
        .map(str::to_string)
        .collect()
}

/// The host-side workload veths on gw1.
fn gw1_veths(lab: &Lab) -> usize {
    let out = lab
        .exec(&lab.nodes[GW1].netns, "ip", &["-o", "link", "show"])
        .expect("ip link");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.split(": ").nth(1).is_some_and(|n| n.starts_with("pk")))
        .count()
}

fn gw1_state(lab: &Lab) -> String {
    std::fs::read_to_string(
        lab.dir
            .join("gw1-state")
            .join("run")
            .join("attachments.json"),
    )
    .expect("gw1's state")
}

fn has_eth0(ns: &Netns) -> bool {
    String::from_utf8_lossy(&ns.ip(["link", "show"]).stdout).contains("eth0")
}

#[test]
fn stray_address_is_advertised_as_a_host_route_in_its_tenant_and_withdrawn_on_detach() {
    if !pisek_lab::require(
        "stray_address_is_advertised_as_a_host_route_in_its_tenant_and_withdrawn_on_detach",
        &["ip", "ping"],
    ) {
        return;
    }
    let tag = pisek_lab::unique_tag("sa");
    let lab = Lab::start(&tag, pisek_lab::lab_binaries()).expect("the lab starts");
    lab.wait_until_ready(Duration::from_secs(20))
        .expect("peers, sessions and routes come up");
    let city_label = vrf_label(&lab, GW1, "city");
    let gw2_city = lab.workload("gw2", "city", 1).clone();

    // A requested address inside gw1's prefix: exactly that one. Its very
    // first packet after the attach returned crosses the overlay (the
    // forwarder knew the address before the answer; no anti-spoofing drop).
    let inside = Netns::new("si");
    let answer = attach(&lab, &inside, "10.1.1.200").expect("attach inside");
    assert_eq!(ipv4_addresses(&answer), ["10.1.1.200/32"]);
    assert!(
        inside.ping_once(&gw2_city.address.to_string()),
        "the first packet after attach reached gw2's workload and came back"
    );

    // The same address again, for another namespace: refused, nothing left.
    let veths = gw1_veths(&lab);
    let other = Netns::new("st");
    let err = attach(&lab, &other, "10.1.1.200").expect_err("taken");
    assert!(err.to_string().contains("address_in_use"), "{err}");
    assert!(err.to_string().contains("10.1.1.200"), "{err}");
    let err = attach(&lab, &other, "10.1.1.255").expect_err("broadcast");
    assert!(err.to_string().contains("address_reserved"), "{err}");
    assert_eq!(gw1_veths(&lab), veths, "no half-made veth");
    assert!(!has_eth0(&other), "no interface in the refused namespace");
    assert!(
        !gw1_state(&lab).contains(&other.name),
        "no lease or record for the refused namespace"
    );

    // The stray address: outside gw1's 10.1.1.0/24.
    let stray = Netns::new("ss");
    let answer = attach(&lab, &stray, STRAY).expect("attach stray");
    assert_eq!(ipv4_addresses(&answer), [format!("{STRAY}/32")]);
    assert_eq!(
        attach(&lab, &stray, STRAY).expect("attach again"),
        answer,
        "a repeated attach gives the same answer"
    );
    let host_route = format!("{STRAY}/32");
    for node in [GW2, EDGE] {
        let route = pisek_lab::poll_until("the stray /32 on gw2 and the edge", CONVERGENCE, || {
            learned_route(&lab, node, "city", &host_route)
        });
        assert_eq!(
            route,
            (GW1_TUNNEL.to_string(), city_label),
            "node {node}: next hop gw1, city's label"
        );
        assert_eq!(
            learned_route(&lab, node, "conference", &host_route),
            None,
            "node {node}: conference does not import city's host route"
        );
    }
    let (ok, line) = lab
        .ping(
            &gw2_city,
            STRAY.parse::<std::net::Ipv4Addr>().expect("address"),
            3,
        )
        .expect("ping");
    assert!(ok, "gw2's city workload reaches the stray address: {line}");

    // An agent restart keeps it: re-advertised from the state, still local.
    lab.stop_agent(GW1).expect("stop gw1");
    lab.start_agent(GW1).expect("restart gw1");
    // Every node prefix of every tenant, plus the stray /32.
    let vrfs = lab.json(GW1, &["vrfs", "--json"]).expect("vrfs");
    let node_prefixes: usize = vrfs
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|v| v["prefixes"].as_array().map(Vec::len))
        .sum();
    pisek_lab::poll_until(
        "gw1 advertises its node prefixes and the stray /32 again",
        Duration::from_secs(20),
        || {
            let sessions = lab.json(GW1, &["bgp", "--json"]).ok()?;
            let session = sessions.as_array()?.first()?.clone();
            (session["state"] == "Established" && session["advertised"] == node_prefixes as u64 + 1)
                .then_some(())
        },
    );
    let (ok, line) = lab
        .ping(
            &gw2_city,
            STRAY.parse::<std::net::Ipv4Addr>().expect("address"),
            3,
        )
        .expect("ping");
    assert!(ok, "after gw1's restart: {line}");

    // Detach withdraws it everywhere.
    lab.pisekctl(
        GW1,
        &["detach", "--netns", &stray.path().display().to_string()],
    )
    .expect("detach");
    for node in [GW2, EDGE] {
        pisek_lab::poll_until("the stray /32 withdrawn", CONVERGENCE, || {
            learned_route(&lab, node, "city", &host_route)
                .is_none()
                .then_some(())
        });
    }
    // The veth pair and its record go just after the answer.
    pisek_lab::poll_until(
        "the stray's veth deleted and its lease and record dropped",
        Duration::from_secs(5),
        || (!has_eth0(&stray) && !gw1_state(&lab).contains(STRAY)).then_some(()),
    );
}

/// gobgpd's VPNv4 RIB on the edge (the lab's reflector), as JSON text.
fn gobgpd_vpnv4_rib(lab: &Lab) -> String {
    lab.gobgp(&["global", "rib", "-a", "vpnv4", "-j"])
        .expect("gobgp")
}

#[test]
fn stray_host_route_is_reflected_by_gobgpd_and_withdrawn_through_it() {
    if !pisek_lab::require(
        "stray_host_route_is_reflected_by_gobgpd_and_withdrawn_through_it",
        &["ip", "ping", "gobgpd", "gobgp"],
    ) {
        return;
    }
    let tag = pisek_lab::unique_tag("sg");
    let lab = Lab::start_with(&tag, pisek_lab::lab_binaries(), Reflector::Gobgpd)
        .expect("the lab starts");
    lab.wait_until_ready(Duration::from_secs(20))
        .expect("peers, sessions (to gobgpd) and routes come up");
    let city_label = vrf_label(&lab, GW1, "city");
    let gw2_city = lab.workload("gw2", "city", 1).clone();
    let stray = Netns::new("sr");
    attach(&lab, &stray, STRAY).expect("attach stray");
    let host_route = format!("{STRAY}/32");
    // The independent reflector holds the /32 from gw1 ...
    pisek_lab::poll_until("the stray /32 in gobgpd's RIB", CONVERGENCE, || {
        let rib = gobgpd_vpnv4_rib(&lab);
        (rib.contains(&host_route) && rib.contains(GW1_TUNNEL)).then_some(())
    });
    // ... and reflects it to gw2 with gw1's next hop and city's label.
    let route = pisek_lab::poll_until("the stray /32 on gw2", CONVERGENCE, || {
        learned_route(&lab, GW2, "city", &host_route)
    });
    assert_eq!(route, (GW1_TUNNEL.to_string(), city_label));
    assert_eq!(learned_route(&lab, GW2, "conference", &host_route), None);
    let (ok, line) = lab
        .ping(
            &gw2_city,
            STRAY.parse::<std::net::Ipv4Addr>().expect("address"),
            3,
        )
        .expect("ping");
    assert!(
        ok,
        "gw2 reaches the stray address through gobgpd's reflection: {line}"
    );
    lab.pisekctl(
        GW1,
        &["detach", "--netns", &stray.path().display().to_string()],
    )
    .expect("detach");
    pisek_lab::poll_until(
        "the stray /32 withdrawn from gobgpd and gw2",
        CONVERGENCE,
        || {
            (!gobgpd_vpnv4_rib(&lab).contains(&host_route)
                && learned_route(&lab, GW2, "city", &host_route).is_none())
            .then_some(())
        },
    );
}
