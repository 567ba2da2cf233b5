//! Sensor data across the overlay in the two-gateway lab (`pisek_lab::lab`,
//! `pisek_lab::sensor_lab`): on each gateway simulated sensors publish over MQTT
//! to a real `pisek-collector` in a conference workload, which writes to a
//! real carbon-cache attached on the edge as the conference datacenter
//! service. What carbon stored is read back from its whisper files.
//!
//! Proves: every reading of a known series from both gateways is in
//! Graphite with its exact value and timestamp under the gateway's own
//! paths; carbon's connections come from the two gateways' workloads, so
//! the points crossed gateway -> WireGuard/MPLS -> edge; and with carbon
//! stopped the collectors queue, then deliver everything once it is back.

use pisek_lab::Lab;
use pisek_lab::sensor_lab::{SensorLab, SensorPlan, unix_now};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

const TOOLS: &[&str] = &["ip", "ss", "carbon-cache", "whisper-fetch"];

/// Rounds per series: each round is 12 readings per gateway.
const ROUNDS: u64 = 15;

type Points = BTreeMap<String, BTreeMap<i64, f64>>;

/// What carbon must hold for `gateway` after the rounds stamped `from..until`.
fn expected(sensors: &SensorLab, gateway: &str, from: i64, until: i64) -> Points {
    sensors
        .expected(gateway, from, until)
        .expect("the gateway's sensors")
}

/// Waits until carbon holds exactly `want` for `gateway` (from `since` on).
fn wait_for_points(sensors: &SensorLab, lab: &Lab, gateway: &str, since: i64, want: &Points) {
    let waited = pisek_lab::poll(
        &format!("{gateway}'s readings in whisper"),
        Duration::from_secs(30),
        || Ok(sensors.stored(gateway, since)?.eq(want).then_some(())),
    );
    if let Err(e) = waited {
        let stored = sensors.stored(gateway, since).unwrap_or_default();
        let wrong: Vec<String> = want
            .iter()
            .flat_map(|(metric, points)| {
                let got = stored.get(metric);
                points
                    .iter()
                    .filter(move |(ts, v)| got.and_then(|g| g.get(ts)) != Some(v))
                    .map(move |(ts, v)| {
                        let found = got.and_then(|g| g.get(ts));
                        format!("{metric} at {ts}: want {v}, stored {found:?}")
                    })
            })
            .collect();
        let extra: Vec<&String> = stored.keys().filter(|m| !want.contains_key(*m)).collect();
        panic!(
            "{e}\n{} points wrong or missing, first: {:?}\nunexpected metrics: {extra:?}\n{}\n{}",
            wrong.len(),
            &wrong[..wrong.len().min(5)],
            sensors.logs(),
            lab.logs()
        );
    }
}

/// Reads every metric of `want` with graphite's own `whisper-fetch` (all at
/// once) and checks it agrees: the lab's whisper reader is not what proves
/// the data arrived.
fn check_with_whisper_fetch(sensors: &SensorLab, want: &Points, from: i64, until: i64) {
    let fetches: Vec<_> = want
        .keys()
        .map(|metric| {
            let file = sensors.whisper_file(metric).expect("carbon runs");
            let child = Command::new("whisper-fetch")
                .arg(format!("--from={}", from - 1))
                .arg(format!("--until={}", until - 1))
                .arg(&file)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("run whisper-fetch");
            (metric, child)
        })
        .collect();
    for (metric, child) in fetches {
        let out = child.wait_with_output().expect("whisper-fetch");
        assert!(out.status.success(), "whisper-fetch {metric}");
        let fetched: BTreeMap<i64, f64> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (ts, v) = l.split_once('\t')?;
                Some((ts.parse().ok()?, v.parse().ok()?))
            })
            .collect();
        assert_eq!(&fetched, &want[metric], "whisper-fetch {metric}");
    }
}

/// The remote addresses of carbon's established line-receiver connections.
fn carbon_peers(lab: &Lab, sensors: &SensorLab) -> Vec<String> {
    let dc = lab.workload("edge", "conference", 1);
    let filter = format!("( sport = :{} )", sensors.carbon_address().port());
    let out = lab
        .exec(&dc.netns, "ss", &["-Htn", "state", "established", &filter])
        .expect("ss");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter_map(|peer| peer.rsplit_once(':').map(|(a, _)| a.to_string()))
        .collect()
}

#[test]
fn readings_from_both_gateways_reach_graphite_behind_the_edge_and_survive_a_carbon_outage() {
    if !pisek_lab::require("lab sensors", TOOLS) {
        return;
    }
    let lab =
        Lab::start(&pisek_lab::unique_tag("ls"), pisek_lab::lab_binaries()).expect("start the lab");
    lab.wait_until_ready(Duration::from_secs(30))
        .expect("lab ready");
    let first = unix_now() - 1_200;
    let series = SensorPlan::series(first, ROUNDS, Duration::from_millis(20));
    let mut sensors = SensorLab::start(
        &lab,
        &pisek_lab::workspace_binary("pisek-collector"),
        series,
    )
    .expect("start the sensor side");
    assert!(sensors.has_carbon());

    // Every reading of both gateways, exact value and timestamp, under the
    // gateway's own paths and nothing else.
    let until = first + ROUNDS as i64;
    for gateway in ["gw1", "gw2"] {
        let want = expected(&sensors, gateway, first, until);
        assert_eq!(want.len(), 12, "3 rooms x 3 quantities + 3 IQRF quantities");
        wait_for_points(&sensors, &lab, gateway, first, &want);
        check_with_whisper_fetch(&sensors, &want, first, until);
        let counters = &sensors.gateway(gateway).expect("gw").counters;
        pisek_lab::poll(
            &format!("{gateway}'s sensors done"),
            Duration::from_secs(5),
            || Ok(counters.finished.load(Ordering::Relaxed).then_some(())),
        )
        .expect("sensors done");
        let published = counters.published.load(Ordering::Relaxed);
        assert_eq!(published, 12 * ROUNDS, "{gateway}: readings acknowledged");
    }

    // Carbon's peers are the two gateways' collector workloads: the points
    // came through the overlay, not from anywhere on the edge.
    let mut peers = carbon_peers(&lab, &sensors);
    peers.sort();
    let mut collectors: Vec<String> = sensors
        .gateways()
        .iter()
        .map(|g| g.address.to_string())
        .collect();
    collectors.sort();
    assert_eq!(peers, collectors, "carbon's connections");

    // Carbon away: the collectors queue the next series, then deliver all
    // of it when carbon is back.
    sensors.stop_carbon().expect("stop carbon");
    let second = until;
    sensors
        .publish(SensorPlan::series(
            second,
            ROUNDS,
            Duration::from_millis(20),
        ))
        .expect("publish the second series");
    for g in sensors.gateways() {
        pisek_lab::poll(
            &format!("{} published the second series", g.gateway),
            Duration::from_secs(20),
            || Ok(g.counters.finished.load(Ordering::Relaxed).then_some(())),
        )
        .expect("second series published");
    }
    // The queue holds the whole second series (its Graphite lines at
    // least; record headers come on top), and says so in /metrics.
    for gateway in ["gw1", "gw2"] {
        let lines: usize = expected(&sensors, gateway, second, second + ROUNDS as i64)
            .iter()
            .flat_map(|(metric, points)| {
                points
                    .iter()
                    .map(move |(ts, v)| format!("{metric} {v} {ts}\n").len())
            })
            .sum();
        pisek_lab::poll(
            &format!("{gateway}'s queue depth covering the second series"),
            Duration::from_secs(10),
            || {
                let depth = sensors.collector_metric(gateway, "queue_depth_bytes").ok();
                Ok(depth.filter(|d| *d >= lines as u64).map(|_| ()))
            },
        )
        .expect("queue depth");
    }
    sensors.start_carbon().expect("start carbon again");
    for gateway in ["gw1", "gw2"] {
        let want = expected(&sensors, gateway, first, second + ROUNDS as i64);
        wait_for_points(&sensors, &lab, gateway, first, &want);
    }
    for gateway in ["gw1", "gw2"] {
        pisek_lab::poll(
            &format!("{gateway}'s queue drained"),
            Duration::from_secs(10),
            || {
                let depth = sensors.collector_metric(gateway, "queue_depth_bytes").ok();
                Ok((depth == Some(0)).then_some(()))
            },
        )
        .expect("queue drained");
    }
}
