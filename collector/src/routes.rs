//! Topic filters (MQTT 3.1.1 §4.7) and the routes that map them to a decoder
//! and a metric template.

use super::decode::{DecodeError, Decoder, Sample};
use super::naming::{self, MetricTemplate, NamingError};

/// A topic filter that is not valid MQTT.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterError {
    /// Empty filters are not allowed (§4.7.3).
    #[error("empty topic filter")]
    Empty,
    /// `#` must be last and alone in its level, `+` alone in its level (§4.7.1).
    #[error("wildcard `{0}` must fill a whole topic level (and `#` must be the last)")]
    Wildcard(char),
}

/// Checks a topic filter.
pub fn check_filter(filter: &str) -> Result<(), FilterError> {
    if filter.is_empty() {
        return Err(FilterError::Empty);
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(FilterError::Wildcard('#'));
        }
        if level.contains('+') && *level != "+" {
            return Err(FilterError::Wildcard('+'));
        }
    }
    Ok(())
}

/// True when `topic` matches `filter` (§4.7). Topics starting with `$` are
/// not matched by a filter starting with a wildcard (§4.7.2).
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// One configured route.
#[derive(Debug, Clone)]
pub struct Route {
    /// The MQTT topic filter subscribed to.
    pub filter: String,
    /// How payloads are decoded.
    pub decoder: Decoder,
    /// How samples are named.
    pub template: MetricTemplate,
}

/// Why a message produced no line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MessageError {
    /// No route's filter matches the topic.
    #[error("no route for topic")]
    NoRoute,
    /// The payload could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A sample could not be named.
    #[error(transparent)]
    Naming(#[from] NamingError),
}

/// The routes in config order; the first matching filter wins.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// A table of `routes`, matched in this order.
    pub fn new(routes: Vec<Route>) -> RouteTable {
        RouteTable { routes }
    }

    /// The routes, in order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Decodes one message into Graphite plaintext lines appended to `out`,
    /// stamping samples without their own time with `now` (Unix seconds).
    /// Returns the number of lines. On error nothing is appended: a message is
    /// stored whole or not at all.
    pub fn message_to_lines(
        &self,
        topic: &str,
        payload: &[u8],
        now: i64,
        out: &mut Vec<u8>,
    ) -> Result<usize, MessageError> {
        let route = self
            .routes
            .iter()
            .find(|r| topic_matches(&r.filter, topic))
            .ok_or(MessageError::NoRoute)?;
        let start = out.len();
        let mut naming_error = None;
        let n = route.decoder.decode(payload, &mut |s: Sample<'_>| {
            if naming_error.is_none()
                && let Err(e) =
                    naming::push_line(&route.template, topic, &s, s.timestamp.unwrap_or(now), out)
            {
                naming_error = Some(e);
            }
        });
        let result = match (n, naming_error) {
            (Err(e), _) => Err(e.into()),
            (Ok(_), Some(e)) => Err(e.into()),
            (Ok(n), None) => Ok(n),
        };
        if result.is_err() {
            out.truncate(start);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::DecoderKind;

    #[test]
    fn filters_match_as_mqtt_says() {
        assert!(topic_matches("a/+/c", "a/b/c"));
        assert!(!topic_matches("a/+/c", "a/b/d"));
        assert!(topic_matches("a/#", "a"));
        assert!(topic_matches("a/#", "a/b/c"));
        assert!(topic_matches("#", "x/y"));
        assert!(!topic_matches("#", "$SYS/broker"));
        assert!(!topic_matches("a/b", "a/b/c"));
        assert!(topic_matches("+/+", "/x"));
    }

    #[test]
    fn refuses_misplaced_wildcards() {
        assert_eq!(check_filter("a/#/b"), Err(FilterError::Wildcard('#')));
        assert_eq!(check_filter("a/b#"), Err(FilterError::Wildcard('#')));
        assert_eq!(check_filter("a/x+"), Err(FilterError::Wildcard('+')));
        assert_eq!(check_filter(""), Err(FilterError::Empty));
        assert_eq!(check_filter("a/+/#"), Ok(()));
    }

    fn table() -> RouteTable {
        RouteTable::new(vec![
            Route {
                filter: "lamps/+/count".into(),
                decoder: Decoder::new(DecoderKind::Plain, None, None),
                template: MetricTemplate::parse("pisek.lamps.{topic.1}.{field}").unwrap(),
            },
            Route {
                filter: "iqrf/#".into(),
                decoder: Decoder::new(DecoderKind::Iqrf, None, None),
                template: MetricTemplate::parse("austin.node{node}.{field}").unwrap(),
            },
        ])
    }

    #[test]
    fn routes_a_message_to_lines() {
        let mut out = Vec::new();
        let n = table()
            .message_to_lines("lamps/l7/count", b"12", 1_700_000_000, &mut out)
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(out, b"pisek.lamps.l7.value 12 1700000000\n");
    }

    #[test]
    fn a_bad_message_appends_nothing() {
        let mut out = b"earlier\n".to_vec();
        let t = table();
        assert_eq!(
            t.message_to_lines("other", b"1", 0, &mut out),
            Err(MessageError::NoRoute)
        );
        assert!(matches!(
            t.message_to_lines("lamps/l7/count", b"NaN", 0, &mut out),
            Err(MessageError::Decode(DecodeError::NotFinite))
        ));
        // An FRC in the old form has no sensor index; {node} is fine here.
        let frc = r#"{"mType":"iqrfSensor_Frc","data":{"status":0,"rsp":{"result":{"sensors":[null,{"type":1,"value":20}]}}}}"#;
        t.message_to_lines("iqrf/x", frc.as_bytes(), 5, &mut out)
            .unwrap();
        assert_eq!(out, b"earlier\naustin.node1.temperature 20 5\n");
    }
}
