//! A learned route never shadows a local workload (issue 13, defect 6), in
//! the two-gateway lab with gobgpd as the independent route reflector:
//!
//! - a workload on gw2 with a stray address inside gw1's prefix is a
//!   learned /32 on gw1, and gw1's IPAM does not hand that address out;
//! - a route for exactly gw1's own prefix (originated by gobgpd with gw2's
//!   next hop) is refused by gw1, logged, and gw1's workloads stay
//!   reachable.
use pisek_lab::{Lab, Netns, Reflector};
use std::time::Duration;

const GW1: usize = 1;
const GW2: usize = 2;
const CONVERGENCE: Duration = Duration::from_secs(10);

fn attach(lab: &Lab, node: usize, ns: &Netns, address: Option<&str>) -> serde_json::Value {
    let path = ns.path().display().to_string();
    let mut args = vec!["attach", "--netns", &path, "--tenant", "city", "--json"];
    if let Some(a) = address {
        args.extend(["--address", a]);
    }
    let out = lab.pisekctl(node, &args).expect("attach");
    serde_json::from_str(&out).expect("attach answer")
}

fn has_bgp_route(lab: &Lab, node: usize, prefix: &str) -> bool {
    let routes = lab
        .json(node, &["routes", "--tenant", "city", "--json"])
        .expect("routes");
    routes.as_array().is_some_and(|r| {
        r.iter()
            .any(|r| r["prefix"] == prefix && r["source"] == "bgp")
    })
}

#[test]
fn learned_routes_never_shadow_local_workloads() {
    if !pisek_lab::require(
        "learned_routes_never_shadow_local_workloads",
        &["ip", "ping", "gobgpd", "gobgp"],
    ) {
        return;
    }
    let tag = pisek_lab::unique_tag("ls");
    let lab = Lab::start_with(&tag, pisek_lab::lab_binaries(), Reflector::Gobgpd)
        .expect("the lab starts");
    lab.wait_until_ready(Duration::from_secs(20))
        .expect("peers, sessions and routes come up");

    // gw1's workloads hold 10.1.1.1 and .2; a pod on gw2 keeps 10.1.1.3.
    let moved = Netns::new("lm");
    attach(&lab, GW2, &moved, Some("10.1.1.3"));
    pisek_lab::poll_until("gw1 learns 10.1.1.3/32", CONVERGENCE, || {
        has_bgp_route(&lab, GW1, "10.1.1.3/32").then_some(())
    });
    let fresh = Netns::new("lf");
    let answer = attach(&lab, GW1, &fresh, None);
    let v4: Vec<&str> = answer["addresses"]
        .as_array()
        .expect("addresses")
        .iter()
        .filter_map(|a| a.as_str())
        .filter(|a| a.contains('.'))
        .collect();
    assert_eq!(v4, ["10.1.1.4/32"], "10.1.1.3 lives on gw2: {answer}");

    // A route for exactly gw1's own prefix, pointing at gw2.
    lab.gobgp(&[
        "global",
        "rib",
        "-a",
        "vpnv4",
        "add",
        "10.1.1.0/24",
        "label",
        "99",
        "rd",
        "65000:99",
        "rt",
        "65000:1",
        "nexthop",
        "10.255.0.12",
    ])
    .expect("gobgp");
    pisek_lab::poll_until("gw1 refuses its own prefix", CONVERGENCE, || {
        lab.logs()
            .lines()
            .any(|l| l.contains("learned route refused") && l.contains("10.1.1.0/24"))
            .then_some(())
    });
    assert!(
        !has_bgp_route(&lab, GW1, "10.1.1.0/24"),
        "not installed on gw1"
    );
    let gw1_city = lab.workload("gw1", "city", 1).clone();
    let gw2_city = lab.workload("gw2", "city", 1).clone();
    let (ok, line) = lab.ping(&gw2_city, gw1_city.address, 3).expect("ping");
    assert!(ok, "gw2 still reaches gw1's workload: {line}");
    let (ok, line) = lab.ping(&gw1_city, gw2_city.address, 3).expect("ping");
    assert!(ok, "and gw1's workload still answers from gw1: {line}");
}
