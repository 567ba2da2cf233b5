//! GRE headers (RFC 2784) with the key and sequence number extensions
//! (RFC 2890), as MPLS-in-GRE (RFC 4023) uses them.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |C| |K|S| Reserved0       | Ver |         Protocol Type         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |      Checksum (optional)      |       Reserved1 (Optional)    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         Key (optional)                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Sequence Number (Optional)                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//! Written by hand: `etherparse` does not model GRE.

use crate::packet::checksum::Sum;
use crate::packet::error::{Error, Layer, need};

mod field {
    use std::ops::Range;

    pub const FLAGS_VERSION: Range<usize> = 0..2;
    pub const PROTOCOL: Range<usize> = 2..4;
    /// Each optional field is one 32-bit word, in this order after the
    /// fixed header: checksum + reserved1, key, sequence number.
    pub const OPTIONAL_WORD: usize = 4;

    pub const CHECKSUM_PRESENT: u16 = 0x8000;
    pub const KEY_PRESENT: u16 = 0x2000;
    pub const SEQUENCE_PRESENT: u16 = 0x1000;
    /// Bits 1, 4 and 5: RFC 1701's routing, strict source route and the
    /// top recursion bit; RFC 2784 §2.3 says to discard a packet with any set.
    pub const MUST_BE_ZERO: u16 = 0x4c00;
    pub const VERSION: u16 = 0x0007;
}

/// Length of the fixed GRE header.
pub const HEADER_LEN: usize = field::PROTOCOL.end;

/// GRE protocol type of MPLS unicast (RFC 4023 §4.1, the Ethertype 0x8847).
pub const PROTOCOL_MPLS_UNICAST: u16 = 0x8847;

/// A zero-copy view of a GRE header followed by its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checks; getters may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the buffer holds the fixed header and every optional field
    /// its flags announce. [`Packet::set_flags`] can break this.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        need(Layer::Gre, HEADER_LEN, len)?;
        need(Layer::Gre, self.header_len(), len)
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    fn u32_at(&self, at: usize) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    /// The flags and version word.
    pub fn flags(&self) -> u16 {
        self.u16_at(field::FLAGS_VERSION.start)
    }

    /// True when the checksum field is present (C bit).
    pub fn checksum_present(&self) -> bool {
        self.flags() & field::CHECKSUM_PRESENT != 0
    }

    /// True when the key field is present (K bit, RFC 2890 §2).
    pub fn key_present(&self) -> bool {
        self.flags() & field::KEY_PRESENT != 0
    }

    /// True when the sequence number is present (S bit, RFC 2890 §2).
    pub fn sequence_present(&self) -> bool {
        self.flags() & field::SEQUENCE_PRESENT != 0
    }

    /// The version; 0 for RFC 2784 GRE.
    pub fn version(&self) -> u8 {
        (self.flags() & field::VERSION) as u8
    }

    /// The protocol type of the payload (an Ethertype).
    pub fn protocol_type(&self) -> u16 {
        self.u16_at(field::PROTOCOL.start)
    }

    /// The header length the flags announce.
    pub fn header_len(&self) -> usize {
        HEADER_LEN
            + field::OPTIONAL_WORD
                * (usize::from(self.checksum_present())
                    + usize::from(self.key_present())
                    + usize::from(self.sequence_present()))
    }

    fn optional_offset(&self, before: usize) -> usize {
        HEADER_LEN + field::OPTIONAL_WORD * before
    }

    /// The checksum, if present.
    pub fn checksum(&self) -> Option<u16> {
        self.checksum_present().then(|| self.u16_at(HEADER_LEN))
    }

    /// The key, if present.
    pub fn key(&self) -> Option<u32> {
        let at = self.optional_offset(usize::from(self.checksum_present()));
        self.key_present().then(|| self.u32_at(at))
    }

    /// The sequence number, if present.
    pub fn sequence(&self) -> Option<u32> {
        let at = self.optional_offset(
            usize::from(self.checksum_present()) + usize::from(self.key_present()),
        );
        self.sequence_present().then(|| self.u32_at(at))
    }

    /// The payload after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// True when there is no checksum or it verifies over header and
    /// payload (RFC 2784 §2.5).
    pub fn verify_checksum(&self) -> bool {
        !self.checksum_present() || Sum::new().add_bytes(self.buffer.as_ref()).verifies()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_u16_at(&mut self, at: usize, v: u16) {
        self.buffer.as_mut()[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }

    fn set_u32_at(&mut self, at: usize, v: u32) {
        self.buffer.as_mut()[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the flags and version word. Changing the C, K or S bits moves
    /// the optional fields and may break [`Packet::check_len`].
    pub fn set_flags(&mut self, flags: u16) {
        self.set_u16_at(field::FLAGS_VERSION.start, flags);
    }

    /// Sets the protocol type.
    pub fn set_protocol_type(&mut self, protocol: u16) {
        self.set_u16_at(field::PROTOCOL.start, protocol);
    }

    /// Sets the key; the K bit must be set.
    pub fn set_key(&mut self, key: u32) {
        let at = self.optional_offset(usize::from(self.checksum_present()));
        self.set_u32_at(at, key);
    }

    /// Sets the sequence number; the S bit must be set.
    pub fn set_sequence(&mut self, sequence: u32) {
        let at = self.optional_offset(
            usize::from(self.checksum_present()) + usize::from(self.key_present()),
        );
        self.set_u32_at(at, sequence);
    }

    /// Computes and writes the checksum over header and payload, with
    /// Reserved1 zero; the C bit must be set.
    pub fn fill_checksum(&mut self) {
        self.set_u32_at(HEADER_LEN, 0);
        let sum = Sum::new().add_bytes(self.buffer.as_ref()).checksum();
        self.set_u16_at(HEADER_LEN, sum);
    }
}

/// The high-level form of a GRE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GreRepr {
    /// The payload's Ethertype.
    pub protocol_type: u16,
    /// Whether a checksum is present (filled by [`GreRepr::emit`]).
    pub checksum: bool,
    /// The key (RFC 2890 §2.1), if present.
    pub key: Option<u32>,
    /// The sequence number (RFC 2890 §2.2), if present.
    pub sequence: Option<u32>,
}

impl GreRepr {
    /// Parses and validates a header: version 0, the RFC 1701 bits clear
    /// (RFC 2784 §2.3), the checksum verified when present and asked for.
    pub fn parse<T: AsRef<[u8]>>(
        packet: &Packet<T>,
        verify_checksum: bool,
    ) -> Result<GreRepr, Error> {
        packet.check_len()?;
        if packet.flags() & field::MUST_BE_ZERO != 0 {
            return Err(Error::Malformed {
                layer: Layer::Gre,
                reason: "RFC 1701 routing or source-route bits set",
            });
        }
        if packet.version() != 0 {
            return Err(Error::Malformed {
                layer: Layer::Gre,
                reason: "version is not 0",
            });
        }
        if verify_checksum && !packet.verify_checksum() {
            return Err(Error::BadChecksum(Layer::Gre));
        }
        Ok(GreRepr {
            protocol_type: packet.protocol_type(),
            checksum: packet.checksum_present(),
            key: packet.key(),
            sequence: packet.sequence(),
        })
    }

    /// The header length.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
            + field::OPTIONAL_WORD
                * (self.checksum as usize
                    + self.key.is_some() as usize
                    + self.sequence.is_some() as usize)
    }

    /// Writes the header into the front of `packet` (whose buffer holds the
    /// header and then the payload). With `checksum` set the checksum is
    /// computed over header and payload, so the payload must already be in
    /// place.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let mut flags = 0;
        if self.checksum {
            flags |= field::CHECKSUM_PRESENT;
        }
        if self.key.is_some() {
            flags |= field::KEY_PRESENT;
        }
        if self.sequence.is_some() {
            flags |= field::SEQUENCE_PRESENT;
        }
        packet.set_flags(flags);
        packet.set_protocol_type(self.protocol_type);
        if let Some(key) = self.key {
            packet.set_key(key);
        }
        if let Some(sequence) = self.sequence {
            packet.set_sequence(sequence);
        }
        if self.checksum {
            packet.fill_checksum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// C, K and S set, MPLS unicast, checksum over these 16 bytes + payload
    /// [0x12, 0x34], key 0x01020304, sequence 7.
    static HEADER_WITH_ALL_FIELDS: [u8; 18] = [
        0xb0, 0x00, 0x88, 0x47, // C K S, version 0, protocol 0x8847
        0xb1, 0x76, 0x00, 0x00, // checksum, reserved1
        0x01, 0x02, 0x03, 0x04, // key
        0x00, 0x00, 0x00, 0x07, // sequence
        0x12, 0x34, // payload
    ];

    fn repr() -> GreRepr {
        GreRepr {
            protocol_type: PROTOCOL_MPLS_UNICAST,
            checksum: true,
            key: Some(0x0102_0304),
            sequence: Some(7),
        }
    }

    #[test]
    fn deconstruct_reads_optional_fields() {
        let p = Packet::new_checked(&HEADER_WITH_ALL_FIELDS[..]).unwrap();
        assert_eq!(p.header_len(), 16);
        assert_eq!(p.protocol_type(), 0x8847);
        assert_eq!(p.checksum(), Some(0xb176));
        assert_eq!(p.key(), Some(0x0102_0304));
        assert_eq!(p.sequence(), Some(7));
        assert_eq!(p.payload(), &[0x12, 0x34]);
        assert!(p.verify_checksum());
    }

    #[test]
    fn parse_gives_repr() {
        let p = Packet::new_checked(&HEADER_WITH_ALL_FIELDS[..]).unwrap();
        assert_eq!(GreRepr::parse(&p, true), Ok(repr()));
    }

    #[test]
    fn emit_gives_bytes() {
        let mut bytes = [0u8; 18];
        bytes[16..].copy_from_slice(&[0x12, 0x34]);
        repr().emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, HEADER_WITH_ALL_FIELDS);
        assert_eq!(repr().buffer_len(), 16);
    }

    #[test]
    fn construct_plain_header() {
        let mut bytes = [0xffu8; 4];
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        p.set_flags(0);
        p.set_protocol_type(PROTOCOL_MPLS_UNICAST);
        assert_eq!(bytes, [0x00, 0x00, 0x88, 0x47]);
    }

    #[test]
    fn corrupted_checksum_is_refused() {
        let mut bytes = HEADER_WITH_ALL_FIELDS;
        bytes[17] ^= 1;
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            GreRepr::parse(&p, true),
            Err(Error::BadChecksum(Layer::Gre))
        );
        assert!(GreRepr::parse(&p, false).is_ok());
    }

    #[test]
    fn announced_fields_beyond_the_buffer_are_truncated() {
        let p = Packet::new_checked(&HEADER_WITH_ALL_FIELDS[..10]);
        assert_eq!(
            p.map(|_| ()),
            Err(Error::Truncated {
                layer: Layer::Gre,
                needed: 16,
                available: 10
            })
        );
    }

    #[test]
    fn rfc1701_routing_bit_and_other_versions_are_refused() {
        for first_two in [[0x40, 0x00], [0x00, 0x01]] {
            let bytes = [first_two[0], first_two[1], 0x88, 0x47];
            let p = Packet::new_checked(&bytes[..]).unwrap();
            assert!(matches!(
                GreRepr::parse(&p, true),
                Err(Error::Malformed {
                    layer: Layer::Gre,
                    ..
                })
            ));
        }
    }
}
