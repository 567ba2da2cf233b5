//! Labeled VPN NLRI (RFC 4364 §4.3.4, RFC 4659 §3, RFC 8277 §2): a length in
//! bits, one MPLS label, a route distinguisher and the prefix.
//!
//! ```text
//! +---------------------------+
//! |   Length (1 octet, bits)  |
//! +---------------------------+
//! |   Label (3 octets)        |  20-bit label, 3 TC bits, bottom-of-stack
//! +---------------------------+
//! |   Route Distinguisher (8) |
//! +---------------------------+
//! |   Prefix (variable)       |
//! +---------------------------+
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::error::DecodeError;
use super::iana::{afi, safi};
use crate::packet::Label;

/// Octets of label plus route distinguisher ahead of the prefix.
const LABEL_LEN: usize = 3;
const RD_LEN: usize = 8;
/// Bits the length field counts before the prefix itself.
const LABEL_RD_BITS: u8 = ((LABEL_LEN + RD_LEN) * 8) as u8;
/// The label value a withdrawal carries (RFC 8277 §2.4: 0x800000 as the
/// whole 3-octet field, i.e. label 0x80000 with bottom-of-stack clear).
const WITHDRAW_LABEL_FIELD: [u8; 3] = [0x80, 0x00, 0x00];

/// An address family (AFI, SAFI) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Family {
    /// Address family identifier.
    pub afi: u16,
    /// Subsequent address family identifier.
    pub safi: u8,
}

impl Family {
    /// VPNv4: AFI 1, SAFI 128 (RFC 4364).
    pub const VPNV4: Family = Family {
        afi: afi::IPV4,
        safi: safi::MPLS_VPN,
    };
    /// VPNv6: AFI 2, SAFI 128 (RFC 4659).
    pub const VPNV6: Family = Family {
        afi: afi::IPV6,
        safi: safi::MPLS_VPN,
    };
    /// IPv4 unicast: the family of the plain UPDATE fields (RFC 4271).
    pub const IPV4_UNICAST: Family = Family {
        afi: afi::IPV4,
        safi: safi::UNICAST,
    };

    /// The VPN family of a prefix.
    pub fn vpn_of(prefix: &IpNet) -> Family {
        match prefix {
            IpNet::V4(_) => Family::VPNV4,
            IpNet::V6(_) => Family::VPNV6,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Family::VPNV4 => f.write_str("vpnv4"),
            Family::VPNV6 => f.write_str("vpnv6"),
            Family { afi, safi } => write!(f, "afi {afi} safi {safi}"),
        }
    }
}

/// A route distinguisher (RFC 4364 §4.2): 2-octet type, 6-octet value.
/// Types 0 (2-octet AS : 4-octet number), 1 (IPv4 : 2-octet number) and
/// 2 (4-octet AS : 2-octet number) parse from and print as text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteDistinguisher(pub [u8; 8]);

impl RouteDistinguisher {
    /// Type 0: 2-octet AS, 4-octet assigned number.
    pub fn from_as2(asn: u16, number: u32) -> RouteDistinguisher {
        let mut b = [0u8; 8];
        b[2..4].copy_from_slice(&asn.to_be_bytes());
        b[4..8].copy_from_slice(&number.to_be_bytes());
        RouteDistinguisher(b)
    }

    /// Type 1: IPv4 address (usually the router id), 2-octet number.
    pub fn from_ipv4(addr: Ipv4Addr, number: u16) -> RouteDistinguisher {
        let mut b = [0u8; 8];
        b[1] = 1;
        b[2..6].copy_from_slice(&addr.octets());
        b[6..8].copy_from_slice(&number.to_be_bytes());
        RouteDistinguisher(b)
    }

    /// Type 2: 4-octet AS, 2-octet number.
    pub fn from_as4(asn: u32, number: u16) -> RouteDistinguisher {
        let mut b = [0u8; 8];
        b[1] = 2;
        b[2..6].copy_from_slice(&asn.to_be_bytes());
        b[6..8].copy_from_slice(&number.to_be_bytes());
        RouteDistinguisher(b)
    }
}

impl fmt::Display for RouteDistinguisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        match u16_at(0) {
            0 => write!(f, "{}:{}", u16_at(2), u32_at(4)),
            1 => write!(f, "{}:{}", Ipv4Addr::new(b[2], b[3], b[4], b[5]), u16_at(6)),
            2 => write!(f, "{}:{}", u32_at(2), u16_at(6)),
            t => write!(f, "type{t}:{:02x?}", &b[2..]),
        }
    }
}

impl fmt::Debug for RouteDistinguisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RD({self})")
    }
}

/// Why a route distinguisher or route target does not parse from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not ASN:NN, A.B.C.D:NN or ASN4:NN")]
pub struct ParseRdError(pub String);

/// Parses "ADMIN:NUMBER" into a type and 6 value octets, the layout shared by
/// route distinguishers (RFC 4364 §4.2) and route targets (RFC 4360 §4).
fn parse_admin_number(s: &str) -> Result<(u8, [u8; 6]), ParseRdError> {
    let err = || ParseRdError(s.to_string());
    let (admin, number) = s.rsplit_once(':').ok_or_else(err)?;
    let mut v = [0u8; 6];
    if let Ok(ip) = Ipv4Addr::from_str(admin) {
        let n: u16 = number.parse().map_err(|_| err())?;
        v[0..4].copy_from_slice(&ip.octets());
        v[4..6].copy_from_slice(&n.to_be_bytes());
        return Ok((1, v));
    }
    let asn: u32 = admin.parse().map_err(|_| err())?;
    match u16::try_from(asn) {
        Ok(asn2) => {
            let n: u32 = number.parse().map_err(|_| err())?;
            v[0..2].copy_from_slice(&asn2.to_be_bytes());
            v[2..6].copy_from_slice(&n.to_be_bytes());
            Ok((0, v))
        }
        Err(_) => {
            let n: u16 = number.parse().map_err(|_| err())?;
            v[0..4].copy_from_slice(&asn.to_be_bytes());
            v[4..6].copy_from_slice(&n.to_be_bytes());
            Ok((2, v))
        }
    }
}

impl FromStr for RouteDistinguisher {
    type Err = ParseRdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, value) = parse_admin_number(s)?;
        let mut b = [0u8; 8];
        b[1] = kind;
        b[2..].copy_from_slice(&value);
        Ok(RouteDistinguisher(b))
    }
}

/// A route target: an extended community of sub-type 0x02 (RFC 4360 §4),
/// in the 2-octet AS (type 0x00), IPv4 (0x01) or 4-octet AS (0x02) form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteTarget(pub [u8; 8]);

/// The extended community sub-type of a route target (RFC 4360 §4).
const ROUTE_TARGET_SUBTYPE: u8 = 0x02;

impl RouteTarget {
    /// The route target carried by an extended community, if it is one.
    pub fn from_ext_community(c: [u8; 8]) -> Option<RouteTarget> {
        // The high type octet's 0x40 bit only marks non-transitive.
        (c[0] <= 0x02 && c[1] == ROUTE_TARGET_SUBTYPE).then_some(RouteTarget(c))
    }
}

impl FromStr for RouteTarget {
    type Err = ParseRdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, value) = parse_admin_number(s)?;
        let mut b = [0u8; 8];
        b[0] = kind;
        b[1] = ROUTE_TARGET_SUBTYPE;
        b[2..].copy_from_slice(&value);
        Ok(RouteTarget(b))
    }
}

impl fmt::Display for RouteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rd = [0u8; 8];
        rd[1] = self.0[0];
        rd[2..].copy_from_slice(&self.0[2..]);
        write!(f, "{}", RouteDistinguisher(rd))
    }
}

impl fmt::Debug for RouteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RT({self})")
    }
}

/// A VPN prefix: route distinguisher plus IPv4 or IPv6 prefix (host bits zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VpnPrefix {
    /// The route distinguisher that makes the prefix unique across VPNs.
    pub rd: RouteDistinguisher,
    /// The customer prefix.
    pub prefix: IpNet,
}

impl VpnPrefix {
    /// A VPN prefix; host bits of `prefix` are cleared.
    pub fn new(rd: RouteDistinguisher, prefix: IpNet) -> VpnPrefix {
        VpnPrefix {
            rd,
            prefix: prefix.trunc(),
        }
    }

    /// The address family of this prefix.
    pub fn family(&self) -> Family {
        Family::vpn_of(&self.prefix)
    }
}

impl fmt::Display for VpnPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.rd, self.prefix)
    }
}

/// One labeled VPN route in an NLRI field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VpnNlri {
    /// Route distinguisher and prefix.
    pub prefix: VpnPrefix,
    /// The MPLS label the advertiser expects on packets to this prefix.
    pub label: Label,
}

impl VpnNlri {
    /// Octets this NLRI occupies on the wire.
    pub fn wire_len(prefix: &VpnPrefix) -> usize {
        1 + LABEL_LEN + RD_LEN + usize::from(prefix.prefix.prefix_len()).div_ceil(8)
    }

    /// Appends the NLRI (RFC 8277 §2.2, one label with bottom-of-stack set),
    /// or, with `label` None, the withdrawal form (RFC 8277 §2.4).
    pub fn emit(prefix: &VpnPrefix, label: Option<Label>, out: &mut Vec<u8>) {
        let len = prefix.prefix.prefix_len();
        out.push(LABEL_RD_BITS + len);
        match label {
            Some(label) => {
                let field = (label.value() << 4) | 1;
                out.extend_from_slice(&field.to_be_bytes()[1..]);
            }
            None => out.extend_from_slice(&WITHDRAW_LABEL_FIELD),
        }
        out.extend_from_slice(&prefix.rd.0);
        let octets = usize::from(len).div_ceil(8);
        match prefix.prefix.addr() {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()[..octets]),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()[..octets]),
        }
    }

    /// Parses every NLRI in `buf` for family `afi` into `out`. Any error is
    /// fatal for the UPDATE (RFC 7606 §5.3: NLRI that cannot be parsed
    /// leave no way to know which routes to withdraw).
    pub fn parse_all(
        afi_code: u16,
        mut buf: &[u8],
        out: &mut Vec<VpnNlri>,
    ) -> Result<(), DecodeError> {
        let max_bits: u8 = match afi_code {
            afi::IPV4 => 32,
            afi::IPV6 => 128,
            _ => {
                return Err(DecodeError::OptionalAttribute(
                    super::iana::attr_type::MP_REACH_NLRI,
                ));
            }
        };
        while let Some((&bits, rest)) = buf.split_first() {
            // Label and RD must fit, and the prefix must fit the family.
            let prefix_bits = bits
                .checked_sub(LABEL_RD_BITS)
                .filter(|b| *b <= max_bits)
                .ok_or(DecodeError::InvalidNetworkField)?;
            let octets = usize::from(prefix_bits).div_ceil(8);
            let need = LABEL_LEN + RD_LEN + octets;
            if rest.len() < need {
                return Err(DecodeError::InvalidNetworkField);
            }
            let label_field = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]);
            let label =
                Label::new(label_field >> 4).map_err(|_| DecodeError::InvalidNetworkField)?;
            let mut rd = [0u8; RD_LEN];
            rd.copy_from_slice(&rest[LABEL_LEN..LABEL_LEN + RD_LEN]);
            let addr_bytes = &rest[LABEL_LEN + RD_LEN..need];
            let prefix = match afi_code {
                afi::IPV4 => {
                    let mut a = [0u8; 4];
                    a[..octets].copy_from_slice(addr_bytes);
                    IpNet::V4(
                        Ipv4Net::new(Ipv4Addr::from(a), prefix_bits)
                            .map_err(|_| DecodeError::InvalidNetworkField)?,
                    )
                }
                _ => {
                    let mut a = [0u8; 16];
                    a[..octets].copy_from_slice(addr_bytes);
                    IpNet::V6(
                        Ipv6Net::new(Ipv6Addr::from(a), prefix_bits)
                            .map_err(|_| DecodeError::InvalidNetworkField)?,
                    )
                }
            };
            out.push(VpnNlri {
                prefix: VpnPrefix::new(RouteDistinguisher(rd), prefix),
                label,
            });
            buf = &rest[need..];
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10.1.2.0/24, label 100, RD 65000:7 (RFC 8277 §2.2 layout).
    static VPNV4_NLRI: [u8; 15] = [
        112, // 24 label + 64 RD + 24 prefix bits
        0x00, 0x06, 0x41, // label 100 << 4 | bottom of stack
        0, 0, 0xfd, 0xe8, 0, 0, 0, 7, // RD type 0 65000:7
        10, 1, 2,
    ];

    fn sample() -> VpnNlri {
        VpnNlri {
            prefix: VpnPrefix::new("65000:7".parse().unwrap(), "10.1.2.0/24".parse().unwrap()),
            label: Label::new(100).unwrap(),
        }
    }

    #[test]
    fn parses_a_vpnv4_nlri() {
        let mut out = Vec::new();
        VpnNlri::parse_all(afi::IPV4, &VPNV4_NLRI, &mut out).unwrap();
        assert_eq!(out, vec![sample()]);
    }

    #[test]
    fn emits_a_vpnv4_nlri() {
        let mut out = Vec::new();
        VpnNlri::emit(&sample().prefix, Some(sample().label), &mut out);
        assert_eq!(out, VPNV4_NLRI);
        assert_eq!(VpnNlri::wire_len(&sample().prefix), VPNV4_NLRI.len());
    }

    #[test]
    fn truncated_or_overlong_nlri_is_an_invalid_network_field() {
        let mut out = Vec::new();
        let e = VpnNlri::parse_all(afi::IPV4, &VPNV4_NLRI[..14], &mut out);
        assert_eq!(e, Err(DecodeError::InvalidNetworkField));
        let mut long = VPNV4_NLRI;
        long[0] = 88 + 33; // a /33 in IPv4
        assert_eq!(
            VpnNlri::parse_all(afi::IPV4, &long, &mut out),
            Err(DecodeError::InvalidNetworkField)
        );
        let mut short = VPNV4_NLRI;
        short[0] = 80; // shorter than label + RD
        assert_eq!(
            VpnNlri::parse_all(afi::IPV4, &short, &mut out),
            Err(DecodeError::InvalidNetworkField)
        );
    }

    #[test]
    fn route_distinguisher_types_round_trip_as_text() {
        for text in ["65000:7", "10.0.0.1:3", "4200000000:9"] {
            let rd: RouteDistinguisher = text.parse().unwrap();
            assert_eq!(rd.to_string(), text);
        }
        assert_eq!(
            RouteDistinguisher::from_ipv4(Ipv4Addr::new(10, 0, 0, 1), 3).to_string(),
            "10.0.0.1:3"
        );
        assert!("x:1".parse::<RouteDistinguisher>().is_err());
    }

    #[test]
    fn route_target_text_and_ext_community_agree() {
        let rt: RouteTarget = "65000:100".parse().unwrap();
        assert_eq!(rt.0, [0, 2, 0xfd, 0xe8, 0, 0, 0, 100]);
        assert_eq!(RouteTarget::from_ext_community(rt.0), Some(rt));
        assert_eq!(rt.to_string(), "65000:100");
        // Sub-type 0x03 is Route Origin, not a target.
        assert_eq!(
            RouteTarget::from_ext_community([0, 3, 0, 0, 0, 0, 0, 1]),
            None
        );
    }
}
