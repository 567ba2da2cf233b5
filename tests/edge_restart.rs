//! An edge agent restart under gateway-to-gateway traffic (issue 13, defect
//! 5): the edge keeps its peers' last authenticated endpoints in its state
//! directory and initiates the handshakes at start, so the gateways behind
//! NAT are back within a round trip instead of after their rekey timeout.
//! A 50 ms ping gw1 -> gw2 (through the edge) must lose less than 1 s.
use pisek_lab::Lab;
use pisek_lab::lab::longest_ping_gap;
use std::time::{Duration, Instant};

const EDGE: usize = 0;
const OUTAGE_TARGET: Duration = Duration::from_secs(1);

#[test]
fn an_edge_agent_restart_costs_gateways_less_than_a_second() {
    if !pisek_lab::require(
        "an_edge_agent_restart_costs_gateways_less_than_a_second",
        &["ip", "ping"],
    ) {
        return;
    }
    let tag = pisek_lab::unique_tag("er");
    let lab = Lab::start(&tag, pisek_lab::lab_binaries()).expect("the lab starts");
    lab.wait_until_ready(Duration::from_secs(20))
        .expect("peers, sessions and routes come up");
    let endpoints_file = lab.dir.join("edge-state").join("peer-endpoints.json");
    let a = lab.workload("gw1", "city", 1).clone();
    let b = lab.workload("gw2", "city", 1).clone();
    // The edge has written where both gateways are.
    pisek_lab::poll_until(
        "the edge's peer endpoints on disk",
        Duration::from_secs(10),
        || {
            let text = std::fs::read_to_string(&endpoints_file).ok()?;
            let map: serde_json::Value = serde_json::from_str(&text).ok()?;
            (map.as_object()?.len() == 2).then_some(())
        },
    );
    let echoes_before = lab.echo_requests_received(&b).expect("echo counter");
    let ping = lab.spawn_ping(&a, &b, 120).expect("start ping");
    pisek_lab::poll_until("pings flowing", Duration::from_secs(10), || {
        (lab.echo_requests_received(&b).ok()? >= echoes_before + 3).then_some(())
    });
    let restart = Instant::now();
    lab.stop_agent(EDGE).expect("SIGTERM stops the edge agent");
    lab.start_agent(EDGE).expect("the edge agent starts again");
    eprintln!("edge agent restarted in {:?}", restart.elapsed());
    let ping = ping.wait_with_output().expect("ping");
    let outage = longest_ping_gap(
        &String::from_utf8_lossy(&ping.stdout),
        Duration::from_millis(50),
    );
    eprintln!("outage seen by a 50 ms ping gw1 -> gw2 across the edge restart: {outage:?}");
    assert!(
        outage < OUTAGE_TARGET,
        "outage {outage:?}; edge log:\n{}",
        lab.logs()
    );
}
