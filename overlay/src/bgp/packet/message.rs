//! BGP messages (RFC 4271 §4): the 19-octet header, OPEN, UPDATE,
//! NOTIFICATION, KEEPALIVE and ROUTE-REFRESH (RFC 2918).
//!
//! ```text
//! +--------------------------------+
//! |  Marker (16 octets, all ones)  |
//! +----------------+---------------+
//! |  Length (2)    |  Type (1)     |
//! +----------------+---------------+
//! ```

use std::net::{IpAddr, Ipv4Addr};

use super::SessionContext;
use super::attribute::{PathAttributes, emit_vpn_next_hop, parse_attributes};
use super::capability::Capability;
use super::error::DecodeError;
use super::iana::{OPT_PARAM_CAPABILITIES, attr_flag, attr_type, message_type as mt};
use super::nlri::{Family, VpnNlri, VpnPrefix};

/// Field offsets of the header (RFC 4271 §4.1).
mod field {
    use std::ops::Range;
    pub const MARKER: Range<usize> = 0..16;
    pub const LENGTH: Range<usize> = 16..18;
    pub const TYPE: usize = 18;
}

/// Length of the message header.
pub const HEADER_LEN: usize = 19;
/// Largest message (RFC 4271 §4.1; RFC 8654 extended messages not offered).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Minimum lengths per type (RFC 4271 §4.2-4.5, RFC 2918 §3).
const MIN_OPEN_LEN: usize = 29;
const MIN_UPDATE_LEN: usize = 23;
const MIN_NOTIFICATION_LEN: usize = 21;
const ROUTE_REFRESH_LEN: usize = 23;

/// An OPEN message (RFC 4271 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// The sender's AS (AS_TRANS when it needs four octets; the real one is
    /// in [`Capability::FourOctetAs`]).
    pub my_as: u16,
    /// Proposed hold time in seconds.
    pub hold_time: u16,
    /// BGP Identifier.
    pub bgp_id: Ipv4Addr,
    /// Capabilities from every capabilities optional parameter.
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// The sender's AS: the four-octet capability's value when present.
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(asn) => Some(*asn),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }
}

/// A NOTIFICATION message (RFC 4271 §4.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Error code.
    pub code: u8,
    /// Error subcode.
    pub subcode: u8,
    /// Data.
    pub data: Vec<u8>,
}

impl From<&DecodeError> for Notification {
    fn from(e: &DecodeError) -> Notification {
        Notification {
            code: e.code() as u8,
            subcode: e.subcode(),
            data: e.data(),
        }
    }
}

/// A ROUTE-REFRESH message (RFC 2918 §3; the reserved octet is RFC 7313's subtype).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRefresh {
    /// The family to re-send.
    pub family: Family,
    /// RFC 7313 subtype: 0 request, 1 begin, 2 end of route refresh.
    pub subtype: u8,
}

/// A decoded UPDATE (RFC 4271 §4.3, RFC 4760) restricted to the VPN families.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    /// Withdrawn VPN routes (MP_UNREACH_NLRI).
    pub withdrawn: Vec<VpnNlri>,
    /// Announced VPN routes (MP_REACH_NLRI).
    pub announced: Vec<VpnNlri>,
    /// Attributes shared by the announced routes.
    pub attributes: PathAttributes,
    /// End-of-RIB marker for this family (RFC 4724 §2).
    pub end_of_rib: Option<Family>,
    /// Set when the announced routes must be handled as withdrawn
    /// (RFC 7606 §2), with the reason for the log.
    pub treat_as_withdraw: Option<DecodeError>,
    /// Attribute faults handled by dropping the attribute (RFC 7606 §2
    /// attribute discard), for the log (§6).
    pub discarded: Vec<DecodeError>,
}

/// A BGP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// OPEN.
    Open(Open),
    /// UPDATE.
    Update(Box<Update>),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH.
    RouteRefresh(RouteRefresh),
}

/// Checks the header at the start of `buf` and returns the length of the
/// whole message once at least a header is there (None: need more bytes).
/// The stream framer uses this; it rejects a bad marker or a length outside
/// 19..=4096 before reading any body (RFC 4271 §6.1).
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    if buf[field::MARKER].iter().any(|b| *b != 0xff) {
        return Err(DecodeError::ConnectionNotSynchronized);
    }
    let len = u16::from_be_bytes([buf[field::LENGTH.start], buf[field::LENGTH.start + 1]]);
    if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&usize::from(len)) {
        return Err(DecodeError::BadMessageLength(len));
    }
    Ok(Some(usize::from(len)))
}

impl Message {
    /// Decodes exactly one message (header included) from `buf`.
    pub fn decode(buf: &[u8], ctx: &SessionContext) -> Result<Message, DecodeError> {
        let len = frame_len(buf)?.ok_or(DecodeError::BadMessageLength(buf.len() as u16))?;
        if len != buf.len() {
            return Err(DecodeError::BadMessageLength(len as u16));
        }
        let body = &buf[HEADER_LEN..];
        let bad_len = || DecodeError::BadMessageLength(len as u16);
        match buf[field::TYPE] {
            mt::OPEN if len >= MIN_OPEN_LEN => decode_open(body, len as u16).map(Message::Open),
            mt::UPDATE if len >= MIN_UPDATE_LEN => {
                decode_update(body, ctx).map(|u| Message::Update(Box::new(u)))
            }
            mt::NOTIFICATION if len >= MIN_NOTIFICATION_LEN => {
                Ok(Message::Notification(Notification {
                    code: body[0],
                    subcode: body[1],
                    data: body[2..].to_vec(),
                }))
            }
            mt::KEEPALIVE if len == HEADER_LEN => Ok(Message::Keepalive),
            mt::ROUTE_REFRESH if len == ROUTE_REFRESH_LEN => {
                Ok(Message::RouteRefresh(RouteRefresh {
                    family: Family {
                        afi: u16::from_be_bytes([body[0], body[1]]),
                        safi: body[3],
                    },
                    subtype: body[2],
                }))
            }
            mt::OPEN | mt::UPDATE | mt::NOTIFICATION | mt::KEEPALIVE => Err(bad_len()),
            // RFC 7313 §5: its own error code, with the message as data.
            mt::ROUTE_REFRESH => Err(DecodeError::BadRouteRefreshLength(buf.to_vec())),
            other => Err(DecodeError::BadMessageType(other)),
        }
    }

    /// Appends the encoded message to `out`. UPDATEs are built with
    /// [`UpdateEncoder`], which packs many routes per message; encoding an
    /// [`Update`] here sends its announced routes and withdrawals in as many
    /// messages as they need.
    pub fn encode(&self, ctx: &SessionContext, out: &mut Vec<u8>) {
        match self {
            Message::Open(open) => {
                let start = begin(mt::OPEN, out);
                out.push(4);
                out.extend_from_slice(&open.my_as.to_be_bytes());
                out.extend_from_slice(&open.hold_time.to_be_bytes());
                out.extend_from_slice(&open.bgp_id.octets());
                let params_at = out.len();
                out.push(0);
                // One capabilities parameter per capability, as most speakers do.
                for cap in &open.capabilities {
                    let p = out.len();
                    out.extend_from_slice(&[OPT_PARAM_CAPABILITIES, 0]);
                    cap.emit(out);
                    out[p + 1] = (out.len() - p - 2) as u8;
                }
                out[params_at] = (out.len() - params_at - 1) as u8;
                finish(start, out);
            }
            Message::Update(update) => {
                let mut enc = UpdateEncoder::new(*ctx);
                for nlri in &update.withdrawn {
                    enc.withdraw(&nlri.prefix, out);
                }
                enc.flush(out);
                if let Some(nh) = update.attributes.next_hop {
                    for nlri in &update.announced {
                        enc.announce(&update.attributes, nh, nlri, out);
                    }
                }
                enc.flush(out);
                if let Some(f) = update.end_of_rib {
                    encode_end_of_rib(f, out);
                }
            }
            Message::Notification(n) => {
                let start = begin(mt::NOTIFICATION, out);
                out.extend_from_slice(&[n.code, n.subcode]);
                // Data is cut to fit one message.
                let room = MAX_MESSAGE_LEN - HEADER_LEN - 2;
                out.extend_from_slice(&n.data[..n.data.len().min(room)]);
                finish(start, out);
            }
            Message::Keepalive => {
                let start = begin(mt::KEEPALIVE, out);
                finish(start, out);
            }
            Message::RouteRefresh(rr) => {
                let start = begin(mt::ROUTE_REFRESH, out);
                out.extend_from_slice(&rr.family.afi.to_be_bytes());
                out.extend_from_slice(&[rr.subtype, rr.family.safi]);
                finish(start, out);
            }
        }
    }
}

/// Writes a header with a placeholder length; returns where it starts.
fn begin(kind: u8, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0xff; 16]);
    out.extend_from_slice(&[0, 0, kind]);
    start
}

/// Fills in the length of the message that starts at `start`.
fn finish(start: usize, out: &mut [u8]) {
    let len = (out.len() - start) as u16;
    out[start + field::LENGTH.start..start + field::LENGTH.end].copy_from_slice(&len.to_be_bytes());
}

/// Appends an End-of-RIB marker for `family` (RFC 4724 §2): an UPDATE with
/// only an empty MP_UNREACH_NLRI (or an empty UPDATE for IPv4 unicast).
pub fn encode_end_of_rib(family: Family, out: &mut Vec<u8>) {
    let start = begin(mt::UPDATE, out);
    out.extend_from_slice(&[0, 0]);
    if family == Family::IPV4_UNICAST {
        out.extend_from_slice(&[0, 0]);
    } else {
        out.extend_from_slice(&6u16.to_be_bytes());
        out.extend_from_slice(&[attr_flag::OPTIONAL, attr_type::MP_UNREACH_NLRI, 3]);
        out.extend_from_slice(&family.afi.to_be_bytes());
        out.push(family.safi);
    }
    finish(start, out);
}

fn decode_open(body: &[u8], len: u16) -> Result<Open, DecodeError> {
    let version = body[0];
    if version != 4 {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let my_as = u16::from_be_bytes([body[1], body[2]]);
    let hold_time = u16::from_be_bytes([body[3], body[4]]);
    let bgp_id = Ipv4Addr::new(body[5], body[6], body[7], body[8]);
    let params_len = usize::from(body[9]);
    let params = &body[10..];
    // §6.2: the optional parameters length must match what follows.
    if params.len() != params_len {
        return Err(DecodeError::BadMessageLength(len));
    }
    let mut capabilities = Vec::new();
    let mut rest = params;
    while !rest.is_empty() {
        let [kind, plen, tail @ ..] = rest else {
            return Err(DecodeError::BadMessageLength(len));
        };
        let value = tail
            .get(..usize::from(*plen))
            .ok_or(DecodeError::BadMessageLength(len))?;
        if *kind != OPT_PARAM_CAPABILITIES {
            return Err(DecodeError::UnsupportedOptionalParameter(*kind));
        }
        Capability::parse_list(value, &mut capabilities)?;
        rest = &tail[usize::from(*plen)..];
    }
    Ok(Open {
        my_as,
        hold_time,
        bgp_id,
        capabilities,
    })
}

fn decode_update(body: &[u8], ctx: &SessionContext) -> Result<Update, DecodeError> {
    // §6.3 and RFC 7606 §4: lengths that do not add up cannot be trusted to
    // locate the NLRI, so they reset the session.
    let withdrawn_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let withdrawn = body
        .get(2..2 + withdrawn_len)
        .ok_or(DecodeError::MalformedAttributeList)?;
    let rest = &body[2 + withdrawn_len..];
    let [a, b, rest @ ..] = rest else {
        return Err(DecodeError::MalformedAttributeList);
    };
    let attrs_len = usize::from(u16::from_be_bytes([*a, *b]));
    let attrs = rest
        .get(..attrs_len)
        .ok_or(DecodeError::MalformedAttributeList)?;
    let nlri = &rest[attrs_len..];
    // IPv4 unicast routes are not negotiated; check their syntax and drop them.
    check_ipv4_prefixes(withdrawn)?;
    check_ipv4_prefixes(nlri)?;

    if attrs.is_empty() && withdrawn.is_empty() && nlri.is_empty() {
        return Ok(Update {
            end_of_rib: Some(Family::IPV4_UNICAST),
            ..Update::default()
        });
    }
    let parsed = parse_attributes(attrs, ctx)?;
    // RFC 7606 §5.2: attributes with no reachable NLRI leave us unsure the
    // NLRI was found at all, so any fault stronger than attribute discard
    // resets (an End-of-RIB, only MP_UNREACH_NLRI, has no such fault).
    if parsed.reach_family.is_none() && nlri.is_empty() {
        if let Some(e) = parsed.treat_as_withdraw {
            return Err(e);
        }
    }
    let mut update = Update {
        withdrawn: parsed.unreach,
        announced: parsed.reach,
        attributes: parsed.attributes,
        end_of_rib: None,
        treat_as_withdraw: parsed.treat_as_withdraw,
        discarded: parsed.discarded,
    };
    // An UPDATE holding only an empty MP_UNREACH_NLRI is End-of-RIB (RFC 4724 §2).
    if let (Some(f), None, true) = (parsed.unreach_family, parsed.reach_family, attrs.len() == 6) {
        if update.withdrawn.is_empty() {
            update.end_of_rib = Some(f);
            return Ok(update);
        }
    }
    if !update.announced.is_empty() && update.treat_as_withdraw.is_none() {
        // RFC 4271 §6.3 mandatory attributes, RFC 7606 §3 d: treat-as-withdraw.
        // LOCAL_PREF is not required: RFC 7606 §7.5 lets a receiver use its
        // default, and a missing one is common from route servers.
        let missing = [attr_type::ORIGIN, attr_type::AS_PATH]
            .into_iter()
            .find(|t| !parsed_has(attrs, *t));
        if let Some(t) = missing {
            update.treat_as_withdraw = Some(DecodeError::MissingWellKnownAttribute(t));
        }
    }
    Ok(update)
}

/// True when the (already validated) attribute list holds type `t`.
fn parsed_has(mut attrs: &[u8], t: u8) -> bool {
    while attrs.len() >= 3 {
        let ext = attrs[0] & attr_flag::EXTENDED_LENGTH != 0;
        let (hdr, len) = if ext && attrs.len() >= 4 {
            (4, usize::from(u16::from_be_bytes([attrs[2], attrs[3]])))
        } else {
            (3, usize::from(attrs[2]))
        };
        if attrs[1] == t {
            return true;
        }
        attrs = attrs.get(hdr + len..).unwrap_or(&[]);
    }
    false
}

/// Walks IPv4 prefixes (RFC 4271 §4.3) to check their syntax.
fn check_ipv4_prefixes(mut buf: &[u8]) -> Result<(), DecodeError> {
    while let Some((&bits, rest)) = buf.split_first() {
        if bits > 32 {
            return Err(DecodeError::InvalidNetworkField);
        }
        let octets = usize::from(bits).div_ceil(8);
        buf = rest.get(octets..).ok_or(DecodeError::InvalidNetworkField)?;
    }
    Ok(())
}

/// Packs VPN routes into as few UPDATEs as possible: consecutive routes with
/// the same attributes and family share one message until it is full
/// (the Adj-RIB-Out's update packing).
pub struct UpdateEncoder {
    ctx: SessionContext,
    /// The message being filled: header and attributes written, NLRI appended.
    current: Vec<u8>,
    /// What the current message is for.
    kind: Option<Pending>,
    /// Offset of the MP attribute's 2-octet length field.
    mp_len_at: usize,
    /// Offset of the total path attribute length field.
    attrs_len_at: usize,
}

#[derive(Clone, PartialEq, Eq)]
enum Pending {
    Withdraw(Family),
    Announce(Family, *const PathAttributes, IpAddr),
}

impl UpdateEncoder {
    /// An encoder for a session with the given context.
    pub fn new(ctx: SessionContext) -> UpdateEncoder {
        UpdateEncoder {
            ctx,
            current: Vec::with_capacity(MAX_MESSAGE_LEN),
            kind: None,
            mp_len_at: 0,
            attrs_len_at: 0,
        }
    }

    /// Adds a withdrawal of `prefix`, flushing full messages into `out`.
    pub fn withdraw(&mut self, prefix: &VpnPrefix, out: &mut Vec<u8>) {
        let family = prefix.family();
        self.ensure(
            Pending::Withdraw(family),
            VpnNlri::wire_len(prefix),
            out,
            |enc| {
                let start = begin(mt::UPDATE, &mut enc.current);
                debug_assert_eq!(start, 0);
                enc.current.extend_from_slice(&[0, 0]);
                enc.attrs_len_at = enc.current.len();
                enc.current.extend_from_slice(&[0, 0]);
                enc.current.extend_from_slice(&[
                    attr_flag::OPTIONAL | attr_flag::EXTENDED_LENGTH,
                    attr_type::MP_UNREACH_NLRI,
                ]);
                enc.mp_len_at = enc.current.len();
                enc.current.extend_from_slice(&[0, 0]);
                enc.current.extend_from_slice(&family.afi.to_be_bytes());
                enc.current.push(family.safi);
            },
        );
        VpnNlri::emit(prefix, None, &mut self.current);
    }

    /// Adds an announcement of `nlri` with `attrs` and `next_hop`, flushing
    /// full messages into `out`. Routes are packed together while they share
    /// the same `attrs` (by address: the RIB interns attributes).
    pub fn announce(
        &mut self,
        attrs: &PathAttributes,
        next_hop: IpAddr,
        nlri: &VpnNlri,
        out: &mut Vec<u8>,
    ) {
        let family = nlri.prefix.family();
        let ctx = self.ctx;
        self.ensure(
            Pending::Announce(family, attrs as *const _, next_hop),
            VpnNlri::wire_len(&nlri.prefix),
            out,
            |enc| {
                begin(mt::UPDATE, &mut enc.current);
                enc.current.extend_from_slice(&[0, 0]);
                enc.attrs_len_at = enc.current.len();
                enc.current.extend_from_slice(&[0, 0]);
                // MP_REACH_NLRI first (RFC 7606 §5.1), NLRI at its end so the
                // other attributes go in before it.
                let mut others = Vec::new();
                attrs.emit(&ctx, &mut others);
                enc.current.extend_from_slice(&others);
                enc.current.extend_from_slice(&[
                    attr_flag::OPTIONAL | attr_flag::EXTENDED_LENGTH,
                    attr_type::MP_REACH_NLRI,
                ]);
                enc.mp_len_at = enc.current.len();
                enc.current.extend_from_slice(&[0, 0]);
                enc.current.extend_from_slice(&family.afi.to_be_bytes());
                enc.current.push(family.safi);
                emit_vpn_next_hop(family, next_hop, &mut enc.current);
                enc.current.push(0);
            },
        );
        VpnNlri::emit(&nlri.prefix, Some(nlri.label), &mut self.current);
    }

    fn ensure(
        &mut self,
        kind: Pending,
        need: usize,
        out: &mut Vec<u8>,
        start: impl FnOnce(&mut UpdateEncoder),
    ) {
        if self.kind.as_ref() == Some(&kind) && self.current.len() + need <= MAX_MESSAGE_LEN {
            return;
        }
        self.flush(out);
        start(self);
        self.kind = Some(kind);
    }

    /// Finishes the message being filled, if any, into `out`.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        if self.kind.take().is_none() {
            return;
        }
        let total = self.current.len();
        let mp_len = (total - self.mp_len_at - 2) as u16;
        self.current[self.mp_len_at..self.mp_len_at + 2].copy_from_slice(&mp_len.to_be_bytes());
        let attrs_len = (total - self.attrs_len_at - 2) as u16;
        self.current[self.attrs_len_at..self.attrs_len_at + 2]
            .copy_from_slice(&attrs_len.to_be_bytes());
        finish(0, &mut self.current);
        out.extend_from_slice(&self.current);
        self.current.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::packet::Origin;
    use crate::bgp::packet::capability::{GracefulRestart, GracefulRestartFamily};
    use crate::packet::Label;

    fn ctx() -> SessionContext {
        SessionContext {
            four_octet_as: true,
            external: false,
        }
    }

    /// A KEEPALIVE: marker, length 19, type 4 (RFC 4271 §4.4).
    static KEEPALIVE: [u8; 19] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0, 19, 4,
    ];

    fn decode_all(mut buf: &[u8]) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(len) = frame_len(buf).unwrap() {
            out.push(Message::decode(&buf[..len], &ctx()).unwrap());
            buf = &buf[len..];
        }
        assert!(buf.is_empty());
        out
    }

    #[test]
    fn keepalive_round_trips() {
        assert_eq!(Message::decode(&KEEPALIVE, &ctx()), Ok(Message::Keepalive));
        let mut out = Vec::new();
        Message::Keepalive.encode(&ctx(), &mut out);
        assert_eq!(out, KEEPALIVE);
    }

    #[test]
    fn open_round_trips() {
        let open = Open {
            my_as: 65000,
            hold_time: 90,
            bgp_id: Ipv4Addr::new(10, 0, 0, 1),
            capabilities: vec![
                Capability::Multiprotocol(Family::VPNV4),
                Capability::RouteRefresh,
                Capability::FourOctetAs(65000),
                Capability::GracefulRestart(GracefulRestart {
                    restarting: false,
                    restart_time: 120,
                    families: vec![GracefulRestartFamily {
                        family: Family::VPNV6,
                        forwarding_preserved: true,
                    }],
                }),
            ],
        };
        let mut out = Vec::new();
        Message::Open(open.clone()).encode(&ctx(), &mut out);
        assert_eq!(decode_all(&out), vec![Message::Open(open)]);
    }

    #[test]
    fn bad_marker_is_connection_not_synchronized() {
        let mut m = KEEPALIVE;
        m[3] = 0;
        assert_eq!(frame_len(&m), Err(DecodeError::ConnectionNotSynchronized));
        assert_eq!(DecodeError::ConnectionNotSynchronized.subcode(), 1);
    }

    #[test]
    fn length_out_of_range_is_bad_message_length() {
        let mut m = KEEPALIVE;
        m[17] = 18;
        assert_eq!(frame_len(&m), Err(DecodeError::BadMessageLength(18)));
        m[16] = 0x10;
        m[17] = 1;
        assert_eq!(frame_len(&m), Err(DecodeError::BadMessageLength(4097)));
        // A KEEPALIVE with a body is a bad length too (§6.1).
        let mut long = KEEPALIVE.to_vec();
        long.push(0);
        long[17] = 20;
        assert_eq!(
            Message::decode(&long, &ctx()),
            Err(DecodeError::BadMessageLength(20))
        );
    }

    #[test]
    fn unknown_type_is_bad_message_type() {
        let mut m = KEEPALIVE;
        m[18] = 9;
        assert_eq!(
            Message::decode(&m, &ctx()),
            Err(DecodeError::BadMessageType(9))
        );
    }

    #[test]
    fn update_packs_routes_and_round_trips() {
        let attrs = PathAttributes {
            origin: Origin::Igp,
            local_pref: Some(100),
            next_hop: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
            ext_communities: vec![[0, 2, 0xfd, 0xe8, 0, 0, 0, 1]],
            ..PathAttributes::default()
        };
        let rd = "65000:1".parse().unwrap();
        let routes: Vec<VpnNlri> = (0..1000u32)
            .map(|i| VpnNlri {
                prefix: VpnPrefix::new(
                    rd,
                    format!("10.{}.{}.0/24", i / 256, i % 256).parse().unwrap(),
                ),
                label: Label::new(16 + i).unwrap(),
            })
            .collect();
        let mut enc = UpdateEncoder::new(ctx());
        let mut out = Vec::new();
        for r in &routes {
            enc.announce(&attrs, attrs.next_hop.unwrap(), r, &mut out);
        }
        enc.flush(&mut out);
        let msgs = decode_all(&out);
        // 15 octets a route: about 265 routes per 4096-octet message.
        assert_eq!(msgs.len(), 4);
        let mut got = Vec::new();
        for m in msgs {
            let Message::Update(u) = m else {
                panic!("not an update")
            };
            assert_eq!(u.attributes, attrs);
            assert_eq!(u.treat_as_withdraw, None);
            got.extend(u.announced);
        }
        assert_eq!(got, routes);
    }

    #[test]
    fn vpnv6_withdraw_and_end_of_rib_round_trip() {
        let prefix = VpnPrefix::new(
            "10.0.0.1:5".parse().unwrap(),
            "2001:db8:1::/48".parse().unwrap(),
        );
        let mut enc = UpdateEncoder::new(ctx());
        let mut out = Vec::new();
        enc.withdraw(&prefix, &mut out);
        enc.flush(&mut out);
        encode_end_of_rib(Family::VPNV6, &mut out);
        let msgs = decode_all(&out);
        let Message::Update(w) = &msgs[0] else {
            panic!()
        };
        assert_eq!(
            w.withdrawn.iter().map(|n| n.prefix).collect::<Vec<_>>(),
            vec![prefix]
        );
        let Message::Update(eor) = &msgs[1] else {
            panic!()
        };
        assert_eq!(eor.end_of_rib, Some(Family::VPNV6));
    }

    #[test]
    fn update_lengths_that_do_not_add_up_reset() {
        // Withdrawn length 10 in a 4-octet body.
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&[0, 23, 2, 0, 10, 0, 0]);
        assert_eq!(
            Message::decode(&m, &ctx()),
            Err(DecodeError::MalformedAttributeList)
        );
    }

    #[test]
    fn announcement_without_origin_is_treat_as_withdraw() {
        let attrs = PathAttributes {
            next_hop: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
            ..Default::default()
        };
        let nlri = VpnNlri {
            prefix: VpnPrefix::new("65000:1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()),
            label: Label::new(20).unwrap(),
        };
        let mut enc = UpdateEncoder::new(ctx());
        let mut out = Vec::new();
        enc.announce(&attrs, attrs.next_hop.unwrap(), &nlri, &mut out);
        enc.flush(&mut out);
        // Cut the ORIGIN attribute (the first one, 4 octets) out of the message.
        let attrs_at = HEADER_LEN + 4;
        out.drain(attrs_at..attrs_at + 4);
        let len = out.len() as u16;
        out[16..18].copy_from_slice(&len.to_be_bytes());
        let total = u16::from_be_bytes([out[HEADER_LEN + 2], out[HEADER_LEN + 3]]) - 4;
        out[HEADER_LEN + 2..HEADER_LEN + 4].copy_from_slice(&total.to_be_bytes());
        let Ok(Message::Update(u)) = Message::decode(&out, &ctx()) else {
            panic!()
        };
        assert_eq!(
            u.treat_as_withdraw,
            Some(DecodeError::MissingWellKnownAttribute(1))
        );
        assert_eq!(u.announced.len(), 1);
    }
}
