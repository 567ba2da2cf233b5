//! Payload decoders: MQTT message bytes -> samples (field, value, timestamp).
//!
//! Decoders are pure functions of the payload: no I/O, no clock (a sample
//! without its own timestamp carries `None` and the caller stamps it with the
//! receive time). Every decoder rejects what it cannot read with a
//! [`DecodeError`] and never panics; each has a cargo-fuzz target in
//! `agent/fuzz`.

pub mod iqrf;
pub mod json;
pub mod plain;
pub mod time;

use serde::Deserialize;
use std::collections::BTreeMap;

/// Payloads larger than this are rejected before parsing (an IQRF FRC
/// response for a full 239-node network is about 60 KiB).
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// One decoded measurement, before it is given a Graphite path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    /// What was measured: the JSON field's metric name, `value` for a plain
    /// number, the IQRF quantity name (`temperature`, `co2`, ...).
    pub field: &'a str,
    /// The IQRF node address (`nAdr` / `nadr` / `address`), if any.
    pub node: Option<u16>,
    /// The sensor's index on its IQRF node, if known.
    pub index: Option<u8>,
    /// The value, always finite.
    pub value: f64,
    /// Unix seconds from the message itself, if it carried a timestamp.
    pub timestamp: Option<i64>,
}

/// Why a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The payload is larger than [`MAX_PAYLOAD_BYTES`].
    #[error("payload of {0} bytes is larger than the limit")]
    TooLarge(usize),
    /// The payload is not UTF-8 text.
    #[error("payload is not UTF-8")]
    NotUtf8,
    /// The payload is not a number.
    #[error("payload is not a number")]
    NotANumber,
    /// A value is NaN or infinite, which Graphite cannot store meaningfully.
    #[error("value is not finite")]
    NotFinite,
    /// The payload is not valid JSON.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// The JSON is valid but not of the expected shape.
    #[error("unexpected JSON shape: {0}")]
    Shape(&'static str),
    /// A timestamp in the message could not be read.
    #[error("bad timestamp")]
    Timestamp,
}

/// Which decoder a route uses, as named in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecoderKind {
    /// The payload is one number (`21.5`).
    Plain,
    /// The payload is a JSON object with numeric fields.
    Json,
    /// IQRF Gateway Daemon JSON API responses (`iqrfSensor_*`, `iqrfSensorData_ReportAsync`).
    Iqrf,
}

/// A decoder ready to run; built once from its config.
#[derive(Debug, Clone)]
pub enum Decoder {
    /// See [`plain::decode`].
    Plain,
    /// See [`json::JsonDecoder`].
    Json(json::JsonDecoder),
    /// See [`iqrf::decode`].
    Iqrf,
}

impl Decoder {
    /// Builds a decoder; `fields` and `timestamp_field` apply to JSON only.
    pub fn new(
        kind: DecoderKind,
        fields: Option<BTreeMap<String, String>>,
        timestamp_field: Option<String>,
    ) -> Decoder {
        match kind {
            DecoderKind::Plain => Decoder::Plain,
            DecoderKind::Json => Decoder::Json(json::JsonDecoder::new(fields, timestamp_field)),
            DecoderKind::Iqrf => Decoder::Iqrf,
        }
    }

    /// Decodes `payload`, handing each sample to `emit`; returns how many
    /// samples it emitted. A payload with some bad values and some good
    /// ones emits the good ones and still returns `Ok` (bad entries inside an
    /// IQRF response are the sensor's business, not a broken message).
    pub fn decode(
        &self,
        payload: &[u8],
        emit: &mut dyn FnMut(Sample<'_>),
    ) -> Result<usize, DecodeError> {
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(DecodeError::TooLarge(payload.len()));
        }
        match self {
            Decoder::Plain => plain::decode(payload, emit),
            Decoder::Json(d) => d.decode(payload, emit),
            Decoder::Iqrf => iqrf::decode(payload, emit),
        }
    }
}

/// Reads a JSON timestamp: a number of Unix seconds (fractions dropped) or an
/// RFC 3339 string.
pub(crate) fn json_timestamp(v: &serde_json::Value) -> Result<i64, DecodeError> {
    match v {
        serde_json::Value::Number(n) => {
            let secs = n.as_f64().ok_or(DecodeError::Timestamp)?;
            if secs.is_finite() && (0.0..=i64::MAX as f64).contains(&secs) {
                // Milliseconds are common in IoT payloads: take anything past
                // year 33658 in seconds as milliseconds.
                let secs = if secs >= 1e12 { secs / 1000.0 } else { secs };
                Ok(secs as i64)
            } else {
                Err(DecodeError::Timestamp)
            }
        }
        serde_json::Value::String(s) => time::parse_rfc3339(s).ok_or(DecodeError::Timestamp),
        _ => Err(DecodeError::Timestamp),
    }
}
