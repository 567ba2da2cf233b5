//! The collector's own counters, shared by its tasks and served as
//! Prometheus text on `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Counters and gauges. All relaxed atomics: each is read on its own.
#[derive(Debug, Default)]
pub struct Metrics {
    /// MQTT messages received.
    pub messages_received: AtomicU64,
    /// Messages that decoded to no reading (an IQRF "reading in progress").
    pub messages_without_readings: AtomicU64,
    /// Messages refused: no route, bad payload, unnameable sample.
    pub decode_errors: AtomicU64,
    /// Readings durably queued.
    pub readings_queued: AtomicU64,
    /// Readings carbon's TCP stack acknowledged (removed from the queue).
    pub readings_sent: AtomicU64,
    /// Times the input waited because the queue was full.
    pub queue_full_waits: AtomicU64,
    /// Unsent bytes in the queue.
    pub queue_depth_bytes: AtomicU64,
    /// The queue's size limit.
    pub queue_max_bytes: AtomicU64,
    /// Queue records skipped for a bad checksum.
    pub queue_corrupt_records: AtomicU64,
    /// Connections to carbon opened.
    pub graphite_connects: AtomicU64,
    /// Connected to carbon now.
    pub graphite_connected: AtomicBool,
    /// Connected to the MQTT broker now.
    pub mqtt_connected: AtomicBool,
    /// The broker confirmed the subscriptions of the current connection.
    pub mqtt_subscribed: AtomicBool,
}

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut one = |name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP pisek_collector_{name} {help}");
            let _ = writeln!(out, "# TYPE pisek_collector_{name} {kind}");
            let _ = writeln!(out, "pisek_collector_{name} {v}");
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let flag = |a: &AtomicBool| u64::from(a.load(Ordering::Relaxed));
        one(
            "messages_received_total",
            "counter",
            "MQTT messages received.",
            get(&self.messages_received),
        );
        one(
            "messages_without_readings_total",
            "counter",
            "Messages that carried no reading.",
            get(&self.messages_without_readings),
        );
        one(
            "decode_errors_total",
            "counter",
            "Messages refused (no route, bad payload).",
            get(&self.decode_errors),
        );
        one(
            "readings_queued_total",
            "counter",
            "Readings durably queued.",
            get(&self.readings_queued),
        );
        one(
            "readings_sent_total",
            "counter",
            "Readings acknowledged by carbon's TCP.",
            get(&self.readings_sent),
        );
        one(
            "queue_full_waits_total",
            "counter",
            "Times MQTT input waited on a full queue.",
            get(&self.queue_full_waits),
        );
        one(
            "queue_depth_bytes",
            "gauge",
            "Unsent bytes in the queue.",
            get(&self.queue_depth_bytes),
        );
        one(
            "queue_max_bytes",
            "gauge",
            "Queue size limit.",
            get(&self.queue_max_bytes),
        );
        one(
            "queue_corrupt_records_total",
            "counter",
            "Queue records skipped for a bad checksum.",
            get(&self.queue_corrupt_records),
        );
        one(
            "graphite_connects_total",
            "counter",
            "Connections to carbon opened.",
            get(&self.graphite_connects),
        );
        one(
            "graphite_connected",
            "gauge",
            "1 when connected to carbon.",
            flag(&self.graphite_connected),
        );
        one(
            "mqtt_connected",
            "gauge",
            "1 when connected to the MQTT broker.",
            flag(&self.mqtt_connected),
        );
        one(
            "mqtt_subscribed",
            "gauge",
            "1 when the broker confirmed the subscriptions.",
            flag(&self.mqtt_subscribed),
        );
        out
    }

    /// `Ok(summary)` when healthy (MQTT connected, queue not full),
    /// `Err(reason)` otherwise. Carbon being away is not unhealthy: that is
    /// what the queue is for; it shows in the summary.
    pub fn health(&self) -> Result<String, String> {
        let depth = self.queue_depth_bytes.load(Ordering::Relaxed);
        let max = self.queue_max_bytes.load(Ordering::Relaxed);
        let mqtt = self.mqtt_connected.load(Ordering::Relaxed);
        let subscribed = self.mqtt_subscribed.load(Ordering::Relaxed);
        let carbon = self.graphite_connected.load(Ordering::Relaxed);
        let summary = format!(
            "mqtt_connected={mqtt} graphite_connected={carbon} queue_depth_bytes={depth} queue_max_bytes={max}"
        );
        if !mqtt {
            Err(format!("MQTT broker not connected; {summary}"))
        } else if !subscribed {
            Err(format!("MQTT subscriptions not confirmed yet; {summary}"))
        } else if max > 0 && depth * 10 >= max * 9 {
            Err(format!("queue at least 90% full; {summary}"))
        } else {
            Ok(summary)
        }
    }
}
