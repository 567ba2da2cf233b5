//! Graphite paths from templates: `austin.{topic.1}.node{node}.{field}`.
//!
//! Placeholders:
//! - `{topic}`: the whole MQTT topic, its levels joined by `.`;
//! - `{topic.N}`: topic level N, counted from 0 (`iqrf/floor1/room3` has
//!   `{topic.1}` = `floor1`);
//! - `{field}`: what the decoder measured (`co2`, a JSON field's name, `value`);
//! - `{node}`, `{index}`: the IQRF node address and sensor index.
//!
//! Graphite splits paths on `.` and its whisper files live on a file system,
//! so every substituted value is sanitised: characters other than ASCII
//! letters, digits, `_`, `-` and `:` become `_`, and an empty value becomes `_`,
//! so a topic level can never add a path level, climb out of the storage
//! directory (`..`) or produce an empty level.

use super::decode::Sample;
use std::io::Write;

/// A parsed metric template.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    Topic,
    TopicLevel(usize),
    Field,
    Node,
    Index,
}

/// A template that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    /// A `{` without its `}`.
    #[error("unclosed `{{` in metric template")]
    Unclosed,
    /// A placeholder the collector does not know.
    #[error("unknown placeholder `{{{0}}}` (known: topic, topic.N, field, node, index)")]
    UnknownPlaceholder(String),
    /// Literal text Graphite would not take as it is.
    #[error("character {0:?} is not allowed in a metric path (letters, digits, _ - : and . only)")]
    BadCharacter(char),
    /// An empty path level (`a..b`, a leading or trailing `.`).
    #[error("metric template makes an empty path level")]
    EmptyLevel,
}

/// A sample that the template cannot name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NamingError {
    /// The template asks for a topic level the topic does not have.
    #[error("topic has no level {0}")]
    NoTopicLevel(usize),
    /// The template asks for `{node}` and the sample has none.
    #[error("sample has no node address")]
    NoNode,
    /// The template asks for `{index}` and the sample has none.
    #[error("sample has no sensor index")]
    NoIndex,
}

impl MetricTemplate {
    /// Parses and checks a template.
    pub fn parse(template: &str) -> Result<MetricTemplate, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let end = rest.find('}').ok_or(TemplateError::Unclosed)?;
                    let name = &rest[1..end];
                    parts.push(match name {
                        "topic" => Part::Topic,
                        "field" => Part::Field,
                        "node" => Part::Node,
                        "index" => Part::Index,
                        _ => match name.strip_prefix("topic.").map(str::parse::<usize>) {
                            Some(Ok(n)) => Part::TopicLevel(n),
                            _ => return Err(TemplateError::UnknownPlaceholder(name.into())),
                        },
                    });
                    rest = &rest[end + 1..];
                }
                found => {
                    let end = found.unwrap_or(rest.len());
                    let literal = &rest[..end];
                    if let Some(c) = literal.chars().find(|&c| !is_path_char(c) && c != '.') {
                        return Err(TemplateError::BadCharacter(c));
                    }
                    parts.push(Part::Literal(literal.to_string()));
                    rest = &rest[end..];
                }
            }
        }
        // Placeholders never render empty, so empty levels can only come
        // from the literal dots.
        let mut shape = String::new();
        for part in &parts {
            match part {
                Part::Literal(l) => shape.push_str(l),
                _ => shape.push('x'),
            }
        }
        if shape.is_empty() || shape.split('.').any(str::is_empty) {
            return Err(TemplateError::EmptyLevel);
        }
        Ok(MetricTemplate { parts })
    }

    /// True when the template uses `{node}` or `{index}` (IQRF only).
    pub fn needs_iqrf_fields(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Node | Part::Index))
    }

    /// Appends the sample's path to `out`. On error `out` is left as it was.
    pub fn render(
        &self,
        topic: &str,
        sample: &Sample<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), NamingError> {
        let start = out.len();
        let result = self.render_inner(topic, sample, out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn render_inner(
        &self,
        topic: &str,
        sample: &Sample<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), NamingError> {
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.extend_from_slice(l.as_bytes()),
                Part::Topic => {
                    for (i, level) in topic.split('/').enumerate() {
                        if i > 0 {
                            out.push(b'.');
                        }
                        push_sanitised(level, out);
                    }
                }
                Part::TopicLevel(n) => {
                    let level = topic
                        .split('/')
                        .nth(*n)
                        .ok_or(NamingError::NoTopicLevel(*n))?;
                    push_sanitised(level, out);
                }
                Part::Field => push_sanitised(sample.field, out),
                Part::Node => {
                    let node = sample.node.ok_or(NamingError::NoNode)?;
                    let _ = write!(out, "{node}");
                }
                Part::Index => {
                    let index = sample.index.ok_or(NamingError::NoIndex)?;
                    let _ = write!(out, "{index}");
                }
            }
        }
        Ok(())
    }
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':')
}

/// Appends `value` with every character Graphite would misread replaced by `_`.
pub fn push_sanitised(value: &str, out: &mut Vec<u8>) {
    if value.is_empty() {
        out.push(b'_');
        return;
    }
    for c in value.chars() {
        out.push(if is_path_char(c) { c as u8 } else { b'_' });
    }
}

/// Appends one Graphite plaintext line, `<path> <value> <timestamp>\n`.
pub fn push_line(
    template: &MetricTemplate,
    topic: &str,
    sample: &Sample<'_>,
    timestamp: i64,
    out: &mut Vec<u8>,
) -> Result<(), NamingError> {
    template.render(topic, sample, out)?;
    // f64's Display is the shortest text that reads back as the same value
    // and never uses an exponent, which carbon's float() parses.
    let _ = writeln!(out, " {} {}", sample.value, timestamp);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(field: &str) -> Sample<'_> {
        Sample {
            field,
            node: Some(3),
            index: Some(1),
            value: 21.5,
            timestamp: None,
        }
    }

    fn render(template: &str, topic: &str, s: &Sample<'_>) -> Result<String, NamingError> {
        let t = MetricTemplate::parse(template).unwrap();
        let mut out = Vec::new();
        t.render(topic, s, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn fills_topic_levels_fields_and_iqrf_addresses() {
        let s = sample("co2");
        assert_eq!(
            render(
                "austin.{topic.1}.{topic.2}.{field}",
                "sensors/floor1/room3",
                &s
            )
            .unwrap(),
            "austin.floor1.room3.co2"
        );
        assert_eq!(
            render("iqrf.node{node}.{index}.{field}", "x", &s).unwrap(),
            "iqrf.node3.1.co2"
        );
        assert_eq!(render("all.{topic}", "a/b/c", &s).unwrap(), "all.a.b.c");
    }

    #[test]
    fn sanitises_what_graphite_would_split_or_misread() {
        let s = sample("temp erature");
        assert_eq!(
            render("x.{topic.0}.{field}", "../etc", &s).unwrap(),
            "x.__.temp_erature"
        );
        assert_eq!(render("x.{topic}", "a//ü", &s).unwrap(), "x.a._._");
    }

    #[test]
    fn missing_values_are_errors_and_leave_no_partial_path() {
        let mut s = sample("v");
        s.node = None;
        assert_eq!(
            render("x.{topic.5}", "a/b", &s),
            Err(NamingError::NoTopicLevel(5))
        );
        let t = MetricTemplate::parse("x.{node}").unwrap();
        let mut out = b"keep".to_vec();
        assert_eq!(t.render("a", &s, &mut out), Err(NamingError::NoNode));
        assert_eq!(out, b"keep");
    }

    #[test]
    fn refuses_broken_templates() {
        assert_eq!(
            MetricTemplate::parse("a.{topic"),
            Err(TemplateError::Unclosed)
        );
        assert!(matches!(
            MetricTemplate::parse("a.{host}"),
            Err(TemplateError::UnknownPlaceholder(_))
        ));
        assert_eq!(
            MetricTemplate::parse("a b"),
            Err(TemplateError::BadCharacter(' '))
        );
        assert_eq!(
            MetricTemplate::parse("a..{field}"),
            Err(TemplateError::EmptyLevel)
        );
        assert_eq!(
            MetricTemplate::parse(".{field}"),
            Err(TemplateError::EmptyLevel)
        );
        assert_eq!(MetricTemplate::parse(""), Err(TemplateError::EmptyLevel));
    }

    #[test]
    fn writes_a_plaintext_line() {
        let t = MetricTemplate::parse("a.{field}").unwrap();
        let mut out = Vec::new();
        push_line(&t, "t", &sample("co2"), 1_700_000_000, &mut out).unwrap();
        assert_eq!(out, b"a.co2 21.5 1700000000\n");
    }
}
