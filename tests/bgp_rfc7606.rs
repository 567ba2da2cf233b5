//! RFC 7606 over a real TCP session: one row per (path attribute, fault)
//! with the action the RFCs prescribe, checked by what the speaker does.
//!
//! A raw peer listens on a loopback address, Pisek connects to it, and the
//! test writes crafted UPDATEs. Each row first announces a good VPNv4 route
//! (label L), then the same prefix again with label L+1 and the fault, and
//! looks at the route's fate and at the session:
//!
//! | action            | route's fate                             | session                   |
//! |-------------------|------------------------------------------|---------------------------|
//! | accept            | installed (label L+1) with the attribute | stays Established         |
//! | attribute discard | installed (label L+1) without it         | stays Established         |
//! | treat-as-withdraw | withdrawn, out of the RIB                | stays Established         |
//! | session reset     | withdrawn (the session went)             | NOTIFICATION code/subcode |
//!
//! The expected action of each row comes from the RFC section named in the
//! row (RFC 7606 §3, §4, §5.2, §7; RFC 8092 §6; RFC 6793 §4.1, §6; RFC 4271
//! §6.3); `docs/bgp.md` has the same table.
use std::net::{Ipv4Addr, TcpListener};

use pisek_lab::bgp_speaker::*;
use pisek_lab::raw_peer::*;
use pisek_overlay::bgp::packet::{PathAttributes, SessionContext};
use pisek_overlay::bgp::speaker::RouteEvent;

/// Attribute type codes the rows use (IANA "BGP Path Attributes").
mod ty {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MED: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const ORIGINATOR_ID: u8 = 9;
    pub const CLUSTER_LIST: u8 = 10;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
    pub const LARGE_COMMUNITY: u8 = 32;
}

/// Flag octets (RFC 4271 §4.3): well-known, optional, optional transitive.
const WK: u8 = 0x40;
const OPT: u8 = 0x80;
const OPT_TR: u8 = 0xc0;

/// What the RFCs say the speaker must do with a row's UPDATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// No error: the route is installed and carries the attribute.
    Accept(u8),
    /// RFC 7606 §2 attribute discard: the route is installed without it.
    AttributeDiscard(u8),
    /// RFC 7606 §2 treat-as-withdraw: the route goes, the session stays.
    TreatAsWithdraw,
    /// RFC 7606 §2 session reset: a NOTIFICATION (code, subcode).
    SessionReset(u8, u8),
}

/// How a row changes the good UPDATE's attribute section.
#[derive(Debug, Clone)]
enum Edit {
    /// Puts this whole attribute in place of the one of its type (or adds it).
    Set(Vec<u8>),
    /// Appends these octets after every other attribute.
    Append(Vec<u8>),
    /// Removes the attribute of this type.
    Remove(u8),
    /// MP_REACH_NLRI's next hop field (RD + address) instead of RD 0 + 192.0.2.7.
    ReachNextHop(Vec<u8>),
}

/// One row: what is broken, the edits that break it, and the expected action.
struct Row {
    what: &'static str,
    edits: Vec<Edit>,
    action: Action,
}

fn row(what: &'static str, edits: Vec<Edit>, action: Action) -> Row {
    Row {
        what,
        edits,
        action,
    }
}

/// One attribute: flags, type, length (one octet, or two with Extended
/// Length when the flags ask for it), value.
fn attr(flags: u8, type_code: u8, value: &[u8]) -> Vec<u8> {
    let mut a = vec![flags, type_code];
    if flags & 0x10 != 0 {
        a.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        a.push(value.len() as u8);
    }
    a.extend_from_slice(value);
    a
}

/// Route distinguisher 65000:2 (type 0), RFC 4364 §4.2.
const RD: [u8; 8] = [0, 0, 0xfd, 0xe8, 0, 0, 0, 2];
/// Route target 65000:100, the one tenant 1 imports (RFC 4360 §4).
const RT: [u8; 8] = [0, 2, 0xfd, 0xe8, 0, 0, 0, 100];

/// An MP_REACH_NLRI value without NLRI: AFI 1, SAFI 128, next hop RD 0 +
/// 192.0.2.7, the reserved octet (RFC 4760 §3).
const REACH_HEAD: [u8; 17] = [0, 1, 128, 12, 0, 0, 0, 0, 0, 0, 0, 0, 192, 0, 2, 7, 0];

/// The labeled VPNv4 NLRI 65000:2:10.9.<n>.0/24 (RFC 8277 §2).
fn nlri(n: u8, label: u32) -> Vec<u8> {
    let l = (label << 4) | 1; // bottom of stack
    let mut v = vec![24 + 64 + 24, (l >> 16) as u8, (l >> 8) as u8, l as u8];
    v.extend_from_slice(&RD);
    v.extend_from_slice(&[10, 9, n]);
    v
}

fn prefix(n: u8) -> String {
    format!("10.9.{n}.0/24")
}

/// The next hop field of a VPNv4 MP_REACH_NLRI: RD 0 + IPv4 (RFC 4364 §4.3.2).
fn vpn_next_hop(ip: Ipv4Addr) -> Vec<u8> {
    let mut v = vec![0; 8];
    v.extend_from_slice(&ip.octets());
    v
}

/// A whole UPDATE for route `n` with `label`: MP_REACH_NLRI first (RFC 7606
/// §5.1), then ORIGIN IGP, an empty AS_PATH, LOCAL_PREF 100 and the route
/// target; then `edits`.
fn update(n: u8, label: u32, edits: &[Edit]) -> Vec<u8> {
    let mut next_hop = vpn_next_hop(Ipv4Addr::new(192, 0, 2, 7));
    for e in edits {
        if let Edit::ReachNextHop(nh) = e {
            next_hop = nh.clone();
        }
    }
    let mut reach = vec![0, 1, 128, next_hop.len() as u8];
    reach.extend_from_slice(&next_hop);
    reach.push(0);
    reach.extend_from_slice(&nlri(n, label));
    let mut attrs: Vec<Vec<u8>> = vec![
        attr(OPT, ty::MP_REACH_NLRI, &reach),
        attr(WK, ty::ORIGIN, &[0]),
        attr(WK, ty::AS_PATH, &[]),
        attr(WK, ty::LOCAL_PREF, &100u32.to_be_bytes()),
        attr(OPT_TR, ty::EXTENDED_COMMUNITIES, &RT),
    ];
    let mut tail = Vec::new();
    for e in edits {
        match e {
            Edit::Set(a) => match attrs.iter_mut().find(|x| x[1] == a[1]) {
                Some(x) => *x = a.clone(),
                None => attrs.push(a.clone()),
            },
            Edit::Append(bytes) => tail.extend_from_slice(bytes),
            Edit::Remove(t) => attrs.retain(|x| x[1] != *t),
            Edit::ReachNextHop(_) => {}
        }
    }
    let mut section: Vec<u8> = attrs.concat();
    section.extend_from_slice(&tail);
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&[0, 0, 2, 0, 0]);
    m.extend_from_slice(&(section.len() as u16).to_be_bytes());
    m.extend_from_slice(&section);
    let len = m.len() as u16;
    m[16..18].copy_from_slice(&len.to_be_bytes());
    m
}

/// True when the route's attributes, encoded as Pisek would send them on,
/// hold an attribute of `type_code`.
fn carries(attrs: &PathAttributes, type_code: u8) -> bool {
    let mut out = Vec::new();
    attrs.emit(
        &SessionContext {
            four_octet_as: true,
            external: false,
        },
        &mut out,
    );
    let mut rest = out.as_slice();
    while let [flags, t, tail @ ..] = rest {
        if *t == type_code {
            return true;
        }
        let (header, len) = match (flags & 0x10 != 0, tail) {
            (true, [a, b, ..]) => (4, usize::from(u16::from_be_bytes([*a, *b]))),
            (false, [a, ..]) => (3, usize::from(*a)),
            _ => return false,
        };
        rest = rest.get(header + len..).unwrap_or(&[]);
    }
    false
}

/// Rows that keep the session up (RFC 7606 §2 treat-as-withdraw and
/// attribute discard, and faults that are none).
#[rustfmt::skip]
fn session_keeping_rows(pisek: Ipv4Addr) -> Vec<Row> {
    use Action::*;
    use Edit::*;
    let taw = TreatAsWithdraw;
    vec![
        // ORIGIN: RFC 7606 §7.1, flags §3(c), missing §3(d).
        row("ORIGIN value 7", vec![Set(attr(WK, ty::ORIGIN, &[7]))], taw),
        row("ORIGIN length 2", vec![Set(attr(WK, ty::ORIGIN, &[0, 0]))], taw),
        row("ORIGIN flags optional", vec![Set(attr(OPT_TR, ty::ORIGIN, &[0]))], taw),
        row("ORIGIN missing", vec![Remove(ty::ORIGIN)], taw),
        // AS_PATH: RFC 7606 §7.2, flags §3(c), missing §3(d).
        row("AS_PATH segment type 9", vec![Set(attr(WK, ty::AS_PATH, &[9, 1, 0, 0, 0, 1]))], taw),
        row("AS_PATH segment of 0 ASes", vec![Set(attr(WK, ty::AS_PATH, &[2, 0]))], taw),
        row("AS_PATH segment overrun", vec![Set(attr(WK, ty::AS_PATH, &[2, 2, 0, 0, 0, 1]))], taw),
        row("AS_PATH one octet left", vec![Set(attr(WK, ty::AS_PATH, &[2, 1, 0, 0, 0, 1, 2]))], taw),
        row("AS_PATH flags optional", vec![Set(attr(OPT_TR, ty::AS_PATH, &[]))], taw),
        row("AS_PATH missing", vec![Remove(ty::AS_PATH)], taw),
        // NEXT_HOP: RFC 7606 §7.3, flags §3(c).
        row("NEXT_HOP length 5", vec![Set(attr(WK, ty::NEXT_HOP, &[192, 0, 2, 7, 0]))], taw),
        row("NEXT_HOP flags optional", vec![Set(attr(OPT, ty::NEXT_HOP, &[192, 0, 2, 7]))], taw),
        // MP_REACH_NLRI next hop semantics (RFC 4271 §6.3: the route is
        // ignored, no NOTIFICATION; the NLRI is located, so the routes go).
        row("MP_REACH next hop 0.0.0.0", vec![ReachNextHop(vpn_next_hop(Ipv4Addr::UNSPECIFIED))], taw),
        row("MP_REACH next hop multicast", vec![ReachNextHop(vpn_next_hop(Ipv4Addr::new(224, 0, 0, 1)))], taw),
        row("MP_REACH next hop is the receiver", vec![ReachNextHop(vpn_next_hop(pisek))], taw),
        // MED: RFC 7606 §7.4, flags §3(c).
        row("MED length 3", vec![Set(attr(OPT, ty::MED, &[0, 0, 5]))], taw),
        row("MED flags well-known", vec![Set(attr(WK, ty::MED, &[0, 0, 0, 5]))], taw),
        // LOCAL_PREF (internal neighbour): RFC 7606 §7.5, flags §3(c).
        row("LOCAL_PREF length 3", vec![Set(attr(WK, ty::LOCAL_PREF, &[0, 0, 100]))], taw),
        row("LOCAL_PREF flags optional", vec![Set(attr(OPT, ty::LOCAL_PREF, &[0, 0, 0, 100]))], taw),
        // ATOMIC_AGGREGATE: RFC 7606 §7.6; flags §3(f).
        row("ATOMIC_AGGREGATE length 1", vec![Set(attr(WK, ty::ATOMIC_AGGREGATE, &[0]))], AttributeDiscard(ty::ATOMIC_AGGREGATE)),
        row("ATOMIC_AGGREGATE flags optional", vec![Set(attr(OPT_TR, ty::ATOMIC_AGGREGATE, &[]))], AttributeDiscard(ty::ATOMIC_AGGREGATE)),
        // AGGREGATOR (4-octet AS session: 8 octets): RFC 7606 §7.7; flags §3(f).
        row("AGGREGATOR length 7", vec![Set(attr(OPT_TR, ty::AGGREGATOR, &[0, 0, 0xfd, 0xe8, 1, 2, 3]))], AttributeDiscard(ty::AGGREGATOR)),
        row("AGGREGATOR flags well-known", vec![Set(attr(WK, ty::AGGREGATOR, &[0, 0, 0xfd, 0xe8, 1, 2, 3, 4]))], AttributeDiscard(ty::AGGREGATOR)),
        // COMMUNITIES: RFC 7606 §7.8 (non-zero multiple of 4), flags §3(c),
        // a repeat §3(g) (the first counts).
        row("COMMUNITIES length 5", vec![Set(attr(OPT_TR, ty::COMMUNITIES, &[0, 0, 0, 1, 0]))], taw),
        row("COMMUNITIES length 0", vec![Set(attr(OPT_TR, ty::COMMUNITIES, &[]))], taw),
        row("COMMUNITIES flags non-transitive", vec![Set(attr(OPT, ty::COMMUNITIES, &[0, 0, 0, 1]))], taw),
        row("COMMUNITIES twice, the second broken", vec![Set(attr(OPT_TR, ty::COMMUNITIES, &[0, 0, 0, 1])), Append(attr(OPT_TR, ty::COMMUNITIES, &[0]))], Accept(ty::COMMUNITIES)),
        // ORIGINATOR_ID (internal neighbour): RFC 7606 §7.9, flags §3(c).
        row("ORIGINATOR_ID length 5", vec![Set(attr(OPT, ty::ORIGINATOR_ID, &[1, 2, 3, 4, 5]))], taw),
        row("ORIGINATOR_ID flags transitive", vec![Set(attr(OPT_TR, ty::ORIGINATOR_ID, &[1, 2, 3, 4]))], taw),
        // CLUSTER_LIST (internal neighbour): RFC 7606 §7.10, flags §3(c).
        row("CLUSTER_LIST length 6", vec![Set(attr(OPT, ty::CLUSTER_LIST, &[1, 2, 3, 4, 5, 6]))], taw),
        row("CLUSTER_LIST length 0", vec![Set(attr(OPT, ty::CLUSTER_LIST, &[]))], taw),
        row("CLUSTER_LIST flags well-known", vec![Set(attr(WK, ty::CLUSTER_LIST, &[1, 2, 3, 4]))], taw),
        // EXTENDED COMMUNITIES: RFC 7606 §7.14 (non-zero multiple of 8),
        // flags §3(c); an unknown type is no error (§7.14, RFC 7153 §2).
        row("EXTENDED_COMMUNITIES length 12", vec![Set(attr(OPT_TR, ty::EXTENDED_COMMUNITIES, &[RT.as_slice(), &[0; 4]].concat()))], taw),
        row("EXTENDED_COMMUNITIES length 0", vec![Set(attr(OPT_TR, ty::EXTENDED_COMMUNITIES, &[]))], taw),
        row("EXTENDED_COMMUNITIES flags non-transitive", vec![Set(attr(OPT, ty::EXTENDED_COMMUNITIES, &RT))], taw),
        row("EXTENDED_COMMUNITIES of an unknown type", vec![Set(attr(OPT_TR, 16, &[RT.as_slice(), &[0x8f, 0x7f, 1, 2, 3, 4, 5, 6]].concat()))], Accept(ty::EXTENDED_COMMUNITIES)),
        // AS4_PATH / AS4_AGGREGATOR on a 4-octet AS session: RFC 6793 §4.1
        // (discarded even when well formed); malformed ones §6.
        row("AS4_PATH from a NEW speaker", vec![Set(attr(OPT_TR, ty::AS4_PATH, &[2, 1, 0, 0, 0xfd, 0xe9]))], AttributeDiscard(ty::AS4_PATH)),
        row("AS4_PATH segment of 0 ASes", vec![Set(attr(OPT_TR, ty::AS4_PATH, &[2, 0]))], AttributeDiscard(ty::AS4_PATH)),
        row("AS4_PATH flags well-known", vec![Set(attr(WK, ty::AS4_PATH, &[2, 1, 0, 0, 0xfd, 0xe9]))], AttributeDiscard(ty::AS4_PATH)),
        row("AS4_AGGREGATOR from a NEW speaker", vec![Set(attr(OPT_TR, ty::AS4_AGGREGATOR, &[0, 0, 0xfd, 0xe9, 1, 2, 3, 4]))], AttributeDiscard(ty::AS4_AGGREGATOR)),
        row("AS4_AGGREGATOR length 7", vec![Set(attr(OPT_TR, ty::AS4_AGGREGATOR, &[0, 0, 0xfd, 0xe9, 1, 2, 3]))], AttributeDiscard(ty::AS4_AGGREGATOR)),
        row("AS4_AGGREGATOR flags well-known", vec![Set(attr(WK, ty::AS4_AGGREGATOR, &[0, 0, 0xfd, 0xe9, 1, 2, 3, 4]))], AttributeDiscard(ty::AS4_AGGREGATOR)),
        // LARGE_COMMUNITY: RFC 8092 §6 (non-zero multiple of 12), flags
        // RFC 7606 §3(c).
        row("LARGE_COMMUNITY well formed", vec![Set(attr(OPT_TR, 32, &[0, 0, 0xfd, 0xe8, 0, 0, 0, 1, 0, 0, 0, 2]))], Accept(ty::LARGE_COMMUNITY)),
        row("LARGE_COMMUNITY length 13", vec![Set(attr(OPT_TR, 32, &[0, 0, 0xfd, 0xe8, 0, 0, 0, 1, 0, 0, 0, 2, 9]))], taw),
        row("LARGE_COMMUNITY length 0", vec![Set(attr(OPT_TR, ty::LARGE_COMMUNITY, &[]))], taw),
        row("LARGE_COMMUNITY flags non-transitive", vec![Set(attr(OPT, 32, &[0, 0, 0xfd, 0xe8, 0, 0, 0, 1, 0, 0, 0, 2]))], taw),
        // An attribute overrunning the list after MP_REACH_NLRI: RFC 7606 §4.
        row("last attribute overruns the list", vec![Append(vec![WK, ty::MED, 9, 0])], taw),
        // Unknown optional attributes are no error (RFC 4271 §5): a
        // transitive one is passed on, a non-transitive one dropped.
        row("unknown optional transitive", vec![Set(attr(OPT_TR, 99, &[1]))], Accept(99)),
        row("unknown optional non-transitive", vec![Set(attr(OPT, 98, &[1]))], AttributeDiscard(98)),
    ]
}

/// Rows that end the session with a NOTIFICATION.
#[rustfmt::skip]
fn session_reset_rows() -> Vec<Row> {
    use Action::*;
    use Edit::*;
    vec![
        // RFC 7606 §7.11, §5.3: the NLRI cannot be located: reset (3/9).
        row("MP_REACH next hop length 5", vec![ReachNextHop(vec![1, 2, 3, 4, 5])], SessionReset(3, 9)),
        row("MP_REACH shorter than 5 octets", vec![Set(attr(OPT, ty::MP_REACH_NLRI, &[0, 1, 128, 0]))], SessionReset(3, 9)),
        row("MP_REACH flags transitive", vec![Set(attr(OPT_TR, ty::MP_REACH_NLRI, &REACH_HEAD))], SessionReset(3, 4)),
        row("MP_REACH prefix longer than the family", vec![Set(attr(OPT, ty::MP_REACH_NLRI, &[&REACH_HEAD[..], &[88 + 33, 0, 0, 0x11], &RD, &[10, 0, 0, 0, 0]].concat()))], SessionReset(3, 10)),
        row("MP_UNREACH shorter than 3 octets", vec![Append(attr(OPT, ty::MP_UNREACH_NLRI, &[0, 1]))], SessionReset(3, 9)),
        row("MP_UNREACH flags well-known", vec![Append(attr(WK, ty::MP_UNREACH_NLRI, &[0, 1, 128]))], SessionReset(3, 4)),
        // RFC 7606 §3(g): a repeated MP attribute resets (3/1).
        row("MP_REACH twice", vec![Append(attr(OPT, ty::MP_REACH_NLRI, &REACH_HEAD))], SessionReset(3, 1)),
        // RFC 4271 §6.3: an unrecognised well-known attribute (3/2).
        row("unknown well-known attribute", vec![Set(attr(WK, 99, &[]))], SessionReset(3, 2)),
        // RFC 7606 §5.2: no reachable NLRI, so the NLRI may be what broke:
        // an error stronger than attribute discard resets, with its own subcode.
        row("no NLRI and ORIGIN value 7", vec![Remove(ty::MP_REACH_NLRI), Set(attr(WK, ty::ORIGIN, &[7]))], SessionReset(3, 6)),
    ]
}

struct Setup {
    lo: Loopback,
    pisek: Pisek,
    listener: TcpListener,
}

impl Setup {
    /// Pisek on .1 of a fresh loopback /24 peering with the raw peer on .2;
    /// `None` (skip) outside CI when not root.
    fn prerequisites(test: &str) -> Option<Setup> {
        if !pisek_lab::require(test, &[]) {
            return None;
        }
        let lo = Loopback::new();
        let listener = TcpListener::bind((lo.v4(2), 179)).expect("bind raw peer");
        let pisek = Pisek::start(
            speaker_config(lo.v4(1)),
            lo.ip(1),
            &[lo.ip(2)],
            vec![vrf(1, "65000:1", "65000:100")],
        );
        Some(Setup {
            lo,
            pisek,
            listener,
        })
    }

    fn established_peer(&self) -> RawPeer {
        let mut p = RawPeer::accept(&self.listener);
        p.establish(self.lo.v4(2));
        self.pisek.wait_established();
        p
    }

    /// Waits for the next route event of route `n`; others are dropped.
    fn event_for(&mut self, n: u8, what: &str) -> RouteEvent {
        let want = prefix(n);
        pisek_lab::poll_until(what, WAIT, || {
            self.pisek
                .drain_events()
                .into_iter()
                .find(|e| e.prefix.prefix.to_string() == want)
        })
    }

    /// Announces route `n` with a good UPDATE and waits until it is in.
    fn announce_good(&mut self, p: &mut RawPeer, n: u8, label: u32, what: &str) {
        p.send(&update(n, label, &[]));
        let e = self.event_for(n, &format!("{what}: the good route is learned"));
        let route = e.route.unwrap_or_else(|| panic!("{what}: an announcement"));
        assert_eq!(route.label.value(), label, "{what}");
    }

    /// Prefixes in Pisek's RIB (Adj-RIBs-In and Loc-RIB are one table).
    fn rib_size(&self) -> usize {
        let count = self.pisek.rt.block_on(self.pisek.handle().route_count());
        count.expect("speaker answers")
    }

    /// Checks what became of route `n` after the faulty UPDATE (label
    /// `label`); `rib_before` is the RIB's size before its good version.
    fn check_fate(&mut self, n: u8, label: u32, action: Action, rib_before: usize, what: &str) {
        let e = self.event_for(n, &format!("{what}: {action:?}"));
        match (action, e.route) {
            // Gone from the RIB, not only from the tenant's view (a route
            // that lost its route target would leave the tenant too).
            (Action::TreatAsWithdraw, None) => {
                assert_eq!(self.rib_size(), rib_before, "{what}: out of the RIB");
            }
            (Action::SessionReset(..), None) => {}
            (Action::Accept(t), Some(r)) => {
                assert_eq!(r.label.value(), label, "{what}: the new route is in");
                assert!(
                    carries(&r.attributes, t),
                    "{what}: installed with attribute {t}"
                );
            }
            (Action::AttributeDiscard(t), Some(r)) => {
                assert_eq!(r.label.value(), label, "{what}: the new route is in");
                assert!(
                    !carries(&r.attributes, t),
                    "{what}: installed without attribute {t}"
                );
            }
            (a, r) => panic!("{what}: expected {a:?}, the route is now {r:?}"),
        }
    }
}

#[test]
fn attribute_faults_that_keep_the_session() {
    let Some(mut s) = Setup::prerequisites("RFC 7606 session-keeping faults") else {
        return;
    };
    let mut p = s.established_peer();
    let mut failures = Vec::new();
    for (i, r) in session_keeping_rows(s.lo.v4(1)).into_iter().enumerate() {
        let n = i as u8;
        let label = 1000 + 2 * u32::from(n);
        p.send(&KEEPALIVE);
        let rib_before = s.rib_size();
        s.announce_good(&mut p, n, label, r.what);
        p.send(&update(n, label + 1, &r.edits));
        // A row that fails is recorded and the table goes on, so one run
        // shows every gap; the session must survive each row regardless.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            s.check_fate(n, label + 1, r.action, rib_before, r.what)
        }));
        if outcome.is_err() {
            failures.push(r.what);
        }
        assert!(
            s.pisek.established(),
            "{}: the session stays Established",
            r.what
        );
    }
    assert!(failures.is_empty(), "rows that failed: {failures:?}");
}

#[test]
fn attribute_faults_that_reset_the_session() {
    let Some(mut s) = Setup::prerequisites("RFC 7606 session resets") else {
        return;
    };
    for (i, r) in session_reset_rows().into_iter().enumerate() {
        let Action::SessionReset(code, subcode) = r.action else {
            panic!("{}: a reset row", r.what);
        };
        let n = 100 + i as u8;
        let label = 2000 + 2 * u32::from(n);
        let mut p = s.established_peer();
        s.announce_good(&mut p, n, label, r.what);
        p.send(&update(n, label + 1, &r.edits));
        let (got_code, got_subcode, _) = p.expect_notification();
        assert_eq!((got_code, got_subcode), (code, subcode), "{}", r.what);
        s.check_fate(n, label + 1, r.action, 0, r.what);
        assert_eq!(
            s.rib_size(),
            0,
            "{}: the peer's routes went with the session",
            r.what
        );
    }
}
