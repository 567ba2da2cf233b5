//! Wires the collector together: queue, health endpoint, broker, MQTT input
//! and Graphite writer (see the diagram in the module above).

use super::broker::{self, BrokerError};
use super::config::{CollectorConfig, ConfigError, TlsConfig};
use super::graphite::{self, WriterOptions};
use super::health;
use super::input::{self, InputError};
use super::metrics::Metrics;
use super::queue::shared::SharedQueue;
use super::queue::{DurableQueue, QueueError, QueueOptions};
use rumqttc::{AsyncClient, MqttOptions, TlsConfiguration, Transport};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Why the collector stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The config is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The queue could not be opened.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The input stopped on a queue error.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The embedded broker did not start.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// A file, socket or thread could not be set up.
    #[error("{what}: {source}")]
    Io {
        /// What was being set up.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The broker address is not `host:port`.
    #[error("mqtt.broker `{0}` is not host:port")]
    BrokerAddress(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServiceError {
    let what = what.into();
    move |source| ServiceError::Io { what, source }
}

/// Runs the collector until SIGINT or SIGTERM, or a fatal error.
pub fn run(config: CollectorConfig) -> Result<(), ServiceError> {
    let routes = config.route_table()?;
    let metrics = Arc::new(Metrics::default());

    let (queue, recovery) = DurableQueue::open(QueueOptions {
        dir: config.queue.dir.clone(),
        max_bytes: config.queue.max_bytes,
        segment_bytes: config.queue.segment_bytes,
    })?;
    tracing::info!(
        dir = %config.queue.dir.display(),
        segments = recovery.segments,
        pending_bytes = recovery.pending_bytes,
        truncated_bytes = recovery.truncated_bytes,
        ack_reset = recovery.ack_reset,
        "queue opened"
    );
    metrics
        .queue_max_bytes
        .store(config.queue.max_bytes, Ordering::Relaxed);
    SharedQueue::update_gauges(&queue, &metrics);
    let shared = Arc::new(SharedQueue::new(queue));

    if let Some(listen) = config.health.listen {
        let bound = health::spawn(listen, metrics.clone())
            .map_err(io(format!("health endpoint {listen}")))?;
        tracing::info!(%bound, "serving /health and /metrics");
    }

    let (host, port) = match &config.mqtt.broker {
        Some(addr) => split_host_port(addr)?,
        None => {
            let at = broker::start(&config.embedded_broker)?;
            tracing::info!(listen = %config.embedded_broker.listen, "embedded MQTT broker started");
            (at.ip().to_string(), at.port())
        }
    };
    let mut options = MqttOptions::new(config.mqtt.client_id.clone(), host, port);
    options
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(config.mqtt.keep_alive_secs.max(5)))
        .set_max_packet_size(512 * 1024, 64 * 1024);
    if let (Some(user), Some(pass)) = (&config.mqtt.username, &config.mqtt.password) {
        options.set_credentials(user.clone(), pass.clone());
    }
    if let Some(tls) = &config.mqtt.tls {
        options.set_transport(tls_transport(tls)?);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let opts = WriterOptions {
            address: config.graphite.address.clone(),
            batch_bytes: config.graphite.batch_bytes,
            reconnect_min: Duration::from_millis(config.graphite.reconnect_min_ms),
            reconnect_max: Duration::from_millis(
                config
                    .graphite
                    .reconnect_max_ms
                    .max(config.graphite.reconnect_min_ms),
            ),
        };
        let (shared, metrics, stop) = (shared.clone(), metrics.clone(), stop.clone());
        std::thread::Builder::new()
            .name("collector-graphite".into())
            .spawn(move || graphite::run(opts, shared, metrics, stop))
            .map_err(io("graphite writer thread"))?
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(io("tokio runtime"))?;
    let filters: Vec<String> = routes.routes().iter().map(|r| r.filter.clone()).collect();
    let result = runtime.block_on(async move {
        let (client, event_loop) = AsyncClient::new(options, 4096);
        let (tx, rx) = mpsc::channel(8192);
        let poller = tokio::spawn(input::run_event_loop(
            event_loop,
            client.clone(),
            filters,
            tx,
            metrics.clone(),
        ));
        let input = input::run_input(rx, client, routes, shared.clone(), metrics);
        let result = tokio::select! {
            r = input => r.map_err(ServiceError::from),
            _ = shutdown_signal() => {
                tracing::info!("stopping");
                Ok(())
            }
        };
        poller.abort();
        result
    });
    stop.store(true, Ordering::Relaxed);
    let _ = writer.join();
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn split_host_port(addr: &str) -> Result<(String, u16), ServiceError> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| ServiceError::BrokerAddress(addr.into()))?;
    let port = port
        .parse()
        .map_err(|_| ServiceError::BrokerAddress(addr.into()))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(ServiceError::BrokerAddress(addr.into()));
    }
    Ok((host.to_string(), port))
}

fn tls_transport(tls: &TlsConfig) -> Result<Transport, ServiceError> {
    // rumqttc is built without a crypto provider; use ring's for the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let read = |p: &std::path::Path| std::fs::read(p).map_err(io(format!("read {}", p.display())));
    let ca = read(&tls.ca_file)?;
    let client_auth = match (&tls.client_cert_file, &tls.client_key_file) {
        (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
        (None, None) => None,
        _ => {
            return Err(ConfigError::Invalid(
                "mqtt.tls needs both client_cert_file and client_key_file, or neither".into(),
            )
            .into());
        }
    };
    Ok(Transport::tls_with_config(TlsConfiguration::Simple {
        ca,
        alpn: None,
        client_auth,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_broker_addresses() {
        assert_eq!(
            split_host_port("10.0.0.1:1883").unwrap(),
            ("10.0.0.1".into(), 1883)
        );
        assert_eq!(split_host_port("[::1]:1883").unwrap(), ("::1".into(), 1883));
        assert_eq!(
            split_host_port("broker:8883").unwrap(),
            ("broker".into(), 8883)
        );
        assert!(split_host_port("broker").is_err());
        assert!(split_host_port(":1883").is_err());
    }
}
