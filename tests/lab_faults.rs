//! The lab under faults on demand (issue 16): the live lab (the
//! `two_gateways` example, headless with `--duration`) takes each fault
//! once through its control socket — a WAN cut, a gateway and an edge
//! agent restart, carbon stopped and started — and its live view reports
//! the outage and the recovery; no reading is lost; the machine's
//! namespaces, links and rules are exactly as before; the PNG plots are
//! written.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn root_state() -> String {
    let mut state = String::new();
    for args in [
        &["netns", "list"][..],
        &["-o", "link", "show"][..],
        &["rule", "show"][..],
        &["-6", "rule", "show"][..],
    ] {
        let out = Command::new("ip").args(args).output().expect("ip");
        // Counters and link state flags change; names do not.
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            state.push_str(line.split(" state ").next().unwrap_or(line));
            state.push('\n');
        }
    }
    state
}

fn fault(example: &std::path::Path, name: &str, what: &str) -> String {
    let out = Command::new(example)
        .args(["--name", name, "--fault", what])
        .output()
        .expect("send a fault");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_live_lab_takes_each_fault_reports_it_and_loses_no_reading() {
    if !pisek_lab::require(
        "the_live_lab_takes_each_fault_reports_it_and_loses_no_reading",
        &["ip", "ping", "carbon-cache"],
    ) {
        return;
    }
    let example = pisek_lab::profile_dir()
        .expect("profile dir")
        .join("examples")
        .join("two_gateways");
    assert!(
        example.is_file(),
        "{} is missing: cargo build --examples",
        example.display()
    );
    let before = root_state();
    let name = pisek_lab::unique_tag("lf");
    let plots = pisek_lab::TempDir::new("lfp");
    let mut lab = Command::new(&example)
        .args(["--no-build", "--duration", "40", "--name", &name])
        .arg("--plots")
        .arg(&plots.path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the lab");
    let output = Arc::new(Mutex::new(String::new()));
    let reader = {
        let output = Arc::clone(&output);
        let stdout = lab.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut o = output.lock().expect("output");
                o.push_str(&line);
                o.push('\n');
            }
        })
    };
    let seen = |what: &str| output.lock().expect("output").contains(what);
    let wait_for = |what: &str, secs: u64| {
        pisek_lab::poll_until(what, Duration::from_secs(secs), || seen(what).then_some(()))
    };
    wait_for("live (Ctrl-C to stop", 60);
    assert_eq!(
        fault(&example, &name, "cut-wan gw1 4"),
        "gw1's WAN cut for 4 s"
    );
    wait_for("gw1's WAN is back up", 20);
    wait_for("traffic gw1 -> gw2 back after", 20);
    assert!(fault(&example, &name, "restart gw1").contains("gw1's agent restarted"));
    assert!(fault(&example, &name, "restart edge").contains("edge's agent restarted"));
    // BGP and WireGuard come back, as the live view says.
    let restarted_at = output.lock().expect("output").len();
    pisek_lab::poll_until(
        "BGP back after the edge restart",
        Duration::from_secs(30),
        || {
            let o = output.lock().expect("output");
            o[restarted_at..]
                .lines()
                .any(|l| {
                    l.contains("control: gw1 BGP Established") && l.contains("gw2 BGP Established")
                })
                .then_some(())
        },
    );
    assert_eq!(fault(&example, &name, "stop-carbon"), "carbon stopped");
    wait_for("Graphite: no carbon", 20);
    assert_eq!(fault(&example, &name, "start-carbon"), "carbon started");
    assert!(fault(&example, &name, "reboot gw1").starts_with("error: unknown fault"));
    let status = lab.wait().expect("the lab exits");
    let _ = reader.join();
    assert!(status.success(), "{}", output.lock().expect("output"));
    let text = output.lock().expect("output").clone();
    // After the faults: every gateway's queue drained and Graphite holds
    // what was published, but for the last round in flight (12 readings).
    for gw in ["gw1", "gw2"] {
        let last = text
            .lines()
            .rev()
            .find(|l| l.contains(&format!("sensors: {gw} published")))
            .unwrap_or_else(|| panic!("no sensor line for {gw}:\n{text}"));
        let number = |after: &str| -> u64 {
            last.split(after)
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("`{after}` in {last}"))
        };
        let (published, stored) = (number("published "), number("Graphite "));
        assert!(published >= stored && published - stored <= 24, "{last}");
        assert!(last.ends_with("queue 0 B"), "{last}");
    }
    assert_eq!(root_state(), before, "the machine as before");
    // The pictures: written and not empty.
    for png in ["readings.png", "traffic.png", "rtt.png"] {
        let size = std::fs::metadata(plots.path.join(png)).map_or(0, |m| m.len());
        assert!(size > 10_000, "{png}: {size} bytes");
    }
}
