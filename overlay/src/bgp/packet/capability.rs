//! OPEN capabilities (RFC 5492) the speaker understands; any other is kept
//! as [`Capability::Unknown`] and ignored, as RFC 5492 §3 asks.

use super::error::DecodeError;
use super::iana::capability_code as code;
use super::nlri::Family;

/// One address family in a graceful restart capability (RFC 4724 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GracefulRestartFamily {
    /// The family.
    pub family: Family,
    /// Forwarding state for it was preserved across the restart (F bit).
    pub forwarding_preserved: bool,
}

/// The graceful restart capability (RFC 4724 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracefulRestart {
    /// Restart State bit: the sender has just restarted.
    pub restarting: bool,
    /// Seconds the peer should keep our routes while we restart (12 bits).
    pub restart_time: u16,
    /// Families for which the sender can preserve forwarding state.
    pub families: Vec<GracefulRestartFamily>,
}

/// A capability from an OPEN message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// Multiprotocol extensions for one family (RFC 4760 §8).
    Multiprotocol(Family),
    /// Route refresh (RFC 2918).
    RouteRefresh,
    /// Extended next hop: NLRI family with the next hop AFI it may carry (RFC 8950 §3).
    ExtendedNextHop(Vec<(Family, u16)>),
    /// Graceful restart (RFC 4724).
    GracefulRestart(GracefulRestart),
    /// Four-octet AS number support, with the speaker's AS (RFC 6793 §3).
    FourOctetAs(u32),
    /// Any capability we do not use.
    Unknown {
        /// Capability code.
        code: u8,
        /// Raw value.
        value: Vec<u8>,
    },
}

/// Mask of the restart time in the flags/time field (RFC 4724 §3).
const RESTART_TIME_MASK: u16 = 0x0fff;
/// Restart State bit.
const RESTART_STATE_BIT: u16 = 0x8000;
/// Forwarding state preserved bit in a family's flags.
const FORWARDING_BIT: u8 = 0x80;

impl Capability {
    /// Parses one capability's value. A capability we know with a value of
    /// the wrong size is ignored like an unknown one rather than failing the
    /// session: RFC 5492 gives no NOTIFICATION for it, and RFC 4724 §3 says
    /// a malformed GR capability is simply not used.
    pub fn parse(cap_code: u8, value: &[u8]) -> Capability {
        let unknown = || Capability::Unknown {
            code: cap_code,
            value: value.to_vec(),
        };
        match (cap_code, value.len()) {
            (code::MULTIPROTOCOL, 4) => Capability::Multiprotocol(Family {
                afi: u16::from_be_bytes([value[0], value[1]]),
                safi: value[3],
            }),
            (code::ROUTE_REFRESH, 0) => Capability::RouteRefresh,
            (code::FOUR_OCTET_AS, 4) => Capability::FourOctetAs(u32::from_be_bytes([
                value[0], value[1], value[2], value[3],
            ])),
            (code::EXTENDED_NEXT_HOP, n) if n % 6 == 0 => Capability::ExtendedNextHop(
                value
                    .chunks_exact(6)
                    .map(|c| {
                        let family = Family {
                            afi: u16::from_be_bytes([c[0], c[1]]),
                            // The SAFI is two octets here (RFC 8950 §3).
                            safi: c[3],
                        };
                        (family, u16::from_be_bytes([c[4], c[5]]))
                    })
                    .collect(),
            ),
            (code::GRACEFUL_RESTART, n) if n >= 2 && (n - 2) % 4 == 0 => {
                let flags_time = u16::from_be_bytes([value[0], value[1]]);
                Capability::GracefulRestart(GracefulRestart {
                    restarting: flags_time & RESTART_STATE_BIT != 0,
                    restart_time: flags_time & RESTART_TIME_MASK,
                    families: value[2..]
                        .chunks_exact(4)
                        .map(|c| GracefulRestartFamily {
                            family: Family {
                                afi: u16::from_be_bytes([c[0], c[1]]),
                                safi: c[2],
                            },
                            forwarding_preserved: c[3] & FORWARDING_BIT != 0,
                        })
                        .collect(),
                })
            }
            _ => unknown(),
        }
    }

    /// Appends the capability TLV (code, length, value).
    pub fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0, 0]);
        let cap_code = match self {
            Capability::Multiprotocol(f) => {
                out.extend_from_slice(&f.afi.to_be_bytes());
                out.extend_from_slice(&[0, f.safi]);
                code::MULTIPROTOCOL
            }
            Capability::RouteRefresh => code::ROUTE_REFRESH,
            Capability::FourOctetAs(asn) => {
                out.extend_from_slice(&asn.to_be_bytes());
                code::FOUR_OCTET_AS
            }
            Capability::ExtendedNextHop(entries) => {
                for (f, nh_afi) in entries {
                    out.extend_from_slice(&f.afi.to_be_bytes());
                    out.extend_from_slice(&u16::from(f.safi).to_be_bytes());
                    out.extend_from_slice(&nh_afi.to_be_bytes());
                }
                code::EXTENDED_NEXT_HOP
            }
            Capability::GracefulRestart(gr) => {
                let mut flags_time = gr.restart_time & RESTART_TIME_MASK;
                if gr.restarting {
                    flags_time |= RESTART_STATE_BIT;
                }
                out.extend_from_slice(&flags_time.to_be_bytes());
                for f in &gr.families {
                    out.extend_from_slice(&f.family.afi.to_be_bytes());
                    out.push(f.family.safi);
                    out.push(if f.forwarding_preserved {
                        FORWARDING_BIT
                    } else {
                        0
                    });
                }
                code::GRACEFUL_RESTART
            }
            Capability::Unknown { code, value } => {
                out.extend_from_slice(value);
                *code
            }
        };
        out[start] = cap_code;
        // Capability values we build are far below 255 octets.
        out[start + 1] = u8::try_from(out.len() - start - 2).unwrap_or(u8::MAX);
    }

    /// Parses the value of one "capabilities" optional parameter (a list of
    /// TLVs) into `out`.
    pub fn parse_list(mut buf: &[u8], out: &mut Vec<Capability>) -> Result<(), DecodeError> {
        while !buf.is_empty() {
            if buf.len() < 2 || buf.len() < 2 + usize::from(buf[1]) {
                // RFC 4271 §6.2 has no better subcode for a parameter whose
                // contents overrun it than Unspecific; we use the one for
                // optional parameters, which names the part that is wrong.
                return Err(DecodeError::UnsupportedOptionalParameter(
                    super::iana::OPT_PARAM_CAPABILITIES,
                ));
            }
            let len = usize::from(buf[1]);
            out.push(Capability::parse(buf[0], &buf[2..2 + len]));
            buf = &buf[2 + len..];
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graceful_restart_round_trips() {
        let cap = Capability::GracefulRestart(GracefulRestart {
            restarting: true,
            restart_time: 120,
            families: vec![GracefulRestartFamily {
                family: Family::VPNV4,
                forwarding_preserved: true,
            }],
        });
        let mut out = Vec::new();
        cap.emit(&mut out);
        assert_eq!(out, [64, 6, 0x80, 120, 0, 1, 128, 0x80]);
        assert_eq!(Capability::parse(out[0], &out[2..]), cap);
    }

    #[test]
    fn unknown_and_malformed_capabilities_are_kept_as_unknown() {
        assert_eq!(
            Capability::parse(200, &[1, 2]),
            Capability::Unknown {
                code: 200,
                value: vec![1, 2]
            }
        );
        // A multiprotocol capability of the wrong length is not a family.
        assert!(matches!(
            Capability::parse(1, &[0, 1, 0]),
            Capability::Unknown { .. }
        ));
    }

    #[test]
    fn capability_overrunning_its_parameter_is_an_open_error() {
        let mut out = Vec::new();
        assert!(Capability::parse_list(&[1, 4, 0, 1], &mut out).is_err());
    }
}
