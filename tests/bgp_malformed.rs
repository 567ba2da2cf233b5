//! Malformed input over a real TCP session: every broken message gets the
//! NOTIFICATION RFC 4271 §6 (or RFC 7313) names, or RFC 7606's
//! treat-as-withdraw, and the speaker never panics. A raw peer listens on a
//! loopback address, Pisek connects to it, and the test writes bytes.
use std::net::{Ipv4Addr, TcpListener};

use pisek_lab::bgp_speaker::*;
use pisek_lab::raw_peer::*;
use pisek_overlay::bgp::packet::{
    Message, Origin, PathAttributes, SessionContext, UpdateEncoder, VpnNlri, VpnPrefix,
};
use pisek_overlay::packet::Label;

/// Pisek on .1 of a fresh loopback /24, configured to peer with .2 where the
/// raw peer listens.
struct Setup {
    lo: Loopback,
    pisek: Pisek,
    listener: TcpListener,
}

impl Setup {
    fn new() -> Setup {
        let lo = Loopback::new();
        let listener = TcpListener::bind((lo.v4(2), 179)).expect("bind raw peer");
        let pisek = Pisek::start(
            speaker_config(lo.v4(1)),
            lo.ip(1),
            &[lo.ip(2)],
            vec![vrf(1, "65000:1", "65000:100")],
        );
        Setup {
            lo,
            pisek,
            listener,
        }
    }

    /// A setup for one test; `None` (skip) outside CI when not root.
    fn prerequisites(test: &str) -> Option<Setup> {
        pisek_lab::require(test, &[]).then(Setup::new)
    }

    fn peer(&self) -> RawPeer {
        RawPeer::accept(&self.listener)
    }

    fn established_peer(&self) -> RawPeer {
        let mut p = self.peer();
        p.establish(self.lo.v4(2));
        self.pisek.wait_established();
        p
    }

    /// Sends each message on a fresh established session and checks the
    /// NOTIFICATION (code, subcode) it gets, and that the speaker lives on.
    fn expect_notifications(&self, cases: Vec<(&str, Vec<u8>, (u8, u8))>) {
        for (what, bytes, expected) in cases {
            let mut p = self.established_peer();
            p.send(&bytes);
            let (code, subcode, _) = p.expect_notification();
            assert_eq!((code, subcode), expected, "{what}");
            self.assert_alive();
        }
    }

    /// The speaker still answers: it did not panic.
    fn assert_alive(&self) {
        assert!(
            self.pisek
                .rt
                .block_on(self.pisek.handle().sessions())
                .is_ok(),
            "speaker task is alive"
        );
    }
}

fn header(len: u16, kind: u8) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&len.to_be_bytes());
    m.push(kind);
    m
}

/// Writes the message's length into its header (RFC 4271 §4.1).
fn set_length(m: &mut [u8]) {
    let len = m.len() as u16;
    m[16..18].copy_from_slice(&len.to_be_bytes());
}

/// An UPDATE with no withdrawn routes and no NLRI field, only the path
/// attributes `attrs` (raw bytes, possibly broken).
fn update_with_attributes(attrs: &[u8]) -> Vec<u8> {
    let mut m = header(0, 2);
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(attrs);
    set_length(&mut m);
    m
}

fn route_update(prefix: &str, label: u32, attrs: &PathAttributes) -> Vec<u8> {
    let nlri = VpnNlri {
        prefix: VpnPrefix::new("65000:2".parse().unwrap(), prefix.parse().unwrap()),
        label: Label::new(label).unwrap(),
    };
    let mut enc = UpdateEncoder::new(SessionContext {
        four_octet_as: true,
        external: false,
    });
    let mut out = Vec::new();
    enc.announce(attrs, attrs.next_hop.unwrap(), &nlri, &mut out);
    enc.flush(&mut out);
    out
}

fn good_attrs() -> PathAttributes {
    PathAttributes {
        origin: Origin::Igp,
        local_pref: Some(100),
        next_hop: Some("192.0.2.7".parse().unwrap()),
        ext_communities: vec![
            "65000:100"
                .parse::<pisek_overlay::bgp::packet::RouteTarget>()
                .unwrap()
                .0,
        ],
        ..PathAttributes::default()
    }
}

#[test]
fn malformed_headers_get_message_header_errors() {
    let Some(s) = Setup::prerequisites("malformed headers") else {
        return;
    };
    let cases: Vec<(&str, Vec<u8>, (u8, u8))> = vec![
        (
            "bad marker",
            {
                let mut m = KEEPALIVE.to_vec();
                m[5] = 0;
                m
            },
            (1, 1),
        ),
        ("length below 19", header(18, 4), (1, 2)),
        ("length above 4096", header(4097, 4), (1, 2)),
        (
            "KEEPALIVE with a body",
            {
                let mut m = header(20, 4);
                m.push(0);
                m
            },
            (1, 2),
        ),
        ("unknown type", header(19, 9), (1, 3)),
    ];
    s.expect_notifications(cases);
    // A bad length is reported with the length as data (§6.1).
    let mut p = s.established_peer();
    p.send(&header(4097, 4));
    assert_eq!(p.expect_notification().2, 4097u16.to_be_bytes().to_vec());
}

#[test]
fn bad_opens_get_open_message_errors() {
    let Some(s) = Setup::prerequisites("bad opens") else {
        return;
    };
    let id = s.lo.v4(2);
    let version3 = {
        let mut m = raw_open(id, AS, 9, &[]);
        m[19] = 3;
        m
    };
    let auth_param = {
        // Optional parameter type 1 (deprecated authentication).
        let mut m = raw_open(id, AS, 9, &[]);
        m.extend_from_slice(&[1, 1, 0]);
        m[28] += 3;
        set_length(&mut m);
        m
    };
    let no_vpn = {
        use pisek_overlay::bgp::packet::{Capability, Family, Open};
        let open = Open {
            my_as: 65000,
            hold_time: 9,
            bgp_id: id,
            capabilities: vec![
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::FourOctetAs(AS),
            ],
        };
        let mut out = Vec::new();
        Message::Open(open).encode(&SessionContext::default(), &mut out);
        out
    };
    let cases: Vec<(&str, Vec<u8>, (u8, u8))> = vec![
        ("version 3", version3, (2, 1)),
        ("eBGP AS", raw_open(id, 65001, 9, &[]), (2, 2)),
        (
            "our own router id",
            raw_open(s.lo.v4(1), AS, 9, &[]),
            (2, 3),
        ),
        (
            "zero router id",
            raw_open(Ipv4Addr::UNSPECIFIED, AS, 9, &[]),
            (2, 3),
        ),
        ("authentication parameter", auth_param, (2, 4)),
        ("hold time 2", raw_open(id, AS, 2, &[]), (2, 6)),
        ("no VPN family", no_vpn, (2, 7)),
        (
            "capability overruns its parameter",
            raw_open(id, AS, 9, &[70, 9, 0]),
            (2, 4),
        ),
    ];
    for (what, bytes, expected) in cases {
        let mut p = s.peer();
        p.exchange_open(&bytes);
        let (code, subcode, data) = p.expect_notification();
        assert_eq!((code, subcode), expected, "{what}");
        if expected == (2, 1) {
            assert_eq!(data, vec![0, 4], "version error names version 4");
        }
        s.assert_alive();
    }
}

#[test]
fn unknown_capabilities_are_ignored() {
    let Some(s) = Setup::prerequisites("unknown capabilities") else {
        return;
    };
    let mut p = s.peer();
    // Capability 200 (unassigned) and 73 (FQDN) with junk: RFC 5492 §3 says ignore.
    p.exchange_open(&raw_open(
        s.lo.v4(2),
        AS,
        9,
        &[200, 3, 1, 2, 3, 73, 2, 0xaa, 0xbb],
    ));
    let ka = p.read_message().expect("a reply");
    assert_eq!(ka[18], 4, "KEEPALIVE, not a NOTIFICATION");
    p.send(&KEEPALIVE);
    s.pisek.wait_established();
}

#[test]
fn malformed_updates_get_update_message_errors() {
    let Some(s) = Setup::prerequisites("malformed updates") else {
        return;
    };
    let good = route_update("10.9.0.0/24", 900, &good_attrs());
    let overrun = {
        // Total path attribute length one larger than the attributes.
        let mut m = good.clone();
        m[22] += 1;
        m
    };
    let withdrawn_overrun = {
        let mut m = header(23, 2);
        m.extend_from_slice(&[0, 9, 0, 0]);
        m
    };
    let unknown_well_known = update_with_attributes(&[0x40, 99, 0]);
    // MP_REACH_NLRI for VPNv4 with a 5-octet next hop.
    let bad_mp_next_hop = update_with_attributes(&[0x80, 14, 10, 0, 1, 128, 5, 1, 2, 3, 4, 5, 0]);
    let bad_nlri = {
        // A VPNv4 NLRI claiming /33.
        let mut attr = vec![
            0x80, 14, 0, 0, 1, 128, 12, 0, 0, 0, 0, 0, 0, 0, 0, 192, 0, 2, 1, 0,
        ];
        attr.extend_from_slice(&[88 + 33, 0, 0, 0x11, 0, 0, 0, 0, 0, 0, 0, 1, 10, 0, 0, 0, 0]);
        attr[2] = (attr.len() - 3) as u8;
        update_with_attributes(&attr)
    };
    let bad_refresh = {
        let mut m = header(24, 5);
        m.extend_from_slice(&[0, 1, 0, 128, 0]);
        m
    };
    let cases: Vec<(&str, Vec<u8>, (u8, u8))> = vec![
        ("attribute length overruns", overrun, (3, 1)),
        ("withdrawn length overruns", withdrawn_overrun, (3, 1)),
        ("unknown well-known attribute", unknown_well_known, (3, 2)),
        ("MP_REACH next hop length", bad_mp_next_hop, (3, 9)),
        ("prefix longer than the family", bad_nlri, (3, 10)),
        ("ROUTE-REFRESH of 24 octets", bad_refresh, (7, 1)),
        (
            "OPEN on an established session",
            raw_open(s.lo.v4(2), AS, 9, &[]),
            (5, 3),
        ),
    ];
    s.expect_notifications(cases);
}

#[test]
fn update_before_open_is_a_state_machine_error() {
    let Some(s) = Setup::prerequisites("update before open") else {
        return;
    };
    let mut p = s.peer();
    assert_eq!(p.read_message().expect("OPEN")[18], 1);
    p.send(&route_update("10.9.0.0/24", 900, &good_attrs()));
    let (code, subcode, _) = p.expect_notification();
    assert_eq!((code, subcode), (5, 1));
}

#[test]
fn bad_attribute_values_are_treated_as_withdraw() {
    let Some(mut s) = Setup::prerequisites("treat as withdraw") else {
        return;
    };
    let mut p = s.established_peer();
    p.send(&route_update("10.9.0.0/24", 900, &good_attrs()));
    let learned = s.pisek.wait_announcement("the route is learned");
    assert_eq!(learned.route.unwrap().label.value(), 900);

    // The same route again with ORIGIN 7 (RFC 7606 §7.1): withdrawn, the
    // session stays up.
    let mut bad = route_update("10.9.0.0/24", 900, &good_attrs());
    let origin_at = bad
        .windows(3)
        .position(|w| w == [0x40, 1, 1])
        .expect("ORIGIN attribute")
        + 3;
    bad[origin_at] = 7;
    p.send(&bad);
    let gone = s.pisek.wait_withdrawal("the route is withdrawn");
    assert_eq!(gone.prefix.prefix.to_string(), "10.9.0.0/24");
    assert!(s.pisek.established(), "no session reset for a bad ORIGIN");
    p.send(&KEEPALIVE);

    // LOCAL_PREF of the wrong length (§7.5) is treat-as-withdraw too.
    p.send(&route_update("10.9.1.0/24", 901, &good_attrs()));
    s.pisek.wait_announcement("second route learned");
    let mut bad = route_update("10.9.1.0/24", 901, &good_attrs());
    let lp_at = bad
        .windows(3)
        .position(|w| w == [0x40, 5, 4])
        .expect("LOCAL_PREF");
    bad[lp_at + 2] = 3;
    bad.remove(lp_at + 3);
    let fix = |m: &mut Vec<u8>| {
        set_length(m);
        let attrs = u16::from_be_bytes([m[21], m[22]]) - 1;
        m[21..23].copy_from_slice(&attrs.to_be_bytes());
    };
    fix(&mut bad);
    p.send(&bad);
    s.pisek.wait_withdrawal("second route withdrawn");
    assert!(s.pisek.established());
}

#[test]
fn garbage_over_tcp_gets_a_notification_and_no_panic() {
    let Some(s) = Setup::prerequisites("garbage") else {
        return;
    };
    // A deterministic xorshift stream of bytes.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..5 {
        let mut p = s.established_peer();
        let junk: Vec<u8> = (0..2000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        p.send(&junk);
        let (code, subcode, _) = p.expect_notification();
        assert_eq!(
            (code, subcode),
            (1, 1),
            "round {round}: garbage is not synchronized"
        );
        s.assert_alive();
    }
}
