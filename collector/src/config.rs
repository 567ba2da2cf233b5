//! The collector's own config file (`/etc/pisek/collector.toml`).
//! Unknown fields are rejected, with the field's name, so a typo never
//! silently falls back to a default. The reference is docs/collector.md.

use super::decode::{Decoder, DecoderKind};
use super::naming::{MetricTemplate, TemplateError};
use super::routes::{self, FilterError, Route, RouteTable};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// The MQTT side.
    #[serde(default)]
    pub mqtt: MqttConfig,
    /// The embedded broker, started when `mqtt.broker` is not given.
    #[serde(default)]
    pub embedded_broker: EmbeddedBrokerConfig,
    /// The durable queue.
    #[serde(default)]
    pub queue: QueueConfig,
    /// Where carbon is.
    pub graphite: GraphiteConfig,
    /// The health and metrics endpoint.
    #[serde(default)]
    pub health: HealthConfig,
    /// Topic filter -> decoder -> metric name, first match wins.
    #[serde(rename = "route")]
    pub routes: Vec<RouteConfig>,
}

/// `[mqtt]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// `host:port` of the broker; absent: start the embedded broker.
    pub broker: Option<String>,
    /// The fixed client id of the persistent session.
    pub client_id: String,
    /// MQTT user name.
    pub username: Option<String>,
    /// MQTT password.
    pub password: Option<String>,
    /// Keep-alive interval in seconds.
    pub keep_alive_secs: u64,
    /// TLS to the broker; absent: plain TCP.
    pub tls: Option<TlsConfig>,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            broker: None,
            client_id: "pisek-collector".into(),
            username: None,
            password: None,
            keep_alive_secs: 30,
            tls: None,
        }
    }
}

/// `[mqtt.tls]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA that signed the broker's certificate.
    pub ca_file: PathBuf,
    /// PEM client certificate, for brokers that ask for one.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub client_key_file: Option<PathBuf>,
}

/// `[embedded_broker]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddedBrokerConfig {
    /// Where the embedded broker listens for sensors (MQTT 3.1.1).
    pub listen: SocketAddr,
    /// Unacknowledged QoS 1 messages per connection.
    pub max_inflight: usize,
    /// Largest message accepted, bytes.
    pub max_payload_bytes: usize,
}

impl Default for EmbeddedBrokerConfig {
    fn default() -> Self {
        EmbeddedBrokerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 1883)),
            max_inflight: 1000,
            max_payload_bytes: 256 * 1024,
        }
    }
}

/// `[queue]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// The queue's directory.
    pub dir: PathBuf,
    /// Unsent bytes at most; when full, MQTT messages are not acknowledged.
    pub max_bytes: u64,
    /// Segment file size.
    pub segment_bytes: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            dir: PathBuf::from("/var/lib/pisek/collector"),
            max_bytes: 256 * 1024 * 1024,
            segment_bytes: 8 * 1024 * 1024,
        }
    }
}

/// `[graphite]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphiteConfig {
    /// `host:port` of carbon's plaintext receiver.
    pub address: String,
    /// Bytes per write.
    #[serde(default = "default_batch_bytes")]
    pub batch_bytes: usize,
    /// First reconnect delay, doubled per failure.
    #[serde(default = "default_reconnect_min_ms")]
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay.
    #[serde(default = "default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
}

fn default_batch_bytes() -> usize {
    64 * 1024
}
fn default_reconnect_min_ms() -> u64 {
    100
}
fn default_reconnect_max_ms() -> u64 {
    10_000
}

/// `[health]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Where `GET /health` and `GET /metrics` are served; absent: not served.
    pub listen: Option<SocketAddr>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 9108))),
        }
    }
}

/// One `[[route]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// MQTT topic filter (`iqrf/+/sensors`, `lamps/#`).
    pub filter: String,
    /// `plain`, `json` or `iqrf`.
    pub decoder: DecoderKind,
    /// Metric path template (see `naming`).
    pub metric: String,
    /// JSON only: field -> metric field name.
    pub fields: Option<BTreeMap<String, String>>,
    /// JSON only: field holding the reading's time.
    pub timestamp_field: Option<String>,
}

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown field, a wrong type.
    #[error("{0}")]
    Parse(#[from] toml::de::Error),
    /// A route's filter is not a valid MQTT filter.
    #[error("route {index} (`{filter}`): {source}")]
    Filter {
        /// The route's position, from 1.
        index: usize,
        /// The filter.
        filter: String,
        /// What is wrong.
        source: FilterError,
    },
    /// A route's metric template is not usable.
    #[error("route {index} (`{filter}`): {source}")]
    Template {
        /// The route's position, from 1.
        index: usize,
        /// The filter.
        filter: String,
        /// What is wrong.
        source: TemplateError,
    },
    /// Any other inconsistency.
    #[error("{0}")]
    Invalid(String),
}

impl CollectorConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<CollectorConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        CollectorConfig::parse(&text)
    }

    /// Parses and checks config text.
    pub fn parse(text: &str) -> Result<CollectorConfig, ConfigError> {
        let config: CollectorConfig = toml::from_str(text)?;
        config.route_table()?;
        if config.routes.is_empty() {
            return Err(ConfigError::Invalid("no [[route]] given".into()));
        }
        if config.mqtt.client_id.is_empty() {
            return Err(ConfigError::Invalid(
                "mqtt.client_id must not be empty: the persistent session needs a fixed id".into(),
            ));
        }
        let q = &config.queue;
        if q.segment_bytes < 4096 || q.max_bytes < q.segment_bytes {
            return Err(ConfigError::Invalid(
                "queue.segment_bytes must be at least 4096 and at most queue.max_bytes".into(),
            ));
        }
        if config.graphite.batch_bytes == 0 || config.graphite.reconnect_min_ms == 0 {
            return Err(ConfigError::Invalid(
                "graphite.batch_bytes and graphite.reconnect_min_ms must be positive".into(),
            ));
        }
        Ok(config)
    }

    /// The routes, checked and compiled.
    pub fn route_table(&self) -> Result<RouteTable, ConfigError> {
        let mut out = Vec::new();
        for (i, r) in self.routes.iter().enumerate() {
            let index = i + 1;
            routes::check_filter(&r.filter).map_err(|source| ConfigError::Filter {
                index,
                filter: r.filter.clone(),
                source,
            })?;
            let template =
                MetricTemplate::parse(&r.metric).map_err(|source| ConfigError::Template {
                    index,
                    filter: r.filter.clone(),
                    source,
                })?;
            if template.needs_iqrf_fields() && r.decoder != DecoderKind::Iqrf {
                return Err(ConfigError::Invalid(format!(
                    "route {index} (`{}`): {{node}} and {{index}} exist only with decoder = \"iqrf\"",
                    r.filter
                )));
            }
            if r.decoder != DecoderKind::Json && (r.fields.is_some() || r.timestamp_field.is_some())
            {
                return Err(ConfigError::Invalid(format!(
                    "route {index} (`{}`): fields and timestamp_field exist only with decoder = \"json\"",
                    r.filter
                )));
            }
            out.push(Route {
                filter: r.filter.clone(),
                decoder: Decoder::new(r.decoder, r.fields.clone(), r.timestamp_field.clone()),
                template,
            });
        }
        Ok(RouteTable::new(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[mqtt]
broker = "127.0.0.1:1883"
client_id = "collector-gw1"

[queue]
dir = "/var/lib/pisek/collector"

[graphite]
address = "10.1.0.10:2003"

[[route]]
filter = "iqrf/+/sensors"
decoder = "iqrf"
metric = "austin.{topic.1}.node{node}.{field}"

[[route]]
filter = "rooms/#"
decoder = "json"
metric = "austin.{topic.1}.{field}"
fields = { t = "temperature", c = "co2" }
timestamp_field = "ts"
"#;

    #[test]
    fn reads_the_documented_example() {
        let c = CollectorConfig::parse(EXAMPLE).unwrap();
        assert_eq!(c.mqtt.client_id, "collector-gw1");
        assert_eq!(c.routes.len(), 2);
        assert_eq!(c.graphite.batch_bytes, 64 * 1024);
        assert_eq!(c.route_table().unwrap().routes().len(), 2);
    }

    #[test]
    fn names_an_unknown_field() {
        let text = EXAMPLE.replace("client_id", "clientid");
        let err = CollectorConfig::parse(&text).unwrap_err().to_string();
        assert!(err.contains("unknown field `clientid`"), "{err}");
    }

    #[test]
    fn refuses_iqrf_placeholders_on_other_decoders() {
        let text = EXAMPLE.replace("austin.{topic.1}.{field}", "x.{node}");
        let err = CollectorConfig::parse(&text).unwrap_err().to_string();
        assert!(err.contains("only with decoder = \"iqrf\""), "{err}");
    }

    #[test]
    fn refuses_a_bad_filter_and_template_naming_the_route() {
        let err = CollectorConfig::parse(&EXAMPLE.replace("rooms/#", "rooms/#/x"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("route 2 (`rooms/#/x`)"), "{err}");
        let err = CollectorConfig::parse(&EXAMPLE.replace("node{node}", "node{nod}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown placeholder `{nod}`"), "{err}");
    }
}
