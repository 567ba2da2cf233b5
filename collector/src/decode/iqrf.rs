//! The IQRF Gateway Daemon's JSON API (iqrfgd2), as published on MQTT:
//!
//! - `iqrfSensor_ReadSensorsWithTypes`: one node, `data.rsp.nAdr`, its sensors
//!   in `data.rsp.result.sensors[]` (`type`, `value`), their indexes in
//!   `data.rsp.result.sensorIndexes[]`;
//! - `iqrfSensor_Frc`: many nodes, `data.rsp.result.sensors[]` holding either
//!   (`extFormat: true`) `{nAdr, hwpid, mid, sensor: {type, value} | null}`
//!   (`nadr` in older daemons) or the sensor object itself, at the node's
//!   address (index 0 is the coordinator) or, for a selective FRC, in the
//!   order of `result.selectedNodes`;
//! - `iqrfSensorData_ReportAsync`: `data.rsp.devices[]` with `address` and
//!   `sensors[]` (`index`, `type`, `value`), read at `rsp.unixTime`
//!   (`rsp.dateTime`); a report with `"reading": true` only says that a read
//!   is under way and carries no values.
//!
//! Samples are keyed by the numeric quantity `type` of the IQRF Sensor
//! standard, never by the human-readable `name`, which is localisable. A
//! `null` sensor or value is a node that did not answer and is skipped. The
//! timestamp is the report's own time, else the daemon's `responseTs` from
//! `data.raw`, else (none in the message) the time of arrival.

use super::{DecodeError, Sample, time};
use serde_json::Value;

/// The Graphite-friendly name of an IQRF Sensor standard quantity type.
pub fn quantity_name(quantity_type: u64) -> Option<&'static str> {
    Some(match quantity_type {
        1 => "temperature",
        2 => "co2",
        3 => "voc",
        4 => "extra_low_voltage",
        5 => "earths_magnetic_field",
        6 => "low_voltage",
        7 => "current",
        8 => "power",
        9 => "mains_frequency",
        10 => "timespan",
        11 => "illuminance",
        12 => "no2",
        13 => "so2",
        14 => "co",
        15 => "o3",
        16 => "atmospheric_pressure",
        17 => "color_temperature",
        18 => "pm2_5",
        19 => "sound_pressure_level",
        20 => "altitude",
        21 => "acceleration",
        22 => "nh3",
        23 => "methane",
        24 => "short_length",
        25 => "pm1",
        26 => "pm4",
        27 => "pm10",
        28 => "tvoc",
        29 => "nox",
        30 => "activity_concentration",
        31 => "pm40",
        32 => "relative_humidity",
        128 => "relative_humidity",
        129 => "binary_data7",
        130 => "power_factor",
        131 => "uv_index",
        132 => "ph",
        133 => "rssi",
        160 => "binary_data30",
        161 => "consumption",
        163 => "timespan_long",
        164 => "latitude",
        165 => "longitude",
        166 => "temperature",
        167 => "length",
        _ => return None,
    })
}

/// Decodes one daemon message. Messages that carry no reading by design (a
/// `"reading": true` report, a response with a non-zero `status`, only
/// `null` sensors or values) decode to zero samples; a message of a known
/// type that yields no reading for any other reason (a field under a name
/// the decoder does not know, a sensor without a type) is an error, so it
/// is counted and logged instead of vanishing. Anything that is not one of
/// the three message types is an error.
pub fn decode(payload: &[u8], emit: &mut dyn FnMut(Sample<'_>)) -> Result<usize, DecodeError> {
    let msg: Value =
        serde_json::from_slice(payload).map_err(|e| DecodeError::Json(e.to_string()))?;
    let m_type = msg
        .get("mType")
        .and_then(Value::as_str)
        .ok_or(DecodeError::Shape("no mType"))?;
    let data = msg
        .get("data")
        .and_then(Value::as_object)
        .ok_or(DecodeError::Shape("no data object"))?;
    // A daemon error response (DPA timeout, node not bonded) has status != 0.
    if data.get("status").and_then(Value::as_i64).unwrap_or(0) != 0 {
        return Ok(0);
    }
    let rsp = data.get("rsp").ok_or(DecodeError::Shape("no data.rsp"))?;
    let raw_timestamp = match data.get("raw") {
        Some(raw) => response_timestamp(raw)?,
        None => None,
    };
    let mut sink = Sink {
        emit,
        timestamp: raw_timestamp,
        emitted: 0,
        skipped: 0,
        unusable: 0,
    };
    match m_type {
        "iqrfSensor_ReadSensorsWithTypes" => {
            let node = rsp.get("nAdr").and_then(as_node);
            let result = rsp
                .get("result")
                .ok_or(DecodeError::Shape("no rsp.result"))?;
            let sensors = array(result, "sensors")?;
            let indexes = result.get("sensorIndexes").and_then(Value::as_array);
            for (i, sensor) in sensors.iter().enumerate() {
                let index = match indexes {
                    Some(ix) => ix.get(i).and_then(as_index),
                    None => u8::try_from(i).ok(),
                };
                sink.sensor(sensor, node, index);
            }
        }
        "iqrfSensor_Frc" => {
            let result = rsp
                .get("result")
                .ok_or(DecodeError::Shape("no rsp.result"))?;
            // A selective FRC lists its nodes; the sensors follow that order.
            let selected = result.get("selectedNodes").and_then(Value::as_array);
            for (i, entry) in array(result, "sensors")?.iter().enumerate() {
                // The extended format (`extFormat: true`) names the node:
                // `nAdr` in the daemon's current schema, `nadr` before.
                match entry.get("nAdr").or_else(|| entry.get("nadr")) {
                    // `sensor` is required: `null` when the node did not answer.
                    Some(nadr) => match entry.get("sensor") {
                        Some(sensor) => sink.sensor(sensor, as_node(nadr), None),
                        None => sink.unusable += 1,
                    },
                    None => {
                        let node = match selected {
                            Some(nodes) => nodes.get(i).and_then(as_node),
                            // Index 0 is the coordinator, always null.
                            None => u16::try_from(i).ok(),
                        };
                        sink.sensor(entry, node, None);
                    }
                }
            }
        }
        "iqrfSensorData_ReportAsync" => {
            // The report carries the time it was read: a report buffered on
            // the gateway is stored at that time, not at its arrival.
            if let Some(t) = report_timestamp(rsp)? {
                sink.timestamp = Some(t);
            }
            if rsp.get("reading").and_then(Value::as_bool) == Some(true) {
                return Ok(0);
            }
            for device in array(rsp, "devices")? {
                let node = device.get("address").and_then(as_node);
                match device.get("sensors").and_then(Value::as_array) {
                    // A device without sensors is documented (no data yet).
                    Some(sensors) if sensors.is_empty() => sink.skipped += 1,
                    Some(sensors) => {
                        for sensor in sensors {
                            let index = sensor.get("index").and_then(as_index);
                            sink.sensor(sensor, node, index);
                        }
                    }
                    None => sink.unusable += 1,
                }
            }
        }
        _ => return Err(DecodeError::Shape("not an IQRF sensor message")),
    }
    if sink.emitted == 0 && (sink.unusable > 0 || sink.skipped == 0) {
        return Err(DecodeError::Shape(
            "an IQRF sensor message without a usable reading",
        ));
    }
    Ok(sink.emitted)
}

struct Sink<'e> {
    emit: &'e mut dyn FnMut(Sample<'_>),
    timestamp: Option<i64>,
    emitted: usize,
    /// Entries without a reading by design: `null` sensor or value.
    skipped: usize,
    /// Entries the decoder could not read: no numeric type, a value that
    /// is neither a number nor `null`.
    unusable: usize,
}

impl Sink<'_> {
    /// Emits one sensor object (`{type, value}`); skips `null` and a `null`
    /// value (documented: the node did not answer), counts anything else
    /// it cannot read as unusable.
    fn sensor(&mut self, sensor: &Value, node: Option<u16>, index: Option<u8>) {
        if sensor.is_null() {
            self.skipped += 1;
            return;
        }
        let Some(quantity) = sensor.get("type").and_then(Value::as_u64) else {
            self.unusable += 1;
            return;
        };
        let value = match sensor.get("value") {
            // The daemon's older FRC form omits the value of a silent node.
            None | Some(Value::Null) => {
                self.skipped += 1;
                return;
            }
            Some(v) => match v.as_f64() {
                Some(v) if v.is_finite() => v,
                _ => {
                    self.unusable += 1;
                    return;
                }
            },
        };
        let unknown;
        let field = match quantity_name(quantity) {
            Some(name) => name,
            None => {
                unknown = format!("type{quantity}");
                unknown.as_str()
            }
        };
        (self.emit)(Sample {
            field,
            node,
            index,
            value,
            timestamp: self.timestamp,
        });
        self.emitted += 1;
    }
}

/// A report's own time: `unixTime` (seconds), else `dateTime` (RFC 3339).
fn report_timestamp(rsp: &Value) -> Result<Option<i64>, DecodeError> {
    if let Some(t) = rsp.get("unixTime") {
        return t
            .as_i64()
            .filter(|t| *t >= 0)
            .map(Some)
            .ok_or(DecodeError::Timestamp);
    }
    match rsp.get("dateTime").and_then(Value::as_str) {
        None => Ok(None),
        Some(ts) => time::parse_rfc3339(ts)
            .map(Some)
            .ok_or(DecodeError::Timestamp),
    }
}

fn array<'v>(v: &'v Value, key: &'static str) -> Result<&'v Vec<Value>, DecodeError> {
    v.get(key)
        .and_then(Value::as_array)
        .ok_or(DecodeError::Shape("expected array missing"))
}

fn as_node(v: &Value) -> Option<u16> {
    v.as_u64().and_then(|n| u16::try_from(n).ok())
}

fn as_index(v: &Value) -> Option<u8> {
    v.as_u64().and_then(|n| u8::try_from(n).ok())
}

/// The daemon's `responseTs` from `raw` (an object, or an array of DPA
/// transactions of which the last answered); an empty string means none.
fn response_timestamp(raw: &Value) -> Result<Option<i64>, DecodeError> {
    let entry = match raw {
        Value::Array(items) => match items.last() {
            Some(e) => e,
            None => return Ok(None),
        },
        other => other,
    };
    match entry.get("responseTs").and_then(Value::as_str) {
        None | Some("") => Ok(None),
        Some(ts) => time::parse_rfc3339(ts)
            .map(Some)
            .ok_or(DecodeError::Timestamp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The daemon's documented examples (iqrf-gateway-daemon `api/examples/`),
    /// trimmed of the fields the decoder does not read.
    pub(crate) const READ_WITH_TYPES: &str = r#"{"mType":"iqrfSensor_ReadSensorsWithTypes","data":{"msgId":"testEmbedSensor","rsp":{"nAdr":1,"pNum":94,"pCmd":129,"hwpId":5122,"rCode":0,"dpaVal":81,"result":{"sensors":[{"id":"TEMPERATURE","type":1,"name":"Temperature","shortName":"t","value":28.5,"unit":"°C","decimalPlaces":4},{"id":"CO2","type":2,"name":"Carbon dioxide","shortName":"CO2","value":2439,"unit":"ppm","decimalPlaces":0}],"sensorIndexes":[0,1]}},"raw":[{"request":"01.00.5e.01.ff.ff.03.00.00.00","requestTs":"2022-12-15T08:50:55.602+01:00","confirmation":"01.00.5e.01.ff.ff.ff.50.01.08.01","confirmationTs":"2022-12-15T08:50:55.629+01:00","response":"01.00.5e.81.02.14.00.51.01.c8.01.02.87.09","responseTs":"2022-12-15T08:50:55.876+01:00"}],"insId":"iqrfgd2-default","statusStr":"ok","status":0}}"#;
    pub(crate) const FRC_OLD: &str = r#"{"mType":"iqrfSensor_Frc","data":{"msgId":"testEmbedSensor","rsp":{"nAdr":0,"hwpId":0,"rCode":0,"dpaVal":57,"result":{"sensors":[null,{"id":"TEMPERATURE","type":1,"name":"Temperature","shortName":"T","value":27,"unit":"°C"},{"id":"TEMPERATURE","type":1,"name":"Temperature","shortName":"T","unit":"°C"},null,{"id":"TEMPERATURE","type":1,"name":"Temperature","shortName":"T","unit":"°C"}]}},"raw":{"request":"00.00.0d.00.ff.ff.90.5e.01.01.00","requestTs":"2018-07-18T16:30:43.43132","confirmation":"","confirmationTs":"","response":"00.00.0d.80","responseTs":"2018-07-18T16:30:43.794327"},"insId":"iqrfgd2-1","statusStr":"ok","status":0}}"#;
    pub(crate) const FRC_NADR: &str = r#"{"mType":"iqrfSensor_Frc","data":{"msgId":"testEmbedSensor","rsp":{"nAdr":0,"hwpId":0,"rCode":0,"dpaVal":88,"result":{"sensors":[{"nadr":3,"sensor":{"id":"BINARYDATA7","type":129,"name":"Binary data7","shortName":"bin7","value":7,"unit":"?","decimalPlaces":0},"metaData":{}},{"nadr":4,"sensor":null,"metaData":{}},{"nadr":5,"sensor":{"id":"BINARYDATA7","type":129,"name":"Binary data7","shortName":"bin7","value":7,"unit":"?","decimalPlaces":0},"metaData":{}}]}},"status":0}}"#;
    pub(crate) const REPORT_READING: &str = r#"{"mType":"iqrfSensorData_ReportAsync","data":{"msgId":"async","rsp":{"reading":true},"status":0,"statusStr":"ok","insId":"iqrfgd2-default"}}"#;
    pub(crate) const REPORT: &str = r#"{"mType":"iqrfSensorData_ReportAsync","data":{"msgId":"async","rsp":{"devices":[{"address":1,"hwpid":10244,"mid":2165474388,"rssi":-63,"sensors":[]},{"address":2,"hwpid":33796,"mid":2165517735,"rssi":-67,"sensors":[{"index":0,"type":1,"name":"Temperature","unit":"°C","value":23.25},{"index":1,"type":128,"name":"Relative humidity","unit":"%","value":51.0},{"index":2,"type":4,"name":"Extra-low voltage","unit":"V","value":3.184}]}],"reading":false},"status":0,"statusStr":"ok","insId":"iqrfgd2-default"}}"#;

    type Row = (String, Option<u16>, Option<u8>, f64, Option<i64>);

    fn all(payload: &str) -> Result<Vec<Row>, DecodeError> {
        let mut got = Vec::new();
        decode(payload.as_bytes(), &mut |s| {
            got.push((s.field.to_string(), s.node, s.index, s.value, s.timestamp))
        })?;
        Ok(got)
    }

    #[test]
    fn read_with_types_gives_each_quantity_of_the_node() {
        let ts = Some(1_671_090_655);
        assert_eq!(
            all(READ_WITH_TYPES).unwrap(),
            vec![
                ("temperature".into(), Some(1), Some(0), 28.5, ts),
                ("co2".into(), Some(1), Some(1), 2439.0, ts),
            ]
        );
    }

    #[test]
    fn frc_skips_nodes_without_a_value_in_both_forms() {
        assert_eq!(
            all(FRC_OLD).unwrap(),
            vec![(
                "temperature".into(),
                Some(1),
                None,
                27.0,
                Some(1_531_931_443)
            )]
        );
        assert_eq!(
            all(FRC_NADR).unwrap(),
            vec![
                ("binary_data7".into(), Some(3), None, 7.0, None),
                ("binary_data7".into(), Some(5), None, 7.0, None),
            ]
        );
    }

    /// iqrf-gateway-daemon's current examples
    /// (`api/examples/iqrfSensor_Frc-response-1-0-0-example.json`, the
    /// selective and the extended forms; `iqrfSensorData_ReportAsync-...`),
    /// trimmed of `raw` entries beyond the first and of the null padding.
    pub(crate) const FRC_EXT: &str = r#"{"mType":"iqrfSensor_Frc","data":{"msgId":"d878e5f9-34c3-4559-b1fb-25e8624b2667","rsp":{"nAdr":0,"pnum":13,"pcmd":130,"hwpId":0,"rCode":0,"dpaVal":0,"result":{"sensors":[{"hwpid":5122,"mid":2165406801,"nAdr":1,"sensor":{"decimalPlaces":4,"id":"TEMPERATURE","name":"Temperature","shortName":"T","type":1,"unit":"°C","value":25.5}},{"hwpid":null,"mid":null,"nAdr":4,"sensor":null}],"sensorIndex":0,"selectedNodes":[1,4]}},"raw":[{"request":"00.00.0d.02.ff.ff","requestTs":"2024-04-17T11:22:56.509-04:00","confirmation":"","confirmationTs":"","response":"00.00.0d.82","responseTs":"2024-04-17T11:22:57.089-04:00"}],"insId":"iqrfgd2-default","statusStr":"ok","status":0}}"#;
    pub(crate) const FRC_SELECTIVE: &str = r#"{"mType":"iqrfSensor_Frc","data":{"msgId":"35a2a9f6-1c1a-459a-8707-c20b9351acba","rsp":{"nAdr":0,"pnum":13,"pcmd":130,"hwpId":0,"rCode":0,"dpaVal":0,"result":{"sensors":[null,{"decimalPlaces":4,"id":"TEMPERATURE","name":"Temperature","shortName":"T","type":1,"unit":"°C","value":25}],"sensorIndex":0,"selectedNodes":[1,4]}},"insId":"iqrfgd2-default","statusStr":"ok","status":0}}"#;
    pub(crate) const REPORT_TIMED: &str = r#"{"mType":"iqrfSensorData_ReportAsync","data":{"msgId":"async","rsp":{"devices":[{"address":1,"hwpid":10244,"mid":2165474388,"rssi":-56,"sensors":[]},{"address":3,"hwpid":1026,"mid":2165406801,"rssi":-24,"sensors":[{"index":0,"type":1,"name":"Temperature","unit":"°C","value":null},{"index":1,"type":129,"name":"Light indicator","unit":"%","value":16.5},{"index":2,"type":129,"name":"Potentiometer","unit":"%","value":0}]}],"dateTime":"2025-12-11T10:52:22Z","unixTime":1765450342,"reportNum":2,"reading":false},"status":0,"statusStr":"ok","insId":"iqrfgd2-default"}}"#;

    #[test]
    fn frc_of_the_current_daemon_in_its_extended_and_selective_forms() {
        let ts = Some(1_713_367_377);
        assert_eq!(
            all(FRC_EXT).unwrap(),
            vec![("temperature".into(), Some(1), None, 25.5, ts)]
        );
        // Sensors follow `selectedNodes`: the second is node 4, not node 1.
        assert_eq!(
            all(FRC_SELECTIVE).unwrap(),
            vec![("temperature".into(), Some(4), None, 25.0, None)]
        );
    }

    #[test]
    fn a_report_is_stored_at_its_own_time() {
        let at = Some(1_765_450_342);
        assert_eq!(
            all(REPORT_TIMED).unwrap(),
            vec![
                ("binary_data7".into(), Some(3), Some(1), 16.5, at),
                ("binary_data7".into(), Some(3), Some(2), 0.0, at),
            ]
        );
        let by_date = REPORT_TIMED.replace(r#""unixTime":1765450342,"#, "");
        assert_eq!(all(&by_date).unwrap()[0].4, at);
        let bad = REPORT_TIMED.replace("1765450342", r#""soon""#);
        assert_eq!(all(&bad), Err(DecodeError::Timestamp));
    }

    #[test]
    fn a_known_message_without_a_usable_reading_is_an_error() {
        // A node field under a name the decoder does not know: nothing to
        // read, and it must not vanish silently.
        let renamed = FRC_EXT.replace(r#""sensor":{"#, r#""reading":{"#);
        assert!(matches!(all(&renamed), Err(DecodeError::Shape(_))));
        let no_type = REPORT_TIMED.replace(r#""type":129,"#, "");
        assert!(matches!(all(&no_type), Err(DecodeError::Shape(_))));
        let text_value = READ_WITH_TYPES
            .replace("28.5", r#""28.5""#)
            .replace("2439", r#""2439""#);
        assert!(matches!(all(&text_value), Err(DecodeError::Shape(_))));
        // The documented skips are not errors.
        let all_null = FRC_SELECTIVE.replace(r#""value":25"#, r#""value":null"#);
        assert_eq!(all(&all_null).unwrap(), vec![]);
    }

    #[test]
    fn report_async_skips_reading_in_progress() {
        assert_eq!(all(REPORT_READING).unwrap(), vec![]);
        assert_eq!(
            all(REPORT).unwrap(),
            vec![
                ("temperature".into(), Some(2), Some(0), 23.25, None),
                ("relative_humidity".into(), Some(2), Some(1), 51.0, None),
                ("extra_low_voltage".into(), Some(2), Some(2), 3.184, None),
            ]
        );
    }

    #[test]
    fn unknown_quantity_types_keep_their_number() {
        let msg = r#"{"mType":"iqrfSensorData_ReportAsync","data":{"status":0,"rsp":{"reading":false,"devices":[{"address":7,"sensors":[{"index":0,"type":250,"value":1}]}]}}}"#;
        assert_eq!(
            all(msg).unwrap(),
            vec![("type250".into(), Some(7), Some(0), 1.0, None)]
        );
    }

    #[test]
    fn error_responses_carry_no_reading() {
        let msg = r#"{"mType":"iqrfSensor_Frc","data":{"msgId":"x","status":-1,"statusStr":"ERROR_TIMEOUT"}}"#;
        assert_eq!(all(msg).unwrap(), vec![]);
    }

    #[test]
    fn refuses_other_messages_and_wrong_shapes() {
        assert!(matches!(all("{"), Err(DecodeError::Json(_))));
        assert!(matches!(
            all(r#"{"mType":"iqrfEmbedLedr_Pulse","data":{"rsp":{}}}"#),
            Err(DecodeError::Shape(_))
        ));
        assert!(matches!(
            all(r#"{"mType":"iqrfSensor_Frc","data":{"rsp":{"result":{"sensors":7}}}}"#),
            Err(DecodeError::Shape(_))
        ));
        assert!(matches!(
            all(r#"{"mType":"iqrfSensor_Frc","data":[]}"#),
            Err(DecodeError::Shape(_))
        ));
        assert!(matches!(
            all(
                r#"{"mType":"iqrfSensor_Frc","data":{"raw":{"responseTs":"soon"},"rsp":{"result":{"sensors":[]}}}}"#
            ),
            Err(DecodeError::Timestamp)
        ));
    }
}
