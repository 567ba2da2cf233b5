//! The data plane's benchmark, one command for the whole table of issue 14:
//! TCP (1 and 4 streams), 64-byte UDP packets per second (offered and
//! received, with 2 MiB socket buffers and again with the default ones,
//! where the sink's own drops are counted), the daemons' CPU per 64-byte
//! packet, RTT, and CPU seconds per gigabyte of the daemons on the path,
//! for
//! - the Pisek overlay: workload to workload across gateway 1 → edge →
//!   gateway 2 (tenant `city`, three real `pisek-agent` processes in the
//!   `pisek_lab::lab` topology);
//! - Pisek's WireGuard alone (`examples/wg_peer` at both ends of a veth);
//! - wireguard-go, one tunnel between the same two namespaces;
//! - the bare veth (the ceiling);
//!
//! all measured in the same run by `benches/measure_path.py` (the anchors
//! through `benches/overlay_baseline.sh`).
//!
//! ```sh
//! cargo build --release --examples
//! flock /work/bench.lock target/release/examples/overlay_bench [--seconds 10] [--plot bench.png]
//! ```
//! Every namespace it made is removed on exit, on failure and on Ctrl-C.

#[path = "common/png.rs"]
mod png;
#[path = "overlay_bench/report.rs"]
mod report;
#[path = "overlay_bench/rows.rs"]
mod rows;

use anyhow::bail;
use clap::Parser;
use pisek_lab::{Binaries, Lab, LabOptions, build_agent, on_signal, profile_dir};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Pisek data-plane benchmark (needs root, iperf3, wireguard-go, wg).
#[derive(Parser)]
#[command(about)]
struct Args {
    /// iperf3 duration of each measurement, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Use the agent binaries already built next to this example.
    #[arg(long)]
    no_build: bool,
    /// Take pisek-agent, pisekctl and examples/wg_peer from this directory
    /// (implies --no-build; the shared target directory may hold another
    /// branch's).
    #[arg(long)]
    agent_dir: Option<PathBuf>,
    /// The paths to measure, comma-separated, of: veth, wireguard-go,
    /// wg_peer, overlay.
    #[arg(long, default_value = "veth,wireguard-go,wg_peer,overlay")]
    paths: String,
    /// Forwarding workers of each agent (`dataplane.workers`; 0: the
    /// agent's default, one per CPU).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Also draw the table as a PNG into this file.
    #[arg(long)]
    plot: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    // Ctrl-C also reaches our children (iperf3, the scripts), which then
    // fail; the error path drops the lab, which deletes its namespaces.
    on_signal(move || flag.store(true, Ordering::Relaxed))?;

    let dir = match &args.agent_dir {
        Some(dir) => dir.clone(),
        None => profile_dir()?,
    };
    if !args.no_build && args.agent_dir.is_none() {
        build_agent(&dir)?;
        rows::build_wg_peer(&dir)?;
    }
    let wanted: Vec<&str> = args.paths.split(',').map(str::trim).collect();
    let baseline: Vec<&str> = wanted.iter().copied().filter(|p| *p != "overlay").collect();
    let mut table = Vec::new();
    if !baseline.is_empty() {
        table = rows::baseline(args.seconds, &dir.join("examples/wg_peer"), &baseline)?;
    }
    if stop.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    if wanted.contains(&"overlay") {
        eprintln!("building the lab: edge + 2 gateways, tenants city and conference ...");
        let tag = format!("ob{}", std::process::id() % 10000);
        let lab = Lab::start_opts(
            &tag,
            Binaries {
                agent: dir.join("pisek-agent"),
                pisekctl: dir.join("pisekctl"),
            },
            LabOptions {
                workers: args.workers,
                ..LabOptions::default()
            },
        )?;
        lab.wait_until_ready(Duration::from_secs(30))?;
        table.push(rows::overlay(&lab, args.seconds)?);
    }
    report::print_table(&table, args.seconds);
    if let Some(path) = &args.plot {
        report::plot(&table, path)?;
        println!("plot: {}", path.display());
    }
    Ok(())
}
