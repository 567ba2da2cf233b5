//! The sensor collector end to end against the real peers: mosquitto as the
//! broker and carbon-cache (graphite-carbon) as the sink, read back from the
//! whisper files with `whisper-fetch`. Everything runs in a network namespace
//! of the test's own, so fixed ports do not collide between tests.

use pisek_lab::{Netns, TempDir, poll_until, require, workspace_binary};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MQTT_PORT: u16 = 1883;
const CARBON_PORT: u16 = 2003;
const HEALTH_PORT: u16 = 9108;
const TOOLS: &[&str] = &[
    "mosquitto",
    "mosquitto_pub",
    "carbon-cache",
    "whisper-fetch",
];

/// `127.0.0.1:port`, inside the test's namespace.
fn local(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

fn log_file(dir: &Path, name: &str) -> Stdio {
    Stdio::from(fs::File::create(dir.join(name)).expect("create log file"))
}

fn tail(dir: &Path, name: &str) -> String {
    let text = fs::read_to_string(dir.join(name)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// A process that is SIGKILLed when dropped (the namespace would too).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// mosquitto with a config of the test's own: in-memory, anonymous, a
/// queue large enough to hold what is published while the collector is down.
fn start_mosquitto(ns: &Netns, dir: &Path) -> Proc {
    let conf = dir.join("mosquitto.conf");
    fs::write(
        &conf,
        format!(
            "listener {MQTT_PORT} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_inflight_messages 100\nmax_queued_messages 100000\nlog_dest stdout\n"
        ),
    )
    .expect("write mosquitto.conf");
    let child = ns
        .command("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(log_file(dir, "mosquitto.log"))
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start mosquitto");
    poll_until("mosquitto listening", Duration::from_secs(10), || {
        ns.port_open(local(MQTT_PORT)).then_some(())
    });
    Proc(child)
}

/// carbon-cache with its own config dir: 1-second retention for a day, so
/// every timestamp is stored exactly, and no limit on file creation.
struct Carbon {
    dir: PathBuf,
}

impl Carbon {
    fn new(dir: &Path) -> Carbon {
        let dir = dir.join("carbon");
        for sub in ["whisper", "log", "run"] {
            fs::create_dir_all(dir.join(sub)).expect("carbon dirs");
        }
        let d = dir.display();
        fs::write(
            dir.join("carbon.conf"),
            format!(
                "[cache]\nSTORAGE_DIR = {d}/\nLOCAL_DATA_DIR = {d}/whisper/\nWHISPER_DIR = {d}/whisper/\n\
                 CONF_DIR = {d}/\nLOG_DIR = {d}/log/\nPID_DIR = {d}/run/\nENABLE_TAGS = False\n\
                 MAX_CACHE_SIZE = inf\nMAX_UPDATES_PER_SECOND = inf\nMAX_CREATES_PER_MINUTE = inf\n\
                 LINE_RECEIVER_INTERFACE = 127.0.0.1\nLINE_RECEIVER_PORT = {CARBON_PORT}\n\
                 ENABLE_UDP_LISTENER = False\nPICKLE_RECEIVER_INTERFACE = 127.0.0.1\n\
                 PICKLE_RECEIVER_PORT = 2004\nCACHE_QUERY_INTERFACE = 127.0.0.1\nCACHE_QUERY_PORT = 7002\n\
                 CACHE_WRITE_STRATEGY = sorted\nWHISPER_AUTOFLUSH = False\n"
            ),
        )
        .expect("write carbon.conf");
        fs::write(
            dir.join("storage-schemas.conf"),
            "[all]\npattern = .*\nretentions = 1s:1d\n",
        )
        .expect("write storage-schemas.conf");
        Carbon { dir }
    }

    fn start(&self, ns: &Netns) -> Proc {
        let child = ns
            .command("carbon-cache")
            .arg(format!(
                "--config={}",
                self.dir.join("carbon.conf").display()
            ))
            .args(["--debug", "start"])
            .stdin(Stdio::null())
            .stdout(log_file(&self.dir, "carbon.out"))
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start carbon-cache");
        poll_until("carbon-cache listening", Duration::from_secs(15), || {
            ns.port_open(local(CARBON_PORT)).then_some(())
        });
        Proc(child)
    }

    /// Stops carbon the way an operator does (SIGTERM) and waits for it.
    fn stop(&self, mut proc: Proc) {
        let _ = Command::new("kill").arg(proc.0.id().to_string()).status();
        let _ = proc.0.wait();
    }

    /// The points stored for `metric` between `from` and `until` (inclusive).
    fn points(&self, metric: &str, from: i64, until: i64) -> BTreeMap<i64, f64> {
        let file = self
            .dir
            .join("whisper")
            .join(format!("{}.wsp", metric.replace('.', "/")));
        if !file.exists() {
            return BTreeMap::new();
        }
        let out = Command::new("whisper-fetch")
            .arg(format!("--from={}", from - 1))
            .arg(format!("--until={until}"))
            .arg(&file)
            .output()
            .expect("run whisper-fetch");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (ts, v) = l.split_once('\t')?;
                Some((ts.parse().ok()?, v.parse().ok()?))
            })
            .collect()
    }

    /// Polls [`Carbon::points`] until `ready` accepts what is stored.
    fn poll_points(
        &self,
        what: &str,
        timeout: Duration,
        (metric, from, until): (&str, i64, i64),
        ready: impl Fn(&BTreeMap<i64, f64>) -> bool,
    ) -> BTreeMap<i64, f64> {
        poll_until(what, timeout, || {
            let p = self.points(metric, from, until);
            ready(&p).then_some(p)
        })
    }
}

struct Collector {
    dir: PathBuf,
    config: PathBuf,
}

impl Collector {
    fn new(dir: &Path, routes: &str) -> Collector {
        Collector::with_mqtt(
            dir,
            &format!("broker = \"127.0.0.1:{MQTT_PORT}\"\nclient_id = \"pisek-collector-test\""),
            routes,
        )
    }

    /// `mqtt` is the body of the `[mqtt]` section.
    fn with_mqtt(dir: &Path, mqtt: &str, routes: &str) -> Collector {
        let config = dir.join("collector.toml");
        fs::write(
            &config,
            format!(
                "[mqtt]\n{mqtt}\n\n\
                 [queue]\ndir = \"{}\"\n\n\
                 [graphite]\naddress = \"127.0.0.1:{CARBON_PORT}\"\nreconnect_min_ms = 50\nreconnect_max_ms = 300\n\n\
                 [health]\nlisten = \"127.0.0.1:{HEALTH_PORT}\"\n\n{routes}",
                dir.join("queue").display()
            ),
        )
        .expect("write collector.toml");
        Collector {
            dir: dir.to_path_buf(),
            config,
        }
    }

    fn start(&self, ns: &Netns, log: &str) -> Proc {
        let bin = workspace_binary("pisek-collector");
        assert!(
            bin.exists(),
            "{} is missing: cargo build -p pisek-collector",
            bin.display()
        );
        let child = ns
            .command(&bin)
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(&self.dir, log))
            .spawn()
            .expect("start pisek-collector");
        poll_until(
            "collector healthy and subscribed",
            Duration::from_secs(10),
            || ns.http_get(local(HEALTH_PORT), "/health").ok(),
        );
        Proc(child)
    }

    fn metric(ns: &Netns, name: &str) -> u64 {
        let text = ns
            .http_get(local(HEALTH_PORT), "/metrics")
            .unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("pisek_collector_{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// `mosquitto_pub` in `ns`, set to publish with QoS 1 to `topic`.
fn mosquitto_pub(ns: &Netns, topic: &str) -> Command {
    let mut cmd = ns.command("mosquitto_pub");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &MQTT_PORT.to_string(),
        "-q",
        "1",
        "-t",
        topic,
    ]);
    cmd
}

/// Publishes each line of `lines` as one QoS 1 message to `topic`.
fn publish_lines(ns: &Netns, topic: &str, lines: &[String]) {
    let mut child = mosquitto_pub(ns, topic)
        .arg("-l")
        .stdin(Stdio::piped())
        .spawn()
        .expect("start mosquitto_pub");
    let mut stdin = child.stdin.take().expect("stdin");
    for l in lines {
        writeln!(stdin, "{l}").expect("write to mosquitto_pub");
    }
    drop(stdin);
    assert!(
        child.wait().expect("mosquitto_pub").success(),
        "mosquitto_pub failed"
    );
}

/// Publishes one QoS 1 message (any bytes) to `topic`.
fn publish(ns: &Netns, dir: &Path, topic: &str, payload: &[u8]) {
    let file = dir.join("payload.bin");
    fs::write(&file, payload).expect("write payload");
    let status = mosquitto_pub(ns, topic)
        .arg("-f")
        .arg(&file)
        .status()
        .expect("run mosquitto_pub");
    assert!(status.success(), "mosquitto_pub to {topic} failed");
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix time shifted by `offset_secs`.
fn civil(ts: i64, offset_secs: i64) -> String {
    pisek_lab::sensor_lab::civil_time(ts + offset_secs)
}

/// A namespace `tag` with mosquitto, carbon and the collector (logging to
/// `log`) running on [`ROUTES`], each started in that order.
fn start_lab(tag: &str, log: &str) -> (Netns, TempDir, Proc, Carbon, Proc, Collector, Proc) {
    let ns = Netns::new(tag);
    let tmp = TempDir::new(tag);
    let mosquitto = start_mosquitto(&ns, &tmp.path);
    let carbon = Carbon::new(&tmp.path);
    let carbon_proc = carbon.start(&ns);
    let collector = Collector::new(&tmp.path, ROUTES);
    let collector_proc = collector.start(&ns, log);
    (
        ns,
        tmp,
        mosquitto,
        carbon,
        carbon_proc,
        collector,
        collector_proc,
    )
}

// The IQRF Gateway Daemon's documented response examples
// (iqrf-gateway-daemon, api/examples/), with the timestamps moved into the
// last day so carbon's 1-second archive keeps them.
const READ_WITH_TYPES: &str = r#"{"mType":"iqrfSensor_ReadSensorsWithTypes","data":{"msgId":"testEmbedSensor","rsp":{"nAdr":1,"pNum":94,"pCmd":129,"hwpId":5122,"rCode":0,"dpaVal":81,"result":{"sensors":[{"id":"TEMPERATURE","type":1,"name":"Temperature","shortName":"t","value":28.5,"unit":"°C","decimalPlaces":4},{"id":"CO2","type":2,"name":"Carbon dioxide","shortName":"CO2","value":2439,"unit":"ppm","decimalPlaces":0}],"sensorIndexes":[0,1]}},"raw":[{"request":"01.00.5e.01.ff.ff.03.00.00.00","requestTs":"2022-12-15T08:50:55.602+01:00","confirmation":"01.00.5e.01.ff.ff.ff.50.01.08.01","confirmationTs":"2022-12-15T08:50:55.629+01:00","response":"01.00.5e.81.02.14.00.51.01.c8.01.02.87.09","responseTs":"RESPONSE_TS"}],"insId":"iqrfgd2-default","statusStr":"ok","status":0}}"#;
const FRC_OLD: &str = r#"{"mType":"iqrfSensor_Frc","data":{"msgId":"testEmbedSensor","rsp":{"nAdr":0,"hwpId":0,"rCode":0,"dpaVal":57,"result":{"sensors":[null,{"id":"TEMPERATURE","type":1,"name":"Temperature","shortName":"T","value":27,"unit":"°C"},{"id":"TEMPERATURE","type":1,"name":"Temperature","shortName":"T","unit":"°C"},null,{"id":"TEMPERATURE","type":1,"name":"Temperature","shortName":"T","unit":"°C"}]}},"raw":{"request":"00.00.0d.00.ff.ff.90.5e.01.01.00","requestTs":"2018-07-18T16:30:43.43132","confirmation":"","confirmationTs":"","response":"00.00.0d.80.00.00.00.39.05.00.62.01","responseTs":"RESPONSE_TS"},"insId":"iqrfgd2-1","statusStr":"ok","status":0}}"#;
const FRC_NADR: &str = r#"{"mType":"iqrfSensor_Frc","data":{"msgId":"testEmbedSensor","rsp":{"nAdr":0,"hwpId":0,"rCode":0,"dpaVal":88,"result":{"sensors":[{"nadr":3,"sensor":{"id":"BINARYDATA7","type":129,"name":"Binary data7","shortName":"bin7","value":7,"unit":"?","decimalPlaces":0},"metaData":{}},{"nadr":4,"sensor":null,"metaData":{}},{"nadr":5,"sensor":{"id":"BINARYDATA7","type":129,"name":"Binary data7","shortName":"bin7","value":7,"unit":"?","decimalPlaces":0},"metaData":{}}]}},"status":0}}"#;
const REPORT_READING: &str = r#"{"mType":"iqrfSensorData_ReportAsync","data":{"msgId":"async","rsp":{"reading":true},"status":0,"statusStr":"ok","insId":"iqrfgd2-default"}}"#;
const REPORT: &str = r#"{"mType":"iqrfSensorData_ReportAsync","data":{"msgId":"async","rsp":{"devices":[{"address":1,"hwpid":10244,"mid":2165474388,"rssi":-63,"sensors":[]},{"address":2,"hwpid":33796,"mid":2165517735,"rssi":-67,"sensors":[{"index":0,"type":1,"name":"Temperature","unit":"°C","value":23.25},{"index":1,"type":128,"name":"Relative humidity","unit":"%","value":51.0},{"index":2,"type":4,"name":"Extra-low voltage","unit":"V","value":3.184}]}],"reading":false},"status":0,"statusStr":"ok","insId":"iqrfgd2-default"}}"#;

const ROUTES: &str = r#"
[[route]]
filter = "lamps/+/count"
decoder = "plain"
metric = "e2e.lamps.{topic.1}.count"

[[route]]
filter = "rooms/+/env"
decoder = "json"
metric = "e2e.rooms.{topic.1}.{field}"
fields = { t = "temperature", c = "co2" }
timestamp_field = "ts"

[[route]]
filter = "iqrf/#"
decoder = "iqrf"
metric = "e2e.{topic.1}.node{node}.{field}"
"#;

#[test]
fn plain_json_and_iqrf_readings_arrive_in_whisper_with_values_and_timestamps() {
    if !require("collector e2e", TOOLS) {
        return;
    }
    let (ns, tmp, _mosquitto, carbon, _carbon, _collector_cfg, _collector) =
        start_lab("ce", "collector.log");

    let start = now();
    // Plain numbers: no timestamp of their own, stamped on receipt.
    for lamp in 1..=5 {
        publish(
            &ns,
            &tmp.path,
            &format!("lamps/l{lamp}/count"),
            format!("{}", 10 + lamp).as_bytes(),
        );
    }
    // JSON objects with their own timestamps, one second apart.
    let base = start - 3_600;
    let json: Vec<String> = (0..200)
        .map(|i| {
            format!(
                r#"{{"t": {}, "c": {}, "ts": {}}}"#,
                20.0 + f64::from(i) / 10.0,
                400 + i,
                base + i64::from(i)
            )
        })
        .collect();
    publish_lines(&ns, "rooms/r1/env", &json);
    // Bad payloads in between: counted, not stored, and not in the way.
    publish(&ns, &tmp.path, "lamps/bad/count", b"NaN");
    publish(&ns, &tmp.path, "rooms/bad/env", b"{\"t\": ");
    publish(&ns, &tmp.path, "rooms/bad/env", b"{\"t\": \"warm\"}");
    publish(&ns, &tmp.path, "rooms/bad/env", &vec![b'['; 300 * 1024]);
    // The daemon's examples; RESPONSE_TS in +01:00 and in the zone-less form.
    let rwt_ts = start - 600;
    let frc_ts = start - 500;
    publish(
        &ns,
        &tmp.path,
        "iqrf/austin/rwt",
        READ_WITH_TYPES
            .replace(
                "RESPONSE_TS",
                &format!("{}.876+01:00", civil(rwt_ts, 3_600)),
            )
            .as_bytes(),
    );
    publish(
        &ns,
        &tmp.path,
        "iqrf/austin/frc",
        FRC_OLD
            .replace("RESPONSE_TS", &format!("{}.794327", civil(frc_ts, 0)))
            .as_bytes(),
    );
    publish(&ns, &tmp.path, "iqrf/pisek/frc", FRC_NADR.as_bytes());
    publish(
        &ns,
        &tmp.path,
        "iqrf/pisek/report",
        REPORT_READING.as_bytes(),
    );
    publish(&ns, &tmp.path, "iqrf/pisek/report", REPORT.as_bytes());
    let end = now() + 1;

    let temperature = carbon.poll_points(
        "200 JSON temperatures in whisper",
        Duration::from_secs(20),
        ("e2e.rooms.r1.temperature", base, base + 199),
        |p| p.len() == 200,
    );
    let co2 = carbon.poll_points(
        "200 JSON CO2 readings in whisper",
        Duration::from_secs(10),
        ("e2e.rooms.r1.co2", base, base + 199),
        |p| p.len() == 200,
    );
    for i in 0..200 {
        let ts = base + i64::from(i);
        assert!(
            (temperature[&ts] - (20.0 + f64::from(i) / 10.0)).abs() < 1e-9,
            "temperature at {ts}"
        );
        assert_eq!(co2[&ts], f64::from(400 + i), "co2 at {ts}");
    }
    for lamp in 1..=5 {
        let p = carbon.poll_points(
            "plain lamp count in whisper",
            Duration::from_secs(10),
            (&format!("e2e.lamps.l{lamp}.count"), start, end),
            |p| !p.is_empty(),
        );
        assert_eq!(
            p.values().copied().collect::<Vec<_>>(),
            vec![f64::from(10 + lamp)]
        );
    }
    let exact = |metric: &str, ts: i64, value: f64| {
        let p = carbon.poll_points(metric, Duration::from_secs(10), (metric, ts, ts), |p| {
            !p.is_empty()
        });
        assert_eq!(p, BTreeMap::from([(ts, value)]), "{metric}");
    };
    exact("e2e.austin.node1.temperature", rwt_ts, 28.5);
    exact("e2e.austin.node1.co2", rwt_ts, 2439.0);
    exact("e2e.austin.node1.temperature", frc_ts, 27.0);
    let received = |metric: &str, value: f64| {
        let p = carbon.poll_points(metric, Duration::from_secs(10), (metric, start, end), |p| {
            !p.is_empty()
        });
        assert_eq!(
            p.values().copied().collect::<Vec<_>>(),
            vec![value],
            "{metric}"
        );
    };
    received("e2e.pisek.node3.binary_data7", 7.0);
    received("e2e.pisek.node5.binary_data7", 7.0);
    received("e2e.pisek.node2.temperature", 23.25);
    received("e2e.pisek.node2.relative_humidity", 51.0);
    received("e2e.pisek.node2.extra_low_voltage", 3.184);
    // Node 4 did not answer the FRC: no file for it.
    assert!(
        carbon
            .points("e2e.pisek.node4.binary_data7", start, end)
            .is_empty()
    );

    assert_eq!(
        Collector::metric(&ns, "decode_errors_total"),
        4,
        "{}",
        tail(&tmp.path, "collector.log")
    );
    assert_eq!(Collector::metric(&ns, "messages_without_readings_total"), 1);
    // 5 plain + 400 JSON + 2 + 1 + 2 + 3 IQRF.
    assert_eq!(Collector::metric(&ns, "readings_queued_total"), 413);
}

#[test]
fn nothing_is_lost_when_carbon_is_down_and_the_collector_is_killed() {
    if !require("collector outage", TOOLS) {
        return;
    }
    let (ns, tmp, _mosquitto, carbon, carbon_proc, collector, collector_proc) =
        start_lab("co", "collector-1.log");

    let base = now() - 7_200;
    let batch = |from: i64, n: i64| -> Vec<String> {
        (from..from + n)
            .map(|i| format!(r#"{{"c": {}, "ts": {}}}"#, 1000 + i, base + i))
            .collect()
    };
    let stored = |upto: i64| carbon.points("e2e.rooms.outage.co2", base, base + upto - 1);

    // A: carbon up.
    publish_lines(&ns, "rooms/outage/env", &batch(0, 100));
    poll_until("batch A stored", Duration::from_secs(20), || {
        (stored(100).len() == 100).then_some(())
    });

    // B: carbon down; the collector queues durably, then is SIGKILLed.
    carbon.stop(carbon_proc);
    publish_lines(&ns, "rooms/outage/env", &batch(100, 100));
    poll_until("batch B queued", Duration::from_secs(10), || {
        (Collector::metric(&ns, "readings_queued_total") >= 200).then_some(())
    });
    drop(collector_proc); // SIGKILL

    // C: the collector is down; mosquitto keeps the persistent session's messages.
    publish_lines(&ns, "rooms/outage/env", &batch(200, 100));

    let _carbon = carbon.start(&ns);
    let _collector = collector.start(&ns, "collector-2.log");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut points = stored(300);
    while points.len() < 300 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        points = stored(300);
    }
    let sent: BTreeMap<i64, f64> = (0..300).map(|i| (base + i, (1000 + i) as f64)).collect();
    assert_eq!(
        points,
        sent,
        "sent = stored, zero lost; stored {} of 300\nfirst run:\n{}\nsecond run:\n{}\n{}",
        points.len(),
        tail(&tmp.path, "collector-1.log"),
        tail(&tmp.path, "collector-2.log"),
        ns.http_get(local(HEALTH_PORT), "/metrics")
            .unwrap_or_default()
    );
}

#[test]
fn the_embedded_broker_needs_no_separate_mqtt_server() {
    if !require("collector embedded broker", TOOLS) {
        return;
    }
    let ns = Netns::new("cb");
    let tmp = TempDir::new("cb");
    let carbon = Carbon::new(&tmp.path);
    let _carbon = carbon.start(&ns);
    // No [mqtt] broker: the collector starts rumqttd on the MQTT port itself.
    let embedded = format!("[embedded_broker]\nlisten = \"127.0.0.1:{MQTT_PORT}\"\n\n{ROUTES}");
    let collector =
        Collector::with_mqtt(&tmp.path, "client_id = \"pisek-collector-test\"", &embedded);
    let _collector = collector.start(&ns, "collector.log");

    let base = now() - 1_800;
    let lines: Vec<String> = (0..50)
        .map(|i| format!(r#"{{"c": {}, "ts": {}}}"#, 500 + i, base + i))
        .collect();
    publish_lines(&ns, "rooms/embedded/env", &lines);
    let points = carbon.poll_points(
        "50 readings through the embedded broker",
        Duration::from_secs(15),
        ("e2e.rooms.embedded.co2", base, base + 49),
        |p| p.len() == 50,
    );
    let sent: BTreeMap<i64, f64> = (0..50).map(|i| (base + i, (500 + i) as f64)).collect();
    assert_eq!(points, sent, "{}", tail(&tmp.path, "collector.log"));
}
