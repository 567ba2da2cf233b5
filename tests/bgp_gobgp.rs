//! Interop with GoBGP (Debian `gobgpd`): Pisek and gobgpd peer over iBGP on
//! loopback addresses of their own (127.<pid>.<n>.0/24, port 179), and
//! gobgp's CLI shows exactly what arrived.
use std::net::IpAddr;

use pisek_lab::bgp_speaker::*;
use pisek_lab::gobgpd::*;
use pisek_overlay::bgp::packet::Family;

fn poll<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    pisek_lab::poll_until(what, WAIT, check)
}

/// Addresses and a directory for one test; `None` (skip) outside CI when
/// gobgp is not installed.
fn prerequisites(test: &str) -> Option<(Loopback, pisek_lab::TempDir)> {
    pisek_lab::require(test, &["gobgpd", "gobgp"])
        .then(|| (Loopback::new(), pisek_lab::TempDir::new("gobgp")))
}

fn gobgp_pair(lo: &Loopback, dir: &pisek_lab::TempDir) -> (Gobgp, Pisek) {
    let gobgp = Gobgp::start(
        &dir.path,
        lo.ip(2),
        &[GobgpdNeighbor {
            address: lo.ip(1),
            rr_client: false,
            passive: false,
            peer_as: None,
        }],
        None,
    );
    let pisek = Pisek::start(
        speaker_config(lo.v4(1)),
        lo.ip(1),
        &[lo.ip(2)],
        vec![vrf(1, "65000:1", "65000:100")],
    );
    pisek.wait_established();
    (gobgp, pisek)
}

#[test]
fn gobgp_shows_the_rd_label_targets_and_next_hop_pisek_advertises() {
    let Some((lo, dir)) = prerequisites("gobgp advertise") else {
        return;
    };
    let (gobgp, pisek) = gobgp_pair(&lo, &dir);
    pisek.advertise(1, "10.1.0.0/24", 100);
    pisek.advertise(1, "10.1.7.9/32", 100);
    pisek.advertise(1, "fd00:1::/64", 101);

    let me = lo.ip(1).to_string();
    let v4 = gobgp.wait_paths("gobgp has both VPNv4 routes", "vpnv4", 2);
    let expect = |key: &str, label: u64| GobgpPath {
        key: key.to_string(),
        labels: vec![label],
        next_hop: me.clone(),
        route_targets: vec!["65000:100".to_string()],
        stale: false,
        originator_id: None,
        cluster_list: Vec::new(),
    };
    assert_eq!(
        v4,
        vec![
            expect("65000:1:10.1.0.0/24", 100),
            expect("65000:1:10.1.7.9/32", 100)
        ]
    );
    // VPNv6 over an IPv4 session: the next hop travels IPv4-mapped
    // (RFC 4659 §3.2.1.2), and gobgp shows it as the IPv4 address.
    let v6 = gobgp.wait_paths("gobgp has the VPNv6 route", "vpnv6", 1);
    assert_eq!(v6[0].key, "65000:1:fd00:1::/64");
    assert_eq!(v6[0].labels, vec![101]);
    assert_eq!(v6[0].route_targets, vec!["65000:100".to_string()]);
    assert!(v6[0].next_hop.ends_with(&me), "next hop {}", v6[0].next_hop);

    let mut ours = pisek.rt.block_on(pisek.handle().advertised()).unwrap();
    ours.sort_by_key(|(p, _, _)| *p);
    let listed: Vec<String> = ours
        .iter()
        .map(|(p, t, l)| format!("{p} t{t} {}", l.value()))
        .collect();
    assert_eq!(
        listed,
        [
            "65000:1:10.1.0.0/24 t1 100",
            "65000:1:10.1.7.9/32 t1 100",
            "65000:1:fd00:1::/64 t1 101"
        ]
    );

    pisek.withdraw(1, "10.1.0.0/24");
    pisek.withdraw(1, "fd00:1::/64");
    poll("gobgp drops the withdrawn routes", || {
        let (v4, v6) = (gobgp.paths("vpnv4"), gobgp.paths("vpnv6"));
        (v4.len() == 1 && v4[0].key == "65000:1:10.1.7.9/32" && v6.is_empty()).then_some(())
    });
}

#[test]
fn pisek_learns_and_forgets_routes_gobgp_originates() {
    let Some((lo, dir)) = prerequisites("gobgp learn") else {
        return;
    };
    let (gobgp, mut pisek) = gobgp_pair(&lo, &dir);
    let tenant_v4 = GobgpVpnRoute {
        family: "vpnv4",
        prefix: "10.2.0.0/24",
        label: 200,
        rd: "65000:2",
        rt: "65000:100",
        next_hop: lo.ip(2),
    };
    let tenant_v6 = GobgpVpnRoute {
        family: "vpnv6",
        prefix: "fd00:2::/64",
        label: 201,
        ..tenant_v4
    };
    gobgp.add_route(&tenant_v4);
    gobgp.add_route(&tenant_v6);
    // A route for another tenant's target is learned but not imported.
    let other_tenant = GobgpVpnRoute {
        prefix: "10.3.0.0/24",
        label: 300,
        rd: "65000:3",
        rt: "65000:999",
        ..tenant_v4
    };
    gobgp.add_route(&other_tenant);

    // gobgp sends a VPNv6 next hop IPv4-mapped; Pisek reads it as IPv4.
    pisek.expect_imported(
        "two imported routes",
        "65000:2",
        lo.ip(2),
        &[
            ("10.2.0.0/24", 200, Family::VPNV4),
            ("fd00:2::/64", 201, Family::VPNV6),
        ],
    );
    poll("all three routes in the RIB", || {
        (pisek.rt.block_on(pisek.handle().route_count()).ok()? == 3).then_some(())
    });

    gobgp.del_route(&tenant_v4);
    let gone = pisek.wait_withdrawal("a removal event");
    assert_eq!(gone.prefix.prefix.to_string(), "10.2.0.0/24");
    assert_eq!(gone.tenant, 1);
}

#[test]
fn session_survives_gobgp_restart() {
    let Some((lo, dir)) = prerequisites("gobgp restart") else {
        return;
    };
    let (mut gobgp, pisek) = gobgp_pair(&lo, &dir);
    pisek.advertise(1, "10.1.0.0/24", 100);
    gobgp.wait_paths("gobgp has the route", "vpnv4", 1);

    gobgp.kill();
    poll("Pisek notices the peer is gone", || {
        (!pisek.established()).then_some(())
    });
    gobgp.restart();
    pisek.wait_established();
    let paths = gobgp.wait_paths("gobgp has the route again", "vpnv4", 1);
    assert_eq!(paths[0].labels, vec![100]);
}

#[test]
fn gobgp_reflects_routes_between_two_pisek_speakers() {
    let Some((lo, dir)) = prerequisites("gobgp reflector") else {
        return;
    };
    let (a, b, rr) = (lo.ip(1), lo.ip(3), lo.ip(2));
    let cluster: IpAddr = "10.255.0.1".parse().unwrap();
    let _gobgp = Gobgp::start(
        &dir.path,
        rr,
        &[
            GobgpdNeighbor {
                address: a,
                rr_client: true,
                passive: false,
                peer_as: None,
            },
            GobgpdNeighbor {
                address: b,
                rr_client: true,
                passive: false,
                peer_as: None,
            },
        ],
        Some(cluster),
    );
    let pa = Pisek::start(
        speaker_config(lo.v4(1)),
        a,
        &[rr],
        vec![vrf(1, "65000:1", "65000:100")],
    );
    let mut pb = Pisek::start(
        speaker_config(lo.v4(3)),
        b,
        &[rr],
        vec![vrf(1, "65000:3", "65000:100")],
    );
    pa.wait_established();
    pb.wait_established();
    pa.advertise(1, "10.1.0.0/24", 100);

    let event = pb.wait_announcement("B learns A's route through the reflector");
    let route = event.route.expect("announcement");
    assert_eq!(event.prefix.to_string(), "65000:1:10.1.0.0/24");
    assert_eq!(route.label.value(), 100);
    assert_eq!(route.next_hop, a, "the reflector keeps the next hop");
    assert_eq!(
        route.attributes.originator_id,
        Some(lo.v4(1)),
        "ORIGINATOR_ID is A"
    );
    assert_eq!(
        route.attributes.cluster_list,
        vec!["10.255.0.1".parse::<std::net::Ipv4Addr>().unwrap()]
    );
}

#[test]
fn gobgp_keeps_pisek_routes_stale_across_a_graceful_restart() {
    let Some((lo, dir)) = prerequisites("gobgp graceful restart") else {
        return;
    };
    let (gobgp, pisek) = gobgp_pair(&lo, &dir);
    pisek.advertise(1, "10.1.0.0/24", 100);
    pisek.advertise(1, "10.1.1.0/24", 100);
    gobgp.wait_paths("gobgp has both routes", "vpnv4", 2);

    // Pisek goes away without a NOTIFICATION, as a restarting agent does.
    pisek.crash();
    let stale = poll("gobgp keeps the routes as stale", || {
        let p = gobgp.paths("vpnv4");
        (p.len() == 2 && p.iter().all(|r| r.stale)).then_some(p)
    });
    assert_eq!(stale.len(), 2);

    // It comes back restarting (R and F bits), re-advertises one route, and
    // its End-of-RIB makes gobgp drop the other.
    let pisek = Pisek::start_restarting(
        lo.v4(1),
        lo.ip(2),
        vec![vrf(1, "65000:1", "65000:100")],
        &[("10.1.0.0/24", 100)],
    );
    pisek.wait_established();
    let fresh = poll("End-of-RIB clears the stale route", || {
        let p = gobgp.paths("vpnv4");
        (p.len() == 1 && !p[0].stale).then_some(p)
    });
    assert_eq!(fresh[0].key, "65000:1:10.1.0.0/24");
}

#[test]
fn pisek_reflects_routes_between_two_gobgp_clients() {
    let Some((lo, dir)) = prerequisites("Pisek reflector") else {
        return;
    };
    let (rr, a, b) = (lo.ip(1), lo.ip(2), lo.ip(3));
    let to_rr = [GobgpdNeighbor {
        address: rr,
        rr_client: false,
        passive: false,
        peer_as: None,
    }];
    let ga = Gobgp::start(&dir.path, a, &to_rr, None);
    let gb = Gobgp::start(&dir.path, b, &to_rr, None);
    let cluster: std::net::Ipv4Addr = "10.255.0.9".parse().unwrap();
    let pisek = Pisek::start_reflector(speaker_config(lo.v4(1)), rr, &[a, b], cluster);
    pisek.wait_established();

    let a_v4 = GobgpVpnRoute {
        family: "vpnv4",
        prefix: "10.7.0.0/24",
        label: 700,
        rd: "65000:7",
        rt: "65000:100",
        next_hop: a,
    };
    let a_v6 = GobgpVpnRoute {
        family: "vpnv6",
        prefix: "fd00:7::/64",
        label: 701,
        ..a_v4
    };
    ga.add_route(&a_v4);
    ga.add_route(&a_v6);
    let nh = a.to_string();
    let v4 = poll("B learns A's VPNv4 route through Pisek", || {
        gb.paths("vpnv4").into_iter().next()
    });
    assert_eq!(v4.key, "65000:7:10.7.0.0/24");
    assert_eq!(v4.labels, vec![700]);
    assert_eq!(v4.next_hop, nh, "a reflector does not change the next hop");
    assert_eq!(v4.route_targets, vec!["65000:100".to_string()]);
    assert_eq!(
        v4.originator_id.as_deref(),
        Some(nh.as_str()),
        "ORIGINATOR_ID is A (RFC 4456 §8)"
    );
    assert_eq!(
        v4.cluster_list,
        vec![cluster.to_string()],
        "CLUSTER_LIST starts with our cluster id"
    );
    let v6 = poll("B learns A's VPNv6 route through Pisek", || {
        gb.paths("vpnv6").into_iter().next()
    });
    assert_eq!(
        (v6.labels.clone(), v6.originator_id.clone()),
        (vec![701], Some(nh.clone()))
    );
    // A does not get its own route back.
    assert!(ga.paths("vpnv4").iter().all(|p| p.originator_id.is_none()));

    ga.del_route(&a_v4);
    poll("the withdrawal is reflected", || {
        gb.paths("vpnv4").is_empty().then_some(())
    });
}

#[test]
fn pisek_keeps_gobgp_routes_while_gobgp_is_down() {
    let Some((lo, dir)) = prerequisites("gobgp helper") else {
        return;
    };
    let (mut gobgp, mut pisek) = gobgp_pair(&lo, &dir);
    gobgp.add_route(&GobgpVpnRoute {
        family: "vpnv4",
        prefix: "10.2.0.0/24",
        label: 200,
        rd: "65000:2",
        rt: "65000:100",
        next_hop: lo.ip(2),
    });
    pisek.wait_announcement("the route is learned");

    // gobgpd dies (no NOTIFICATION): Pisek, the GR helper, keeps its route.
    gobgp.kill();
    poll("Pisek notices", || (!pisek.established()).then_some(()));
    let sessions = pisek.rt.block_on(pisek.handle().sessions()).unwrap();
    assert!(sessions[0].stale, "routes kept as stale");
    assert_eq!(sessions[0].routes_received, 1);
    assert!(pisek.drain_events().is_empty(), "no route removed");

    // gobgpd comes back without the route and without preserved forwarding
    // state: the stale route goes (RFC 4724 §4.2).
    gobgp.restart();
    pisek.wait_established();
    let gone = pisek.wait_withdrawal("the stale route is removed");
    assert_eq!(gone.prefix.prefix.to_string(), "10.2.0.0/24");
}

/// gobgpd's AS in the eBGP tests: a datacenter PE in an AS of its own.
const PE_AS: u32 = 65010;

/// The AS_PATH (flattened) and LOCAL_PREF of every path of gobgp's RIB.
fn as_paths(gobgp: &Gobgp, family: &str) -> Vec<(String, Vec<u64>, Option<u64>)> {
    let rib = gobgp.rib(family);
    let mut out = Vec::new();
    for (key, paths) in rib.as_object().into_iter().flatten() {
        for p in paths.as_array().into_iter().flatten() {
            let attrs = p["attrs"].as_array().cloned().unwrap_or_default();
            let as_path = attrs
                .iter()
                .filter(|a| a["type"] == 2)
                .flat_map(|a| a["as_paths"].as_array().cloned().unwrap_or_default())
                .flat_map(|s| s["asns"].as_array().cloned().unwrap_or_default())
                .filter_map(|n| n.as_u64())
                .collect();
            let local_pref = attrs
                .iter()
                .find(|a| a["type"] == 5)
                .and_then(|a| a["value"].as_u64());
            out.push((key.clone(), as_path, local_pref));
        }
    }
    out
}

#[test]
fn over_ebgp_pisek_prepends_its_as_sets_next_hop_self_and_refuses_loops() {
    let Some((lo, dir)) = prerequisites("gobgp ebgp") else {
        return;
    };
    let gobgp = Gobgp::start_in_as(
        &dir.path,
        lo.ip(2),
        PE_AS,
        &[GobgpdNeighbor {
            address: lo.ip(1),
            rr_client: false,
            passive: false,
            peer_as: Some(AS),
        }],
    );
    let mut pisek = Pisek::start_ebgp(
        speaker_config(lo.v4(1)),
        lo.ip(1),
        lo.ip(2),
        PE_AS,
        vec![vrf(1, "65000:1", "65000:100")],
    );
    pisek.wait_established();

    // Ours at the PE: our AS first, our next hop, no LOCAL_PREF, the
    // route target kept.
    pisek.advertise(1, "10.1.0.0/24", 100);
    let v4 = gobgp.wait_paths("gobgp has the route over eBGP", "vpnv4", 1);
    assert_eq!(v4[0].key, "65000:1:10.1.0.0/24");
    assert_eq!(v4[0].next_hop, lo.ip(1).to_string());
    assert_eq!(v4[0].route_targets, vec!["65000:100".to_string()]);
    assert_eq!(
        as_paths(&gobgp, "vpnv4"),
        vec![("65000:1:10.1.0.0/24".to_string(), vec![u64::from(AS)], None)]
    );

    // The PE's route: learned, with the PE's next hop.
    gobgp.add_route(&GobgpVpnRoute {
        family: "vpnv4",
        prefix: "10.2.0.0/24",
        label: 200,
        rd: "65010:2",
        rt: "65000:100",
        next_hop: lo.ip(2),
    });
    pisek.expect_imported(
        "the PE's route over eBGP",
        "65010:2",
        lo.ip(2),
        &[("10.2.0.0/24", 200, Family::VPNV4)],
    );
    // A route whose AS_PATH holds our AS is a loop: never imported.
    gobgp.cli(&[
        "global",
        "rib",
        "-a",
        "vpnv4",
        "add",
        "10.4.0.0/24",
        "label",
        "400",
        "rd",
        "65010:4",
        "rt",
        "65000:100",
        "nexthop",
        &lo.ip(2).to_string(),
        "aspath",
        "65000",
    ]);
    gobgp.add_route(&GobgpVpnRoute {
        family: "vpnv4",
        prefix: "10.5.0.0/24",
        label: 500,
        rd: "65010:5",
        rt: "65000:100",
        next_hop: lo.ip(2),
    });
    let later = pisek_lab::poll_until("the route after the looped one", WAIT, || {
        let events = pisek.drain_events();
        (!events.is_empty()).then_some(events)
    });
    assert!(
        later
            .iter()
            .all(|e| e.prefix.prefix.to_string() != "10.4.0.0/24"),
        "the looped route was imported: {later:?}"
    );
    assert!(
        later
            .iter()
            .any(|e| e.prefix.prefix.to_string() == "10.5.0.0/24"),
        "{later:?}"
    );
    // gobgpd did send it (its Adj-RIB-Out towards us holds it): the
    // refusal is Pisek's.
    let adj_out = gobgp.cli(&["neighbor", &lo.ip(1).to_string(), "adj-out", "-a", "vpnv4"]);
    assert!(adj_out.contains("10.4.0.0/24"), "{adj_out}");
    let rib = pisek.rt.block_on(pisek.handle().rib()).expect("rib");
    assert!(
        rib.iter()
            .all(|p| p.prefix.prefix.to_string() != "10.4.0.0/24"),
        "a looped path is not even kept: {rib:?}"
    );
}
