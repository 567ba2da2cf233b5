//! MPLS label values and label stack entries (RFC 3032).

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

#[cfg(test)]
mod tests {
    use super::*;

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
