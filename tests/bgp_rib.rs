//! `pisekctl bgp rib` against an independent RIB (issue 13, defect 3): in
//! the two-gateway lab with gobgpd as the route reflector, gw1's RIB as
//! Pisek shows it (RD, prefix, next hop, label, route targets, peer, best,
//! age) holds exactly the VPNv4 paths gobgpd's `gobgp global rib -a vpnv4`
//! holds, and the human table has the familiar `show bgp vpnv4` shape.
use pisek_lab::{Lab, Reflector};
use std::collections::BTreeSet;
use std::time::Duration;

const GW1: usize = 1;

/// gobgpd's VPNv4 paths: ("RD:prefix", next hop, labels).
fn gobgpd_paths(lab: &Lab) -> BTreeSet<(String, String, Vec<u64>)> {
    let out = lab
        .gobgp(&["global", "rib", "-a", "vpnv4", "-j"])
        .expect("gobgp");
    let rib: serde_json::Value = serde_json::from_str(&out).unwrap_or(serde_json::Value::Null);
    pisek_lab::gobgpd::parse_rib(&rib)
        .into_iter()
        .map(|p| (p.key, p.next_hop, p.labels))
        .collect()
}

/// gw1's VPNv4 paths as `pisekctl bgp rib --json` shows them.
fn pisek_paths(lab: &Lab, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["bgp", "rib", "--json"];
    all.extend(args);
    lab.json(GW1, &all)
        .expect("bgp rib")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn the_rib_pisekctl_shows_is_the_one_gobgpd_holds() {
    if !pisek_lab::require(
        "the_rib_pisekctl_shows_is_the_one_gobgpd_holds",
        &["ip", "gobgpd", "gobgp"],
    ) {
        return;
    }
    let tag = pisek_lab::unique_tag("br");
    let lab = Lab::start_with(&tag, pisek_lab::lab_binaries(), Reflector::Gobgpd)
        .expect("the lab starts");
    lab.wait_until_ready(Duration::from_secs(20))
        .expect("peers, sessions and routes come up");
    let (gobgp, pisek) =
        pisek_lab::poll_until("the two RIBs agree", Duration::from_secs(10), || {
            let gobgp = gobgpd_paths(&lab);
            let pisek: BTreeSet<(String, String, Vec<u64>)> =
                pisek_paths(&lab, &["--family", "vpnv4"])
                    .iter()
                    .map(|r| {
                        (
                            format!(
                                "{}:{}",
                                r["rd"].as_str().unwrap_or(""),
                                r["prefix"].as_str().unwrap_or("")
                            ),
                            r["next_hop"].as_str().unwrap_or("").to_string(),
                            r["labels"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(serde_json::Value::as_u64)
                                .collect(),
                        )
                    })
                    .collect();
            (!gobgp.is_empty() && gobgp == pisek).then_some((gobgp, pisek))
        });
    assert_eq!(gobgp, pisek);
    // Each path: from gobgpd (its address) or local, best, fresh, imported
    // by the tenant its route target names.
    let rows = pisek_paths(&lab, &["--family", "vpnv4"]);
    for r in &rows {
        assert_eq!(r["best"], true, "{r}");
        assert_eq!(r["stale"], false, "{r}");
        assert!(r["age_secs"].as_u64().is_some_and(|a| a < 120), "{r}");
        let targets = r["route_targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{r}");
        let from = r["from"].as_str().expect("from");
        assert!(from == "local" || from == "10.255.0.1", "{r}");
        let vrf = if targets.iter().any(|t| t == "65000:1") {
            "city"
        } else {
            "conference"
        };
        assert_eq!(r["vrfs"], serde_json::json!([vrf]), "{r}");
    }
    let city = pisek_paths(&lab, &["--family", "vpnv4", "--vrf", "city"]);
    assert_eq!(
        city.len() * 2,
        rows.len(),
        "city holds half the VPNv4 paths"
    );
    assert!(!pisek_paths(&lab, &["--family", "vpnv6"]).is_empty());
    assert!(
        lab.pisekctl(GW1, &["bgp", "rib", "--vrf", "nowhere"])
            .is_err()
    );
    let text = lab.pisekctl(GW1, &["bgp", "rib"]).expect("table");
    assert!(text.contains("Route Distinguisher: 10.255.0.12:"), "{text}");
    assert!(text.contains("*>"), "{text}");
    assert!(text.contains("NEXT HOP"), "{text}");
}
