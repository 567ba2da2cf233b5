//! A payload that is one number, as text: `21.5`, ` 415 `, `-3e2`.

use super::{DecodeError, Sample};

/// The field name a plain number gets (for the `{field}` placeholder).
pub const FIELD: &str = "value";

/// Decodes one number; surrounding ASCII whitespace is ignored.
pub fn decode(payload: &[u8], emit: &mut dyn FnMut(Sample<'_>)) -> Result<usize, DecodeError> {
    let text = std::str::from_utf8(payload).map_err(|_| DecodeError::NotUtf8)?;
    let text = text.trim_ascii();
    // `f64::from_str` takes "inf" and "NaN" too; both are refused below.
    let value: f64 = text.parse().map_err(|_| DecodeError::NotANumber)?;
    if !value.is_finite() {
        return Err(DecodeError::NotFinite);
    }
    emit(Sample {
        field: FIELD,
        node: None,
        index: None,
        value,
        timestamp: None,
    });
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(payload: &[u8]) -> Result<f64, DecodeError> {
        let mut got = None;
        decode(payload, &mut |s| got = Some(s.value))?;
        Ok(got.expect("one sample"))
    }

    #[test]
    fn reads_integers_decimals_and_exponents() {
        assert_eq!(one(b"415"), Ok(415.0));
        assert_eq!(one(b" 21.5\n"), Ok(21.5));
        assert_eq!(one(b"-3e2"), Ok(-300.0));
    }

    #[test]
    fn refuses_text_nan_and_infinity() {
        assert_eq!(one(b"warm"), Err(DecodeError::NotANumber));
        assert_eq!(one(b""), Err(DecodeError::NotANumber));
        assert_eq!(one(b"NaN"), Err(DecodeError::NotFinite));
        assert_eq!(one(b"inf"), Err(DecodeError::NotFinite));
        assert_eq!(one(b"1e400"), Err(DecodeError::NotFinite));
        assert_eq!(one(&[0xff, 0xfe]), Err(DecodeError::NotUtf8));
    }
}
