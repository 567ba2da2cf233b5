//! Macro benchmark of the collector alone: the real input (route, decode,
//! name, durable queue with fsync group commit, manual acks) and the real
//! Graphite writer (batching, SIOCOUTQ confirmation, queue acks) into a plain
//! TCP sink that counts lines. MQTT publishes are generated in-process, so
//! the figure is the collector's own cost per reading, without a broker.
//!
//! Run it on one core: `benches/collector.sh` does
//! `taskset -c 1 target/release/deps/collector-* --bench`.
//! Prints readings/s and the process's peak RSS (VmHWM).

use bytes::Bytes;
use pisek_collector::config::CollectorConfig;
use pisek_collector::graphite::{self, WriterOptions};
use pisek_collector::input;
use pisek_collector::metrics::Metrics;
use pisek_collector::queue::shared::SharedQueue;
use pisek_collector::queue::{DurableQueue, QueueOptions};
use rumqttc::{AsyncClient, Publish, QoS};
use std::io::Read;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const CONFIG: &str = r#"
[graphite]
address = "unused:2003"

[[route]]
filter = "lamps/+/count"
decoder = "plain"
metric = "bench.lamps.{topic.1}.count"

[[route]]
filter = "rooms/+/env"
decoder = "json"
metric = "bench.rooms.{topic.1}.{field}"
fields = { t = "temperature", c = "co2" }
timestamp_field = "ts"
"#;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn run(kind: &str, messages: u64, readings_per_message: u64) -> (f64, u64) {
    let config = CollectorConfig::parse(CONFIG).expect("bench config");
    let routes = config.route_table().expect("routes");
    let dir = std::env::temp_dir().join(format!(
        "pisek-collector-bench-{}-{kind}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let (queue, _) = DurableQueue::open(QueueOptions {
        dir: dir.clone(),
        max_bytes: 256 << 20,
        segment_bytes: 8 << 20,
    })
    .expect("open queue");
    let shared = Arc::new(SharedQueue::new(queue));
    let metrics = Arc::new(Metrics::default());

    // The sink: counts lines until all readings are in.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind sink");
    let sink_addr = listener.local_addr().expect("sink addr");
    let expected = messages * readings_per_message;
    let sink = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 256 * 1024];
        let mut lines = 0u64;
        while lines < expected {
            let n = conn.read(&mut buf).expect("read sink");
            assert!(n > 0, "writer closed early");
            lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        }
        Instant::now()
    });

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let opts = WriterOptions {
            address: sink_addr.to_string(),
            batch_bytes: 64 * 1024,
            reconnect_min: Duration::from_millis(10),
            reconnect_max: Duration::from_millis(100),
        };
        let (shared, metrics, stop) = (shared.clone(), metrics.clone(), stop.clone());
        std::thread::spawn(move || graphite::run(opts, shared, metrics, stop))
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let start = Instant::now();
    let acker = runtime.block_on(async {
        // No broker: a thread takes the PUBACK requests the event loop would send.
        let (request_tx, request_rx) = flume::bounded(4096);
        let client = AsyncClient::from_senders(request_tx);
        let acker = std::thread::spawn(move || request_rx.iter().count() as u64);
        let (tx, rx) = mpsc::channel(8192);
        let input = tokio::spawn(input::run_input(
            rx,
            client,
            routes,
            shared.clone(),
            metrics.clone(),
        ));
        let now = 1_700_000_000u64;
        for i in 0..messages {
            let (topic, payload) = if kind == "plain" {
                (
                    format!("lamps/l{}/count", i % 1000),
                    Bytes::from(format!("{}.5", i % 977)),
                )
            } else {
                (
                    format!("rooms/r{}/env", i % 100),
                    Bytes::from(format!(
                        r#"{{"t": {}.25, "c": {}, "ts": {}}}"#,
                        i % 40,
                        400 + i % 300,
                        now + i
                    )),
                )
            };
            let mut p = Publish::new(topic, QoS::AtLeastOnce, Vec::new());
            p.payload = payload;
            p.pkid = (i % 65_535 + 1) as u16;
            tx.send(p).await.expect("input alive");
        }
        drop(tx);
        input.await.expect("input task").expect("input ok");
        acker
    });
    let done = sink.join().expect("sink");
    assert_eq!(
        acker.join().expect("acker"),
        messages,
        "every message acknowledged"
    );
    stop.store(true, Ordering::Relaxed);
    let _ = writer.join();
    let _ = std::fs::remove_dir_all(&dir);
    let secs = done.duration_since(start).as_secs_f64();
    (expected as f64 / secs, peak_rss_kib())
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not run us.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n: u64 = std::env::var("COLLECTOR_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    println!("collector alone into a TCP sink ({n} messages each)");
    println!("{:<28} {:>14} {:>12}", "payload", "readings/s", "peak RSS");
    let (rate, rss) = run("plain", n, 1);
    println!(
        "{:<28} {:>14.0} {:>9} KiB",
        "plain number (1/msg)", rate, rss
    );
    let (rate, rss) = run("json", n / 2, 2);
    println!(
        "{:<28} {:>14.0} {:>9} KiB",
        "JSON object (2/msg)", rate, rss
    );
}
