//! `pisek-collector`, the sensor collector: MQTT -> durable queue -> Graphite.
//!
//! Its own crate so the gateway agent links no MQTT broker, client or TLS:
//! the collector runs in a pod on a tenant network and reaches carbon over
//! the overlay like any other workload. The binary is `pisek-collector`;
//! its config reference is docs/collector.md.
//!
//! ```text
//!  sensors ─MQTT─> broker (mosquitto, or the embedded rumqttd)
//!                    │ QoS 1, persistent session, fixed client id
//!   [mqtt task]  rumqttc EventLoop ──Publish──> bounded channel
//!   [input task] burst of publishes -> route by topic filter -> decode
//!                -> Graphite lines -> queue.append; queue.commit (fsync);
//!                then PUBACK each message (manual acks)
//!   [writer thread] queue.read -> TCP write to carbon (plaintext, batched)
//!                -> queue.ack once carbon's TCP has acknowledged the bytes
//!   [health thread] GET /health, GET /metrics (Prometheus text)
//! ```
//! The I/O-free parts, [`decode`], [`naming`], [`queue::record`] and
//! [`routes`], are tested and fuzzed on their own.

pub mod broker;
pub mod config;
pub mod decode;
pub mod graphite;
pub mod health;
pub mod input;
pub mod metrics;
pub mod naming;
pub mod queue;
pub mod ratelimit;
pub mod routes;
pub mod service;
