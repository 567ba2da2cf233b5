//! The embedded MQTT broker (rumqttd), started when the config names no
//! broker, so a gateway or a demo needs nothing but the collector.
//!
//! rumqttd keeps sessions in memory: its persistent sessions survive a
//! reconnect of the collector but not a restart of the collector's process.
//! The durable queue still holds everything acknowledged before a crash;
//! what the sensors sent while the process was down is lost with the broker
//! unless they retry. For zero loss across restarts use an external broker.

use super::config::EmbeddedBrokerConfig;
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The broker did not come up.
#[derive(Debug, thiserror::Error)]
#[error("embedded MQTT broker on {0} did not start (is the port in use?)")]
pub struct BrokerError(SocketAddr);

/// Starts the broker in its own threads and waits until it accepts
/// connections; returns the address the collector connects to.
pub fn start(cfg: &EmbeddedBrokerConfig) -> Result<SocketAddr, BrokerError> {
    let server = ServerSettings {
        name: "v4-embedded".into(),
        listen: cfg.listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: cfg.max_payload_bytes,
            max_inflight_count: cfg.max_inflight,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_000,
            max_outgoing_packet_count: 200,
            // Per filter: 8 segments of 4 MiB held in memory.
            max_segment_size: 4 * 1024 * 1024,
            max_segment_count: 8,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("1".to_string(), server)])),
        ..Config::default()
    };
    std::thread::Builder::new()
        .name("collector-broker".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(|_| BrokerError(cfg.listen))?;

    let connect_to = match cfg.listen {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, a.port()))
        }
        other => other,
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&connect_to, Duration::from_millis(200)).is_ok() {
            return Ok(connect_to);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(BrokerError(cfg.listen))
}
