//! The overlay's macro benchmark: TCP throughput and RTT workload to
//! workload across the overlay (gateway 1 → edge → gateway 2, tenant `city`,
//! real `pisek-agent` processes in the `pisek_lab::lab` topology), next to
//! wireguard-go between two namespaces and a bare veth (the ceiling),
//! measured in the same run (`benches/overlay_baseline.sh`).
//!
//! ```sh
//! cargo build --release --examples
//! target/release/examples/overlay_bench [--seconds 10]
//! ```
//! Prints one row per path: Gbit/s (iperf3, one stream, receiver side), the
//! ratio to wireguard-go, the RTT (`ping -c 50 -i 0.01`, avg and p50) and the
//! RSS of the daemons on the path. Every namespace it made is removed on
//! exit, on failure and on Ctrl-C.

use anyhow::{Context, bail};
use clap::Parser;
use pisek_lab::{Binaries, Lab, Workload, build_agent, on_signal, profile_dir};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Pisek overlay benchmark (needs root, iperf3, wireguard-go, wg).
#[derive(Parser)]
#[command(about)]
struct Args {
    /// iperf3 duration of each measurement, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Use the agent binaries already built next to this example.
    #[arg(long)]
    no_build: bool,
    /// Take pisek-agent and pisekctl from this directory (implies
    /// --no-build; the shared target directory may hold another branch's).
    #[arg(long)]
    agent_dir: Option<std::path::PathBuf>,
    /// Before the overlay's transfer ends, wait this long for a profiler
    /// (`perf record -p <gw1 agent>`): prints the agents' pids first.
    #[arg(long, default_value_t = 0)]
    pause_for_profiler: u64,
}

/// One measured path.
struct Row {
    path: String,
    gbps: f64,
    rtt_avg_ms: f64,
    rtt_p50_ms: f64,
    rss_kib: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    // Ctrl-C also reaches our children (iperf3, the baseline script), which
    // then fail; the error path drops the lab, which deletes its namespaces.
    on_signal(move || flag.store(true, Ordering::Relaxed))?;

    let dir = match &args.agent_dir {
        Some(dir) => dir.clone(),
        None => profile_dir()?,
    };
    if !args.no_build && args.agent_dir.is_none() {
        build_agent(&dir)?;
    }
    let mut rows = baseline(args.seconds)?;
    if stop.load(Ordering::Relaxed) {
        bail!("interrupted");
    }

    eprintln!("building the lab: edge + 2 gateways, tenants city and conference ...");
    let tag = format!("ob{}", std::process::id() % 10000);
    let lab = Lab::start(
        &tag,
        Binaries {
            agent: dir.join("pisek-agent"),
            pisekctl: dir.join("pisekctl"),
        },
    )?;
    lab.wait_until_ready(Duration::from_secs(30))?;
    rows.push(overlay(&lab, &args, &stop)?);
    drop(lab);

    print_table(&rows, args.seconds);
    Ok(())
}

/// Runs `benches/overlay_baseline.sh`: the bare veth and wireguard-go rows.
fn baseline(seconds: u32) -> anyhow::Result<Vec<Row>> {
    eprintln!("measuring the bare veth and wireguard-go ...");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/overlay_baseline.sh");
    let out = Command::new(&script)
        .arg(seconds.to_string())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!("{} failed ({})", script.display(), out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let rows = text
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [name, gbps, avg, p50, rss] = f[..] else {
                bail!("unexpected baseline line: {line}");
            };
            Ok(Row {
                path: match name {
                    "veth" => "bare veth (ceiling)".into(),
                    "wireguard-go" => "wireguard-go <-> wireguard-go".into(),
                    other => other.into(),
                },
                gbps: gbps.parse()?,
                rtt_avg_ms: avg.parse()?,
                rtt_p50_ms: p50.parse()?,
                rss_kib: rss.parse()?,
            })
        })
        .collect::<anyhow::Result<Vec<Row>>>()?;
    anyhow::ensure!(rows.len() == 2, "baseline printed {} rows", rows.len());
    Ok(rows)
}

/// iperf3 and ping from gw1's first `city` workload to gw2's.
fn overlay(lab: &Lab, args: &Args, stop: &AtomicBool) -> anyhow::Result<Row> {
    let from = lab.workload("gw1", "city", 1);
    let to = lab.workload("gw2", "city", 1);
    eprintln!(
        "overlay: {} ({}) -> {} ({}) ...",
        from.netns, from.address, to.netns, to.address
    );
    let server = KillOnDrop(
        Command::new("ip")
            .args(["netns", "exec", &to.netns, "iperf3", "-s", "-B"])
            .arg(to.address.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting iperf3 -s")?,
    );
    // A short warm-up, which also waits for the server to listen.
    pisek_lab::poll(
        "iperf3 warm-up through the overlay",
        Duration::from_secs(15),
        || {
            if stop.load(Ordering::Relaxed) {
                bail!("interrupted");
            }
            Ok(iperf(lab, from, to, 1).is_ok().then_some(()))
        },
    )?;
    if args.pause_for_profiler > 0 {
        for node in &lab.nodes {
            eprintln!("  {} agent pids: {:?}", node.name, agent_pids(&node.netns)?);
        }
    }
    let gbps = iperf(lab, from, to, args.seconds + args.pause_for_profiler as u32)?;
    drop(server);
    let (rtt_avg_ms, rtt_p50_ms) = rtt(lab, from, to)?;
    let mut rss_kib = 0;
    for node in &lab.nodes {
        for pid in agent_pids(&node.netns)? {
            rss_kib += vm_rss_kib(pid)?;
        }
    }
    Ok(Row {
        path: "Pisek overlay: gw1 -> edge -> gw2".into(),
        gbps,
        rtt_avg_ms,
        rtt_p50_ms,
        rss_kib,
    })
}

/// `iperf3 -c` from `from` to `to` for `seconds`: Gbit/s at the receiver.
fn iperf(lab: &Lab, from: &Workload, to: &Workload, seconds: u32) -> anyhow::Result<f64> {
    let out = lab.exec(
        &from.netns,
        "iperf3",
        &[
            "-c",
            &to.address.to_string(),
            "-t",
            &seconds.to_string(),
            "-J",
        ],
    )?;
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("iperf3 -J output")?;
    if !out.status.success() {
        bail!("iperf3: {}", report["error"]);
    }
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|b| b / 1e9)
        .context("no sum_received in iperf3's report")
}

/// `ping -c 50 -i 0.01`: average and median RTT of the replies, in ms.
fn rtt(lab: &Lab, from: &Workload, to: &Workload) -> anyhow::Result<(f64, f64)> {
    let out = lab.exec(
        &from.netns,
        "ping",
        &["-c", "50", "-i", "0.01", "-W", "1", &to.address.to_string()],
    )?;
    let mut times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("time=")?.parse().ok())
        .collect();
    anyhow::ensure!(!times.is_empty(), "no ping replies through the overlay");
    times.sort_by(f64::total_cmp);
    let avg = times.iter().sum::<f64>() / times.len() as f64;
    let p50 = times[times.len() / 2];
    Ok((avg, p50))
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

/// A process's resident set, in KiB.
fn vm_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no VmRSS for pid {pid}"))
}

fn print_table(rows: &[Row], seconds: u32) {
    let wggo = rows
        .iter()
        .find(|r| r.path.starts_with("wireguard-go"))
        .map_or(f64::NAN, |r| r.gbps);
    println!();
    println!(
        "TCP throughput (iperf3 -t {seconds}, one stream, receiver side) and RTT (ping -c 50 -i 0.01)"
    );
    println!(
        "{:<36} {:>8} {:>16} {:>13} {:>13} {:>10}",
        "path", "Gbit/s", "vs wireguard-go", "RTT avg (ms)", "RTT p50 (ms)", "RSS (MiB)"
    );
    for r in rows {
        let rss = if r.rss_kib == 0 {
            "-".to_string()
        } else {
            format!("{:.1}", r.rss_kib as f64 / 1024.0)
        };
        println!(
            "{:<36} {:>8.3} {:>16.2} {:>13.3} {:>13.3} {:>10}",
            r.path,
            r.gbps,
            r.gbps / wggo,
            r.rtt_avg_ms,
            r.rtt_p50_ms,
            rss
        );
    }
    println!("RSS: both wireguard-go processes; the three pisek-agent processes (edge, gw1, gw2).");
}

/// A child process killed (and reaped) when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
