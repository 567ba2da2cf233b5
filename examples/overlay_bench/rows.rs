//! The measured rows: the anchors from `benches/overlay_baseline.sh` and
//! the overlay through the lab, each a line of `benches/measure_path.py`.

use anyhow::{Context, bail};
use pisek_lab::Lab;
use std::path::Path;
use std::process::{Command, Stdio};

/// One measured path (the fields of a `measure_path.py` line).
pub struct Row {
    /// What was measured, as the table names it.
    pub path: String,
    /// TCP, one stream, Gbit/s at the receiver.
    pub tcp1_gbps: f64,
    /// TCP, four streams.
    pub tcp4_gbps: f64,
    /// 64-byte UDP datagrams per second the client sent ...
    pub udp_offered_pps: f64,
    /// ... and the server received (2 MiB socket buffers).
    pub udp_received_pps: f64,
    /// CPU time of the daemons per 64 B datagram received, microseconds.
    pub udp_cpu_us: f64,
    /// The 64 B test again with the default socket buffers: received ...
    pub udp_default_received_pps: f64,
    /// ... and, of what the path delivered, dropped at the sink's own
    /// socket (a lower bound).
    pub udp_default_sink_drops_pps: f64,
    /// ping RTT, average and median of 50, ms.
    pub rtt_avg_ms: f64,
    pub rtt_p50_ms: f64,
    /// VmRSS of the daemons on the path after the transfers.
    pub rss_kib: u64,
    /// utime + stime of the daemons on the path per GB received over TCP
    /// (NaN for the bare veth: no daemon).
    pub cpu_s_per_gb: f64,
}

impl Row {
    fn parse(line: &str) -> anyhow::Result<Row> {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [
            name,
            tcp1,
            tcp4,
            offered,
            received,
            udp_cpu,
            _default_offered,
            d_received,
            d_dropped,
            avg,
            p50,
            rss,
            cpu,
        ] = f[..]
        else {
            bail!("unexpected measurement line: {line}");
        };
        Ok(Row {
            path: match name {
                "veth" => "bare veth (ceiling)",
                "wireguard-go" => "wireguard-go, one tunnel",
                "wg_peer" => "Pisek WireGuard alone (wg_peer)",
                "overlay" => "Pisek overlay gw1 -> edge -> gw2",
                other => other,
            }
            .into(),
            tcp1_gbps: tcp1.parse()?,
            tcp4_gbps: tcp4.parse()?,
            udp_offered_pps: offered.parse()?,
            udp_received_pps: received.parse()?,
            udp_cpu_us: udp_cpu.parse()?,
            udp_default_received_pps: d_received.parse()?,
            udp_default_sink_drops_pps: d_dropped.parse()?,
            rtt_avg_ms: avg.parse()?,
            rtt_p50_ms: p50.parse()?,
            rss_kib: rss.parse()?,
            cpu_s_per_gb: cpu.parse()?,
        })
    }
}

/// Builds `examples/wg_peer` in the profile of `dir`.
pub fn build_wg_peer(dir: &Path) -> anyhow::Result<()> {
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.args(["build", "-q", "--example", "wg_peer"]);
    if dir.ends_with("release") {
        cargo.arg("--release");
    }
    let status = cargo.status().context("running cargo build")?;
    anyhow::ensure!(status.success(), "building examples/wg_peer failed");
    Ok(())
}

fn bench_script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches")
        .join(name)
}

/// Parses every line a measuring script printed on success.
fn run(command: &mut Command, what: &str) -> anyhow::Result<Vec<Row>> {
    let out = command
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what} failed ({})", out.status);
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(Row::parse)
        .collect()
}

/// The bare veth, wireguard-go and wg_peer rows (those in `paths`).
pub fn baseline(seconds: u32, wg_peer: &Path, paths: &[&str]) -> anyhow::Result<Vec<Row>> {
    eprintln!("measuring {} ...", paths.join(", "));
    let script = bench_script("overlay_baseline.sh");
    let rows = run(
        Command::new(&script)
            .arg(seconds.to_string())
            .arg(wg_peer)
            .arg(paths.join(",")),
        &script.display().to_string(),
    )?;
    anyhow::ensure!(
        rows.len() == paths.len(),
        "baseline printed {} rows",
        rows.len()
    );
    Ok(rows)
}

/// gw1's first `city` workload to gw2's, through the three agents.
pub fn overlay(lab: &Lab, seconds: u32) -> anyhow::Result<Row> {
    let from = lab.workload("gw1", "city", 1);
    let to = lab.workload("gw2", "city", 1);
    let mut pids = Vec::new();
    for node in &lab.nodes {
        let ids = agent_pids(&node.netns)?;
        // For `perf record -p`: the run takes 3 x seconds.
        eprintln!("  {} agent pid(s): {ids:?}", node.name);
        pids.extend(ids);
    }
    eprintln!(
        "overlay: {} ({}) -> {} ({}) ...",
        from.netns, from.address, to.netns, to.address
    );
    let mut rows = run(
        Command::new(bench_script("measure_path.py"))
            .args(["overlay", &from.netns, &to.netns])
            .arg(to.address.to_string())
            .arg(seconds.to_string())
            .args(pids.iter().map(u32::to_string)),
        "measure_path.py overlay",
    )?;
    rows.pop().context("measure_path.py printed nothing")
}

/// Pids of the `pisek-agent` processes in a namespace.
fn agent_pids(netns: &str) -> anyhow::Result<Vec<u32>> {
    let out = Command::new("ip").args(["netns", "pids", netns]).output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "pisek-agent")
        })
        .collect())
}
