//! Conformance fixtures: messages recorded from the real peers the speaker
//! is tested against (gobgpd 3.10.0 and BIRD 2.0.12, Debian 12), captured
//! on a raw TCP session in the interop setup, with what they must decode to.
//! Re-encoding the decoded routes must give messages that decode the same.

use std::net::{IpAddr, Ipv4Addr};

use super::capability::{Capability, GracefulRestart, GracefulRestartFamily};
use super::message::frame_len;
use super::{Family, Message, Open, Origin, RouteTarget, SessionContext, Update};

static GOBGP_OPEN: &[u8] = include_bytes!("fixtures/gobgp_open.bin");
static GOBGP_UPDATE_VPNV4: &[u8] = include_bytes!("fixtures/gobgp_update_vpnv4.bin");
static GOBGP_UPDATE_VPNV6: &[u8] = include_bytes!("fixtures/gobgp_update_vpnv6.bin");
static BIRD_OPEN: &[u8] = include_bytes!("fixtures/bird_open.bin");
static BIRD_UPDATE_VPNV4: &[u8] = include_bytes!("fixtures/bird_update_vpnv4.bin");
static BIRD_UPDATE_VPNV6: &[u8] = include_bytes!("fixtures/bird_update_vpnv6.bin");
static BIRD_END_OF_RIB_VPNV4: &[u8] = include_bytes!("fixtures/bird_end_of_rib_vpnv4.bin");

const CTX: SessionContext = SessionContext {
    four_octet_as: true,
    external: false,
};
/// gobgpd's address in the recording.
const GOBGP: Ipv4Addr = Ipv4Addr::new(127, 239, 1, 2);
/// The next hop of BIRD's static routes in the recording.
const BIRD_NEXT_HOP: Ipv4Addr = Ipv4Addr::new(198, 19, 200, 3);

fn open(bytes: &[u8]) -> Open {
    match Message::decode(bytes, &CTX) {
        Ok(Message::Open(o)) => o,
        other => panic!("not an OPEN: {other:?}"),
    }
}

/// The Graceful Restart capability an OPEN offers (RFC 4724 §3).
fn graceful_restart(open: &Open) -> &GracefulRestart {
    open.capabilities
        .iter()
        .find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr),
            _ => None,
        })
        .expect("graceful restart")
}

fn update(bytes: &[u8]) -> Update {
    match Message::decode(bytes, &CTX) {
        Ok(Message::Update(u)) => *u,
        other => panic!("not an UPDATE: {other:?}"),
    }
}

/// One route of an UPDATE as text: "RD:prefix label next-hop".
fn routes(u: &Update) -> Vec<String> {
    let nh = u
        .attributes
        .next_hop
        .map(|a| a.to_string())
        .unwrap_or_default();
    u.announced
        .iter()
        .map(|n| format!("{} {} {nh}", n.prefix, n.label.value()))
        .collect()
}

fn targets(u: &Update) -> Vec<String> {
    u.attributes
        .ext_communities
        .iter()
        .filter_map(|c| RouteTarget::from_ext_community(*c))
        .map(|rt| rt.to_string())
        .collect()
}

/// Encodes the decoded UPDATE again and decodes the result.
fn re_encoded(u: &Update) -> Update {
    let mut bytes = Vec::new();
    Message::Update(Box::new(u.clone())).encode(&CTX, &mut bytes);
    assert_eq!(frame_len(&bytes), Ok(Some(bytes.len())), "one message");
    update(&bytes)
}

#[test]
fn gobgp_open_offers_the_vpn_families_and_graceful_restart() {
    let open = open(GOBGP_OPEN);
    assert_eq!((open.asn(), open.hold_time, open.bgp_id), (65000, 9, GOBGP));
    let caps = &open.capabilities;
    assert!(caps.contains(&Capability::Multiprotocol(Family::VPNV4)));
    assert!(caps.contains(&Capability::Multiprotocol(Family::VPNV6)));
    assert!(caps.contains(&Capability::RouteRefresh));
    assert!(caps.contains(&Capability::FourOctetAs(65000)));
    let gr = graceful_restart(&open);
    assert_eq!(gr.restart_time, 120);
    assert!(gr.families.iter().any(|f| f.family == Family::VPNV4));
    // gobgp's FQDN capability (73) is kept as unknown and ignored.
    assert!(
        caps.iter()
            .any(|c| matches!(c, Capability::Unknown { code: 73, .. }))
    );
}

#[test]
fn gobgp_vpnv4_update_decodes_exactly() {
    let u = update(GOBGP_UPDATE_VPNV4);
    assert_eq!(u.treat_as_withdraw, None);
    assert_eq!(routes(&u), ["65000:2:10.2.0.0/24 200 127.239.1.2"]);
    assert_eq!(targets(&u), ["65000:100"]);
    // `gobgp global rib add` originates with ORIGIN incomplete.
    assert_eq!(
        (u.attributes.origin, u.attributes.local_pref),
        (Origin::Incomplete, Some(100))
    );
    assert!(u.attributes.as_path.is_empty());
    assert_eq!(re_encoded(&u), u);
}

#[test]
fn gobgp_vpnv6_update_has_an_ipv4_mapped_next_hop() {
    let u = update(GOBGP_UPDATE_VPNV6);
    // RD type 1 (IPv4 administrator), and the 24-octet RD + ::ffff:a.b.c.d
    // next hop read back as IPv4 (RFC 4659 §3.2.1.2).
    assert_eq!(routes(&u), ["10.0.0.1:2:fd00:2::/64 201 127.239.1.2"]);
    assert_eq!(u.attributes.next_hop, Some(IpAddr::V4(GOBGP)));
    assert_eq!(re_encoded(&u), u);
}

#[test]
fn bird_open_offers_the_vpn_families() {
    let open = open(BIRD_OPEN);
    assert_eq!((open.asn(), open.hold_time), (65000, 9));
    let caps = &open.capabilities;
    assert!(caps.contains(&Capability::Multiprotocol(Family::VPNV4)));
    assert!(caps.contains(&Capability::Multiprotocol(Family::VPNV6)));
    let gr = graceful_restart(&open);
    assert_eq!(
        gr.families,
        [
            GracefulRestartFamily {
                family: Family::VPNV4,
                forwarding_preserved: false
            },
            GracefulRestartFamily {
                family: Family::VPNV6,
                forwarding_preserved: false
            }
        ]
    );
    // Enhanced route refresh (70) and long-lived GR (71): unknown, ignored.
    assert!(
        caps.iter()
            .any(|c| matches!(c, Capability::Unknown { code: 70, .. }))
    );
}

#[test]
fn bird_vpnv4_update_decodes_exactly() {
    let u = update(BIRD_UPDATE_VPNV4);
    assert_eq!(routes(&u), ["65000:2:10.2.0.0/24 200 198.19.200.3"]);
    assert_eq!(targets(&u), ["65000:100"]);
    assert_eq!(u.attributes.origin, Origin::Igp);
    assert_eq!(re_encoded(&u), u);
}

#[test]
fn bird_vpnv6_update_with_a_four_octet_as_rd() {
    let u = update(BIRD_UPDATE_VPNV6);
    // RD type 2 (4-octet AS), and BIRD's IPv4 next hop for VPNv6 is
    // IPv4-mapped too.
    assert_eq!(routes(&u), ["4200000000:2:fd00:2::/64 201 198.19.200.3"]);
    assert_eq!(u.attributes.next_hop, Some(IpAddr::V4(BIRD_NEXT_HOP)));
    assert_eq!(re_encoded(&u), u);
}

#[test]
fn bird_end_of_rib_is_recognised() {
    assert_eq!(
        update(BIRD_END_OF_RIB_VPNV4).end_of_rib,
        Some(Family::VPNV4)
    );
}
