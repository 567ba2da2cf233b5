//! A gateway's WAN link cut for 60 s while its sensors publish, then
//! restored (issue 13): every reading published during the cut reaches
//! Graphite once the link is back (the collector queues on the gateway),
//! and WireGuard (a ping through the overlay) and BGP (the session to the
//! edge Established) are back within 30 s. Both recovery figures are
//! printed; `docs/benchmarks.md` records them.
use pisek_lab::Lab;
use pisek_lab::sensor_lab::{SensorLab, SensorPlan, unix_now};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const GW1: usize = 1;
const CUT: Duration = Duration::from_secs(60);
const RECOVERY_TARGET: Duration = Duration::from_secs(30);
/// Rounds of the series, one a second: they span the whole cut.
const ROUNDS: u64 = 75;

type Points = BTreeMap<String, BTreeMap<i64, f64>>;

fn expected(sensors: &SensorLab, gateway: &str, from: i64, until: i64) -> Points {
    sensors
        .expected(gateway, from, until)
        .expect("the gateway's sensors")
}

fn bgp_established(lab: &Lab) -> bool {
    lab.json(GW1, &["bgp", "--json"])
        .ok()
        .and_then(|s| s.as_array().cloned())
        .is_some_and(|s| !s.is_empty() && s.iter().all(|n| n["state"] == "Established"))
}

#[test]
fn a_sixty_second_wan_cut_loses_no_reading_and_the_overlay_comes_back() {
    if !pisek_lab::require(
        "a_sixty_second_wan_cut_loses_no_reading_and_the_overlay_comes_back",
        &["ip", "ping", "carbon-cache", "whisper-fetch"],
    ) {
        return;
    }
    let tag = pisek_lab::unique_tag("wc");
    let lab = Lab::start(&tag, pisek_lab::lab_binaries()).expect("the lab starts");
    lab.wait_until_ready(Duration::from_secs(30))
        .expect("lab ready");
    let first = unix_now() - 1_200;
    let plan = SensorPlan::series(first, ROUNDS, Duration::from_secs(1));
    let sensors = SensorLab::start(&lab, &pisek_lab::workspace_binary("pisek-collector"), plan)
        .expect("start the sensor side");
    let wan = format!("{tag}-wan");
    let gw1 = lab.workload("gw1", "city", 1).clone();
    let dc = lab.workload("edge", "city", 1).clone();

    // Cut gw1's WAN (the router's end of its link) while it publishes.
    let cut = || lab.exec(&wan, "ip", &["link", "set", "to-gw1", "down"]);
    let out = cut().expect("ip");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cut_at = Instant::now();
    // The cut is real: nothing crosses it.
    let (ok, line) = lab.ping(&gw1, dc.address, 1).expect("ping");
    assert!(!ok, "a ping crossed the cut WAN: {line}");
    // The cut lasts CUT: a deadline, not a synchronisation.
    pisek_lab::poll_until("the end of the cut", CUT + Duration::from_secs(5), || {
        (cut_at.elapsed() >= CUT).then_some(())
    });
    let out = lab
        .exec(&wan, "ip", &["link", "set", "to-gw1", "up"])
        .expect("ip");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored = Instant::now();

    let wireguard = pisek_lab::poll_until("a ping through the overlay", RECOVERY_TARGET, || {
        let (ok, _) = lab.ping(&gw1, dc.address, 1).ok()?;
        ok.then(|| restored.elapsed())
    });
    let bgp = pisek_lab::poll_until("gw1's BGP session Established", RECOVERY_TARGET, || {
        bgp_established(&lab).then(|| restored.elapsed())
    });
    eprintln!(
        "WAN cut {CUT:?}: overlay ping back after {wireguard:?}, BGP Established after {bgp:?}"
    );

    // Every reading of the series, from both gateways, in Graphite.
    for g in sensors.gateways() {
        pisek_lab::poll_until(
            &format!("{} published its series", g.gateway),
            Duration::from_secs(60),
            || g.counters.finished.load(Ordering::Relaxed).then_some(()),
        );
    }
    let until = first + ROUNDS as i64;
    for gateway in ["gw1", "gw2"] {
        let want = expected(&sensors, gateway, first, until);
        let started = Instant::now();
        let waited = pisek_lab::poll(
            &format!("{gateway}'s readings in whisper"),
            Duration::from_secs(60),
            || Ok(sensors.stored(gateway, first)?.eq(&want).then_some(())),
        );
        if let Err(e) = waited {
            panic!("{e}\n{}\n{}", sensors.logs(), lab.logs());
        }
        eprintln!(
            "{gateway}: all {} readings in Graphite {:?} after the checks began",
            want.values().map(BTreeMap::len).sum::<usize>(),
            started.elapsed()
        );
    }
}
