//! A payload that is a JSON object of readings: `{"co2": 415, "temp": 21.5}`.

use super::{DecodeError, Sample, json_timestamp};
use std::collections::BTreeMap;

/// Decodes JSON objects, by a field map or taking every numeric field.
#[derive(Debug, Clone)]
pub struct JsonDecoder {
    fields: Option<BTreeMap<String, String>>,
    timestamp_field: Option<String>,
}

impl JsonDecoder {
    /// `fields` maps a JSON field to the metric field name it gets; `None`
    /// takes every numeric top-level field under its own name.
    pub fn new(
        fields: Option<BTreeMap<String, String>>,
        timestamp_field: Option<String>,
    ) -> JsonDecoder {
        JsonDecoder {
            fields,
            timestamp_field,
        }
    }

    /// Decodes one object. Fields that are absent, `null` or not numbers are
    /// skipped; a message with no usable field at all is an error.
    pub fn decode(
        &self,
        payload: &[u8],
        emit: &mut dyn FnMut(Sample<'_>),
    ) -> Result<usize, DecodeError> {
        let value: serde_json::Value =
            serde_json::from_slice(payload).map_err(|e| DecodeError::Json(e.to_string()))?;
        let object = value
            .as_object()
            .ok_or(DecodeError::Shape("payload is not a JSON object"))?;
        let timestamp = match &self.timestamp_field {
            Some(name) => match object.get(name) {
                Some(v) => Some(json_timestamp(v)?),
                None => None,
            },
            None => None,
        };
        let mut emitted = 0;
        let mut emit_one = |field: &str, v: &serde_json::Value| {
            if let Some(value) = v.as_f64().filter(|x| x.is_finite()) {
                emit(Sample {
                    field,
                    node: None,
                    index: None,
                    value,
                    timestamp,
                });
                emitted += 1;
            }
        };
        match &self.fields {
            Some(map) => {
                for (json_field, metric_field) in map {
                    if let Some(v) = object.get(json_field) {
                        emit_one(metric_field, v);
                    }
                }
            }
            None => {
                for (name, v) in object {
                    if Some(name) != self.timestamp_field.as_ref() {
                        emit_one(name, v);
                    }
                }
            }
        }
        if emitted == 0 {
            return Err(DecodeError::Shape("no numeric field"));
        }
        Ok(emitted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(d: &JsonDecoder, payload: &str) -> Result<Vec<(String, f64, Option<i64>)>, DecodeError> {
        let mut got = Vec::new();
        d.decode(payload.as_bytes(), &mut |s| {
            got.push((s.field.to_string(), s.value, s.timestamp))
        })?;
        Ok(got)
    }

    #[test]
    fn maps_configured_fields_to_metric_names() {
        let map = BTreeMap::from([
            ("t".to_string(), "temperature".to_string()),
            ("c".to_string(), "co2".to_string()),
        ]);
        let d = JsonDecoder::new(Some(map), Some("ts".into()));
        let got = all(&d, r#"{"t": 21.5, "c": 415, "other": 1, "ts": 1700000000}"#).unwrap();
        assert_eq!(
            got,
            vec![
                ("co2".into(), 415.0, Some(1_700_000_000)),
                ("temperature".into(), 21.5, Some(1_700_000_000)),
            ]
        );
    }

    #[test]
    fn a_value_keeps_every_bit_of_its_double() {
        // 17 significant digits, as Python's json.dumps writes a computed
        // float: serde_json's default parser is one ulp off here (22.49);
        // Graphite must store what the sensor sent (feature float_roundtrip).
        let d = JsonDecoder::new(None, None);
        let got = all(&d, r#"{"t": 22.490000000000002}"#).unwrap();
        assert_eq!(got[0].1.to_bits(), 22.490000000000002f64.to_bits());
    }

    #[test]
    fn takes_every_numeric_field_without_a_map() {
        let d = JsonDecoder::new(None, Some("ts".into()));
        let got = all(
            &d,
            r#"{"a": 1, "b": "x", "c": null, "d": 2.5, "ts": "2024-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                ("a".into(), 1.0, Some(1_704_067_200)),
                ("d".into(), 2.5, Some(1_704_067_200))
            ]
        );
    }

    #[test]
    fn refuses_invalid_json_arrays_and_objects_without_numbers() {
        let d = JsonDecoder::new(None, None);
        assert!(matches!(all(&d, "{\"a\": "), Err(DecodeError::Json(_))));
        assert!(matches!(all(&d, "[1, 2]"), Err(DecodeError::Shape(_))));
        assert!(matches!(
            all(&d, r#"{"a": "1"}"#),
            Err(DecodeError::Shape(_))
        ));
        assert!(matches!(
            all(&d, r#"{"a": 1e999}"#),
            Err(DecodeError::Json(_))
        ));
    }

    #[test]
    fn refuses_a_bad_timestamp() {
        let d = JsonDecoder::new(None, Some("ts".into()));
        assert_eq!(
            all(&d, r#"{"a": 1, "ts": "yesterday"}"#),
            Err(DecodeError::Timestamp)
        );
        assert_eq!(
            all(&d, r#"{"a": 1, "ts": -5}"#),
            Err(DecodeError::Timestamp)
        );
    }
}
