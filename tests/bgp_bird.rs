//! Interop with BIRD 2 (Debian `bird2`): BIRD runs in a namespace of its
//! own behind a veth, Pisek in the test; `birdc show route all` shows
//! exactly what arrived, and BIRD's static VPN routes are what Pisek learns.
use std::net::IpAddr;

use pisek_lab::bgp_speaker::*;
use pisek_lab::bird::*;
use pisek_overlay::bgp::packet::Family;

fn poll<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    pisek_lab::poll_until(what, WAIT, check)
}

const STATIC4: &str =
    "route 65000:2 10.2.0.0/24 via GW mpls 200 { bgp_ext_community.add((rt, 65000, 100)); };";
const STATIC6: &str =
    "route 65000:2 fd00:2::/64 via GW mpls 201 { bgp_ext_community.add((rt, 65000, 100)); };";

/// A directory for one test; `None` (skip) outside CI when BIRD is not
/// installed.
fn prerequisites(test: &str) -> Option<pisek_lab::TempDir> {
    pisek_lab::require(test, &["bird", "birdc"]).then(|| pisek_lab::TempDir::new("bird"))
}

fn bird_pair(dir: &pisek_lab::TempDir, with_statics: bool) -> (Bird, Pisek) {
    let (s4, s6) = if with_statics {
        (vec![STATIC4.to_string()], vec![STATIC6.to_string()])
    } else {
        (Vec::new(), Vec::new())
    };
    let bird = Bird::start(&dir.path, &s4, &s6);
    let pisek = Pisek::start(
        speaker_config(bird.pisek),
        bird.pisek.into(),
        &[bird.addr.into()],
        vec![vrf(1, "65000:1", "65000:100")],
    );
    pisek.wait_established();
    (bird, pisek)
}

/// The route block BIRD shows for `key` ("RD prefix") learned from Pisek.
fn learned_block(bird: &Bird, table: &str, key: &str) -> Option<String> {
    bird.routes(table)
        .into_iter()
        .find(|b| b.starts_with(key) && b.contains("[pisek"))
}

#[test]
fn bird_shows_the_rd_label_targets_and_next_hop_pisek_advertises() {
    let Some(dir) = prerequisites("bird advertise") else {
        return;
    };
    let (bird, pisek) = bird_pair(&dir, false);
    pisek.advertise(1, "10.1.0.0/24", 100);
    pisek.advertise(1, "fd00:1::/64", 101);

    let nh = bird.pisek.to_string();
    for (table, key, label) in [
        ("vpntab4", "65000:1 10.1.0.0/24 ", 100),
        ("vpntab6", "65000:1 fd00:1::/64 ", 101),
    ] {
        let block = poll(&format!("BIRD learns {key}"), || {
            learned_block(&bird, table, key)
        });
        // Reachable (not "unreachable"), through Pisek's address, with our label.
        assert!(block.contains(" unicast "), "{block}");
        assert!(block.contains(&format!("BGP.next_hop: {nh}\n")), "{block}");
        assert!(
            block.contains(&format!("via {nh} on eth0 mpls {label}\n")),
            "{block}"
        );
        assert!(
            block.contains("BGP.ext_community: (rt, 65000, 100)"),
            "{block}"
        );
        assert!(
            block.ends_with(&format!("BGP.mpls_label_stack: {label}")),
            "{block}"
        );
        assert!(block.contains("BGP.local_pref: 100"), "{block}");
    }

    pisek.withdraw(1, "10.1.0.0/24");
    poll("BIRD drops the withdrawn route", || {
        learned_block(&bird, "vpntab4", "65000:1 10.1.0.0/24 ")
            .is_none()
            .then_some(())
    });
    assert!(learned_block(&bird, "vpntab6", "65000:1 fd00:1::/64 ").is_some());
}

#[test]
fn pisek_learns_and_forgets_routes_bird_originates() {
    let Some(dir) = prerequisites("bird learn") else {
        return;
    };
    let (bird, mut pisek) = bird_pair(&dir, true);
    pisek.expect_imported(
        "both BIRD routes imported",
        "65000:2",
        IpAddr::V4(bird.gateway),
        &[
            ("10.2.0.0/24", 200, Family::VPNV4),
            ("fd00:2::/64", 201, Family::VPNV6),
        ],
    );

    bird.cli(&["disable", "static_vpn4"]);
    let gone = pisek.wait_withdrawal("the VPNv4 route is withdrawn");
    assert_eq!(gone.prefix.prefix.to_string(), "10.2.0.0/24");
}

#[test]
fn session_survives_bird_restart() {
    let Some(dir) = prerequisites("bird restart") else {
        return;
    };
    let (mut bird, pisek) = bird_pair(&dir, false);
    pisek.advertise(1, "10.1.0.0/24", 100);
    poll("BIRD has the route", || {
        learned_block(&bird, "vpntab4", "65000:1 10.1.0.0/24 ")
    });

    bird.kill();
    poll("Pisek notices BIRD is gone", || {
        (!pisek.established()).then_some(())
    });
    bird.restart();
    pisek.wait_established();
    let block = poll("BIRD has the route again", || {
        learned_block(&bird, "vpntab4", "65000:1 10.1.0.0/24 ")
    });
    assert!(block.ends_with("BGP.mpls_label_stack: 100"), "{block}");
}

#[test]
fn bird_keeps_pisek_routes_stale_across_a_graceful_restart() {
    let Some(dir) = prerequisites("bird graceful restart") else {
        return;
    };
    let (bird, pisek) = bird_pair(&dir, false);
    pisek.advertise(1, "10.1.0.0/24", 100);
    pisek.advertise(1, "10.1.1.0/24", 100);
    poll("BIRD has both routes", || {
        learned_block(&bird, "vpntab4", "65000:1 10.1.1.0/24 ")
    });

    pisek.crash();
    // BIRD, as the helper, keeps both routes while the session is down.
    poll("BIRD notices Pisek is gone", || {
        (!bird.established()).then_some(())
    });
    assert!(learned_block(&bird, "vpntab4", "65000:1 10.1.0.0/24 ").is_some());
    assert!(learned_block(&bird, "vpntab4", "65000:1 10.1.1.0/24 ").is_some());

    // Pisek comes back restarting, re-advertises one route; its End-of-RIB
    // makes BIRD drop the other.
    let pisek = Pisek::start_restarting(
        bird.pisek,
        bird.addr.into(),
        vec![vrf(1, "65000:1", "65000:100")],
        &[("10.1.0.0/24", 100)],
    );
    pisek.wait_established();
    poll("End-of-RIB clears the stale route", || {
        learned_block(&bird, "vpntab4", "65000:1 10.1.1.0/24 ")
            .is_none()
            .then_some(())
    });
    assert!(learned_block(&bird, "vpntab4", "65000:1 10.1.0.0/24 ").is_some());
}

#[test]
fn over_ebgp_bird_sees_our_as_and_next_hop_and_we_take_its_routes() {
    let Some(dir) = prerequisites("bird ebgp") else {
        return;
    };
    const BIRD_AS: u32 = 65020;
    let statics = |s: &str| vec![s.replace("65000:2", "65020:2")];
    let bird = Bird::start_in_as(&dir.path, &statics(STATIC4), &statics(STATIC6), BIRD_AS);
    let mut pisek = Pisek::start_ebgp(
        speaker_config(bird.pisek),
        bird.pisek.into(),
        bird.addr.into(),
        BIRD_AS,
        vec![vrf(1, "65000:1", "65000:100")],
    );
    pisek.wait_established();
    pisek.advertise(1, "10.1.0.0/24", 100);
    let nh = bird.pisek.to_string();
    let block = poll("BIRD learns our route over eBGP", || {
        learned_block(&bird, "vpntab4", "65000:1 10.1.0.0/24 ")
    });
    assert!(block.contains("BGP.as_path: 65000\n"), "{block}");
    assert!(block.contains(&format!("BGP.next_hop: {nh}\n")), "{block}");
    assert!(
        block.contains("BGP.ext_community: (rt, 65000, 100)"),
        "{block}"
    );
    // BIRD's routes: their next hop is on the link both share, so BIRD
    // passes it on unchanged (a third-party next hop, RFC 4271 §5.1.3).
    pisek.expect_imported(
        "both BIRD routes imported over eBGP",
        "65020:2",
        IpAddr::V4(bird.gateway),
        &[
            ("10.2.0.0/24", 200, Family::VPNV4),
            ("fd00:2::/64", 201, Family::VPNV6),
        ],
    );
}
