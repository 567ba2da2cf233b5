//! MPLS label values and label stack entries (RFC 3032).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                Label                  | TC  |S|      TTL      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//! RFC 3032 §2.1; TC (formerly EXP) is named by RFC 5462.

use crate::packet::error::{Error, Layer, need};
use thiserror::Error;

/// A 20-bit MPLS label value (RFC 3032 §2.1).
///
/// Constructed only through [`Label::new`] or [`Label::for_vrf`]: a value that
/// does not fit in 20 bits is an error, never silently masked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label(u32);

/// Why a number is not a usable label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum LabelError {
    /// The value needs more than 20 bits.
    #[error("MPLS label {0} does not fit in 20 bits")]
    TooLarge(u32),
    /// Labels 0-15 are reserved (RFC 3032 §2.1, RFC 7274) and cannot name a VRF.
    #[error("MPLS label {0} is reserved (0-15) and cannot identify a VRF")]
    Reserved(u32),
}

impl Label {
    /// The largest label value, 2^20 - 1.
    pub const MAX: u32 = (1 << 20) - 1;
    /// The first label that is not reserved (RFC 3032 §2.1).
    pub const FIRST_UNRESERVED: u32 = 16;
    /// IPv4 Explicit NULL (RFC 3032 §2.1).
    pub const IPV4_EXPLICIT_NULL: Label = Label(0);
    /// IPv6 Explicit NULL (RFC 3032 §2.1).
    pub const IPV6_EXPLICIT_NULL: Label = Label(2);

    /// Any 20-bit label value, reserved ones included (as read off the wire).
    pub const fn new(value: u32) -> Result<Label, LabelError> {
        if value > Self::MAX {
            Err(LabelError::TooLarge(value))
        } else {
            Ok(Label(value))
        }
    }

    /// A label that may identify a VRF: 20 bits and not reserved.
    pub const fn for_vrf(value: u32) -> Result<Label, LabelError> {
        if value > Self::MAX {
            Err(LabelError::TooLarge(value))
        } else if value < Self::FIRST_UNRESERVED {
            Err(LabelError::Reserved(value))
        } else {
            Ok(Label(value))
        }
    }

    /// The numeric value.
    pub const fn value(self) -> u32 {
        self.0
    }

    /// True for the reserved range 0-15.
    pub const fn is_reserved(self) -> bool {
        self.0 < Self::FIRST_UNRESERVED
    }
}

impl TryFrom<u32> for Label {
    type Error = LabelError;

    fn try_from(value: u32) -> Result<Label, LabelError> {
        Label::new(value)
    }
}

impl From<Label> for u32 {
    fn from(label: Label) -> u32 {
        label.0
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Field layout of one label stack entry: a single 32-bit big-endian word.
mod field {
    use std::ops::Range;

    pub const ENTRY: Range<usize> = 0..4;
    pub const LABEL_SHIFT: u32 = 12;
    pub const TC_SHIFT: u32 = 9;
    pub const TC_MASK: u32 = 0x7;
    pub const BOTTOM_OF_STACK: u32 = 1 << 8;
    pub const TTL_MASK: u32 = 0xff;
}

/// Length of one label stack entry.
pub const HEADER_LEN: usize = field::ENTRY.end;

/// The largest traffic class value (3 bits, RFC 5462).
pub const MAX_TRAFFIC_CLASS: u8 = 0x7;

/// A zero-copy view of one label stack entry in a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking its length; getters panic on a short
    /// buffer. Use [`Packet::new_checked`] for untrusted bytes.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after checking it holds a whole entry.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the buffer holds a whole entry. No setter can break this.
    pub fn check_len(&self) -> Result<(), Error> {
        need(Layer::Mpls, HEADER_LEN, self.buffer.as_ref().len())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn word(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::ENTRY];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The label value; 20 bits always fit, so this cannot fail.
    pub fn label(&self) -> Label {
        Label(self.word() >> field::LABEL_SHIFT)
    }

    /// The traffic class (RFC 5462).
    pub fn traffic_class(&self) -> u8 {
        ((self.word() >> field::TC_SHIFT) & field::TC_MASK) as u8
    }

    /// The bottom-of-stack bit: set on the last entry.
    pub fn bottom_of_stack(&self) -> bool {
        self.word() & field::BOTTOM_OF_STACK != 0
    }

    /// The MPLS TTL.
    pub fn ttl(&self) -> u8 {
        (self.word() & field::TTL_MASK) as u8
    }

    /// The bytes after this entry.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_word(&mut self, word: u32) {
        self.buffer.as_mut()[field::ENTRY].copy_from_slice(&word.to_be_bytes());
    }

    /// Sets the label.
    pub fn set_label(&mut self, label: Label) {
        let w = self.word() & ((1 << field::LABEL_SHIFT) - 1);
        self.set_word(w | (label.0 << field::LABEL_SHIFT));
    }

    /// Sets the traffic class; bits above the low three are ignored.
    pub fn set_traffic_class(&mut self, tc: u8) {
        let w = self.word() & !(field::TC_MASK << field::TC_SHIFT);
        self.set_word(w | ((u32::from(tc) & field::TC_MASK) << field::TC_SHIFT));
    }

    /// Sets the bottom-of-stack bit.
    pub fn set_bottom_of_stack(&mut self, bottom: bool) {
        let w = self.word() & !field::BOTTOM_OF_STACK;
        self.set_word(if bottom {
            w | field::BOTTOM_OF_STACK
        } else {
            w
        });
    }

    /// Sets the MPLS TTL.
    pub fn set_ttl(&mut self, ttl: u8) {
        let w = self.word() & !field::TTL_MASK;
        self.set_word(w | u32::from(ttl));
    }
}

/// The high-level form of one label stack entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LabelStackEntry {
    /// The label.
    pub label: Label,
    /// Traffic class, 0-7 (RFC 5462).
    pub traffic_class: u8,
    /// Set on the last entry of the stack.
    pub bottom_of_stack: bool,
    /// MPLS TTL.
    pub ttl: u8,
}

impl LabelStackEntry {
    /// The single entry the overlay pushes: a VRF label at the bottom of the
    /// stack with TTL 255, because the overlay runs the short-pipe model
    /// (RFC 3443 §3.3): the tenant's IP TTL is decremented once per overlay
    /// hop by the forwarder, and the MPLS TTL is not copied from it.
    pub const fn vrf(label: Label) -> LabelStackEntry {
        LabelStackEntry {
            label,
            traffic_class: 0,
            bottom_of_stack: true,
            ttl: 255,
        }
    }

    /// Reads an entry. Every bit pattern is a valid entry, so this fails only
    /// on a short buffer.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<LabelStackEntry, Error> {
        packet.check_len()?;
        Ok(LabelStackEntry {
            label: packet.label(),
            traffic_class: packet.traffic_class(),
            bottom_of_stack: packet.bottom_of_stack(),
            ttl: packet.ttl(),
        })
    }

    /// Bytes [`LabelStackEntry::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the entry. A traffic class above 7 is truncated to 3 bits.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let word = (self.label.0 << field::LABEL_SHIFT)
            | ((u32::from(self.traffic_class) & field::TC_MASK) << field::TC_SHIFT)
            | if self.bottom_of_stack {
                field::BOTTOM_OF_STACK
            } else {
                0
            }
            | u32::from(self.ttl);
        packet.set_word(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Label 1000 (0x003e8), TC 5, S=1, TTL 64: 0x003e8 << 12 | 5 << 9 | 1 << 8 | 0x40.
    static ENTRY_BYTES: [u8; 4] = [0x00, 0x3e, 0x8b, 0x40];

    fn entry_repr() -> LabelStackEntry {
        LabelStackEntry {
            label: Label::new(1000).unwrap(),
            traffic_class: 5,
            bottom_of_stack: true,
            ttl: 64,
        }
    }

    #[test]
    fn deconstruct_reads_each_field() {
        let packet = Packet::new_checked(&ENTRY_BYTES[..]).unwrap();
        assert_eq!(packet.label().value(), 1000);
        assert_eq!(packet.traffic_class(), 5);
        assert!(packet.bottom_of_stack());
        assert_eq!(packet.ttl(), 64);
    }

    #[test]
    fn construct_with_setters_gives_rfc_layout() {
        let mut bytes = [0xffu8; 4];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_label(Label::new(1000).unwrap());
        packet.set_traffic_class(5);
        packet.set_bottom_of_stack(true);
        packet.set_ttl(64);
        assert_eq!(bytes, ENTRY_BYTES);
    }

    #[test]
    fn parse_gives_repr() {
        let packet = Packet::new_checked(&ENTRY_BYTES[..]).unwrap();
        assert_eq!(LabelStackEntry::parse(&packet), Ok(entry_repr()));
    }

    #[test]
    fn emit_gives_bytes() {
        let mut bytes = [0u8; 4];
        entry_repr().emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, ENTRY_BYTES);
    }

    #[test]
    fn largest_label_round_trips() {
        let mut bytes = [0u8; 4];
        let entry = LabelStackEntry::vrf(Label::new(Label::MAX).unwrap());
        entry.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, [0xff, 0xff, 0xf1, 0xff]);
        let back = LabelStackEntry::parse(&Packet::new_unchecked(&bytes[..])).unwrap();
        assert_eq!(back, entry);
    }

    #[test]
    fn short_buffer_is_truncated_error() {
        assert_eq!(
            Packet::new_checked(&ENTRY_BYTES[..3]).map(|_| ()),
            Err(Error::Truncated {
                layer: Layer::Mpls,
                needed: 4,
                available: 3
            })
        );
    }

    #[test]
    fn label_rejects_values_over_20_bits() {
        assert_eq!(Label::new(1 << 20), Err(LabelError::TooLarge(1 << 20)));
        assert_eq!(Label::new(Label::MAX).map(Label::value), Ok(Label::MAX));
    }

    #[test]
    fn vrf_label_rejects_reserved_range() {
        for v in 0..16 {
            assert_eq!(Label::for_vrf(v), Err(LabelError::Reserved(v)));
        }
        assert_eq!(Label::for_vrf(16).map(Label::value), Ok(16));
    }
}
