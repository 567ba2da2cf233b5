//! The two-gateway lab, live: an edge (route reflector, WireGuard hub) and
//! two gateways, each with tenants `city` and `conference` (overlapping
//! prefixes) and two workloads per tenant, all in network namespaces with
//! real `pisek-agent` processes (`pisek_lab::lab` builds it). On each gateway a
//! `pisek-collector` in a conference workload takes simulated sensors'
//! readings (three rooms and an IQRF node) over MQTT and sends them through
//! the overlay to carbon-cache, attached on the edge as the conference
//! datacenter service (`pisek_lab::sensor_lab`).
//!
//! Prints the WireGuard peers, BGP sessions and routes per tenant, then
//! every few seconds a ping line per tenant (gateway 1 → gateway 2 through
//! the edge), each tenant's packet and bit rates through gw1's agent (its
//! Prometheus counters), the isolation check (city → conference) and one sensor line
//! per gateway: readings published, points in Graphite (read back from
//! whisper), the newest point and its age, and the collector's queue depth.
//! Without `carbon-cache` installed it says so once and the queue depth
//! grows instead. Runs until Ctrl-C or `--duration`; everything is torn
//! down on exit.
//!
//! ```sh
//! scripts/lab                      # = cargo run --release --example two_gateways
//! scripts/lab --duration 30
//! ```

use anyhow::Context;
use clap::Parser;
use pisek_lab::sensor_lab::carbon::Carbon;
use pisek_lab::sensor_lab::{CarbonMode, GatewayStatus, SensorLab, SensorPlan, unix_now};
use pisek_lab::{Binaries, Lab, LabOptions, Reflector, build_agent, on_signal, profile_dir};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[path = "two_gateways/control.rs"]
mod control;
#[path = "two_gateways/plots.rs"]
mod plots;
#[path = "common/png.rs"]
mod png;

/// Pisek two-gateway lab.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<u64>,
    /// Use the binaries as built instead of building pisek-agent, pisekctl
    /// and pisek-collector.
    #[arg(long)]
    no_build: bool,
    /// Measure TCP throughput (iperf3, one stream, this many seconds) from a
    /// city workload on gw1 to one on gw2, through the edge, then exit.
    #[arg(long)]
    iperf: Option<u64>,
    /// Run without carbon, as where graphite-carbon is not installed: the
    /// readings wait in the collectors' queues.
    #[arg(long)]
    no_carbon: bool,
    /// The prefix of every namespace (`<name>-edge`, `<name>-gw1`, ...):
    /// 1-8 lowercase letters and digits.
    #[arg(long)]
    name: Option<String>,
    /// Gateways behind the edge (2-200).
    #[arg(long, default_value_t = 2)]
    gateways: usize,
    /// Tenants on every node (2-16): city, conference, t3, t4, ...
    #[arg(long, default_value_t = 2)]
    tenants: usize,
    /// Sensors per gateway (2-100): rooms on MQTT plus one IQRF node.
    #[arg(long, default_value_t = 4)]
    sensors_per_gateway: usize,
    /// The route reflector: the edge agent's own speaker, or gobgpd beside it.
    #[arg(long = "with", value_enum, default_value_t = ReflectorArg::Agent)]
    reflector: ReflectorArg,
    /// Inject a fault into the running lab `--name` and exit:
    /// `cut-wan <node> <seconds>`, `restart <node>`, `stop-carbon`,
    /// `start-carbon`.
    #[arg(long)]
    fault: Option<String>,
    /// Write PNG plots (sensor readings, overlay traffic and RTT per
    /// tenant) into this directory while the lab runs and at the end.
    #[arg(long)]
    plots: Option<std::path::PathBuf>,
}

/// `--with`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ReflectorArg {
    /// The edge agent reflects.
    Agent,
    /// gobgpd on the edge reflects; the edge agent is its client.
    Gobgp,
    /// BIRD on the edge reflects; the edge agent is its client.
    Bird,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(fault) = &args.fault {
        let name = args
            .name
            .as_deref()
            .context("--fault needs the --name of the running lab")?;
        println!("{}", control::send(name, fault)?);
        return Ok(());
    }
    let dir = profile_dir()?;
    if !args.no_build {
        build_agent(&dir)?;
    }
    let binaries = Binaries {
        agent: dir.join("pisek-agent"),
        pisekctl: dir.join("pisekctl"),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    on_signal(move || flag.store(true, Ordering::Relaxed))?;

    let (tag, options) = lab_options(&args)?;
    println!(
        "building the lab: edge + {} gateways, {} tenants ...",
        args.gateways, args.tenants
    );
    let started = Instant::now();
    let lab = Lab::start_opts(&tag, binaries, options)?;
    let up = started.elapsed();
    lab.wait_until_ready(Duration::from_secs(30 + 3 * args.gateways as u64))?;
    let converged = started.elapsed();
    print_discovery(&lab, up, converged);

    print_nodes(&lab)?;

    if let Some(secs) = args.iperf {
        let from = lab.workload("gw1", "city", 1);
        let to = lab.workload("gw2", "city", 1);
        let line = iperf(&lab, &from.netns, &to.netns, &to.address.to_string(), secs)?;
        println!("\niperf3 overlay gw1 -> edge -> gw2 (city): {line}");
        drop(lab);
        return Ok(());
    }
    let deadline = args
        .duration
        .map(|d| Instant::now() + Duration::from_secs(d));
    let carbon = if args.no_carbon {
        CarbonMode::Off
    } else {
        CarbonMode::IfInstalled
    };
    let collector = dir.join("pisek-collector");
    let plan = SensorPlan::live().sensors_per_gateway(args.sensors_per_gateway);
    let sensors = SensorLab::start_with(&lab, &collector, plan, carbon)?;
    println!();
    for g in sensors.gateways() {
        println!(
            "sensors on {}: {} rooms + 1 IQRF node -> pisek-collector in {} ({}) -> carbon {}",
            g.gateway,
            g.model.rooms,
            g.netns,
            g.address,
            sensors.carbon_address()
        );
    }
    if !sensors.has_carbon() {
        let why = if Carbon::installed() {
            "carbon is off (--no-carbon)"
        } else {
            "carbon-cache is not installed (apt-get install graphite-carbon)"
        };
        println!(
            "{why}: nothing listens at {}, so the readings wait in the collectors' queues",
            sensors.carbon_address()
        );
    }
    let control = control::Control::listen(&lab, &tag)?;
    let plots = args.plots.as_deref().map(plots::Plots::new).transpose()?;
    live(&lab, sensors, &stop, deadline, &control, plots)?;
    println!("tearing down ...");
    drop(lab);
    Ok(())
}

/// The live view until Ctrl-C or the deadline: pings, traffic, isolation
/// and sensors every few seconds, and the faults asked for meanwhile.
fn live(
    lab: &Lab,
    mut sensors: SensorLab<'_>,
    stop: &AtomicBool,
    deadline: Option<Instant>,
    control: &control::Control,
    mut plots: Option<plots::Plots>,
) -> anyhow::Result<()> {
    let since = unix_now();
    let mut round = 0u64;
    println!(
        "\nlive (Ctrl-C to stop; faults from another terminal: scripts/lab --name {} --fault \"cut-wan gw1 10\"):",
        control.name()
    );
    let mut traffic = TenantTraffic::read(lab)?;
    let mut outages = [None; 2];
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
        control.apply_due(lab, &mut sensors);
        for (t, (tenant, _)) in pisek_lab::TENANTS.iter().enumerate() {
            let from = lab.workload("gw1", tenant, 1);
            let to = lab.workload("gw2", tenant, 2);
            let (ok, line) = lab.ping(from, to.address, 3)?;
            if let Some(p) = plots.as_mut() {
                p.record(tenant, &line, now_kbits(lab, &traffic, tenant));
            }
            println!(
                "{tenant:>10}: gw1 {} -> gw2 {}: {} {line}",
                from.address,
                to.address,
                if ok { "ok  " } else { "FAIL" }
            );
            // The measured gap: from the first failed round to the first
            // good one after it.
            match (ok, outages[t]) {
                (false, None) => outages[t] = Some(Instant::now()),
                (true, Some(since)) => {
                    println!(
                        "{tenant:>10}: traffic gw1 -> gw2 back after {:.1} s",
                        since.elapsed().as_secs_f64()
                    );
                    outages[t] = None;
                }
                _ => {}
            }
        }
        // What each tenant sent and received through gw1's agent since the
        // last round (its Prometheus counters): pings, sensor data, anything.
        let now = TenantTraffic::read(lab)?;
        for (tenant, _) in pisek_lab::TENANTS {
            println!("{:>10}: {}", tenant, now.rate_line(&traffic, tenant));
        }
        traffic = now;
        // Both tenants use 10.1.2.0/24 on gw2: city's ping to its own
        // workload's address must not reach conference's workload there
        // (workload 1, which gets no other traffic in this loop, so its
        // counter moves only if something leaks).
        let city = lab.workload("gw1", "city", 1);
        let twin = lab.workload("gw2", "conference", 1);
        let before = lab.echo_requests_received(twin)?;
        let (_, _) = lab.ping(city, twin.address, 3)?;
        let leaked = lab.echo_requests_received(twin)? - before;
        println!(
            "{:>10}: city gw1 -> {} (city's and conference's address on gw2): conference workload got {leaked} echo requests {}",
            "isolation",
            twin.address,
            if leaked == 0 { "(isolated)" } else { "(LEAK)" }
        );
        println!("{:>10}: {}", "control", control_line(lab));
        for g in sensors.gateways() {
            let line = match sensors.status(&g.gateway) {
                Ok(status) => sensor_line(&g.gateway, &status, sensors.has_carbon()),
                Err(e) => format!("no status: {e:#}"),
            };
            println!("{:>10}: {} {line}", "sensors", g.gateway);
        }
        round += 1;
        if let Some(p) = &plots
            && round % 5 == 0
            && let Err(e) = p.write(&sensors, since)
        {
            println!("plots: {e:#}");
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    if let Some(p) = &plots {
        p.write(&sensors, since)?;
        println!(
            "plots written: {}/readings.png, traffic.png, rtt.png",
            p.dir().display()
        );
    }
    Ok(())
}

/// Each node's WireGuard peers and BGP sessions, and each gateway's routes.
fn print_nodes(lab: &Lab) -> anyhow::Result<()> {
    for (i, node) in lab.nodes.iter().enumerate() {
        println!("\n== {} ({}) ==", node.name, node.tunnel_address);
        print!("{}", lab.pisekctl(i, &["peers"])?);
        print!("{}", lab.pisekctl(i, &["bgp"])?);
        if i > 0 {
            for (tenant, _) in pisek_lab::TENANTS {
                println!("-- routes, tenant {tenant}");
                print!("{}", lab.pisekctl(i, &["routes", "--tenant", tenant])?);
            }
        }
    }
    Ok(())
}

/// The namespace prefix and the lab's shape from the arguments.
fn lab_options(args: &Args) -> anyhow::Result<(String, LabOptions)> {
    let tag = match &args.name {
        Some(name) => {
            anyhow::ensure!(
                (1..=8).contains(&name.len())
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
                "--name {name:?}: 1-8 lowercase letters and digits"
            );
            name.clone()
        }
        None => format!("pl{}", std::process::id() % 10000),
    };
    anyhow::ensure!(
        (2..=200).contains(&args.gateways),
        "--gateways {}: 2 to 200",
        args.gateways
    );
    anyhow::ensure!(
        (2..=16).contains(&args.tenants),
        "--tenants {}: 2 to 16",
        args.tenants
    );
    anyhow::ensure!(
        (2..=100).contains(&args.sensors_per_gateway),
        "--sensors-per-gateway {}: 2 to 100",
        args.sensors_per_gateway
    );
    let options = LabOptions {
        gateways: args.gateways,
        tenants: args.tenants,
        reflector: match args.reflector {
            ReflectorArg::Agent => Reflector::Agent,
            ReflectorArg::Gobgp => Reflector::Gobgpd,
            ReflectorArg::Bird => Reflector::Bird,
        },
        ..LabOptions::default()
    };
    Ok((tag, options))
}

/// Where everything is (also in `lab.json`), how long the lab took to start
/// and to converge, and each agent's memory.
fn print_discovery(lab: &Lab, up: Duration, converged: Duration) {
    println!(
        "\nlab up in {:.1} s (agents started, workloads attached); WireGuard, BGP and every route in place after {:.1} s",
        up.as_secs_f64(),
        converged.as_secs_f64()
    );
    println!(
        "where everything is: {}",
        lab.dir.join("lab.json").display()
    );
    let description = lab.describe();
    let mut rss_total = 0u64;
    let nodes = description["nodes"].as_array().cloned().unwrap_or_default();
    for node in &nodes {
        let pid = node["agent_pid"].as_u64();
        let rss = pid.and_then(rss_kib);
        rss_total += rss.unwrap_or(0);
        println!(
            "  {:<6} netns {:<14} pid {:<7} RSS {:>6} KiB  pisekctl --socket {}",
            node["name"].as_str().unwrap_or("?"),
            node["netns"].as_str().unwrap_or("?"),
            pid.map_or("-".into(), |p| p.to_string()),
            rss.map_or("?".into(), |r| r.to_string()),
            node["socket"].as_str().unwrap_or("?"),
        );
    }
    if !nodes.is_empty() {
        println!(
            "  memory per agent: {} KiB on average over {} agents",
            rss_total / nodes.len() as u64,
            nodes.len()
        );
    }
    println!(
        "  workloads: {} (ip netns exec <netns> ...; addresses in lab.json)",
        description["workloads"].as_array().map_or(0, Vec::len)
    );
}

/// A process's resident memory in KiB, from /proc.
fn rss_kib(pid: u64) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// gw1's and gw2's BGP session and WireGuard handshake with the edge:
/// what comes back after a fault.
fn control_line(lab: &Lab) -> String {
    let mut parts = Vec::new();
    for i in [1, 2] {
        let name = &lab.nodes[i].name;
        let bgp = lab
            .json(i, &["bgp", "--json"])
            .ok()
            .and_then(|s| s.as_array()?.first()?["state"].as_str().map(str::to_string))
            .unwrap_or_else(|| "no answer".into());
        let handshake = lab
            .json(i, &["peers", "--json"])
            .ok()
            .and_then(|p| p.as_array()?.first()?["last_handshake_secs"].as_u64())
            .map_or("no handshake".into(), |s| format!("handshake {s} s ago"));
        parts.push(format!("{name} BGP {bgp}, WireGuard {handshake}"));
    }
    parts.join("; ")
}

/// `tenant`'s traffic out of gw1 since `before`, in kbit/s.
fn now_kbits(lab: &Lab, before: &TenantTraffic, tenant: &str) -> f64 {
    TenantTraffic::read(lab).map_or(0.0, |now| now.kbits(before, tenant, "out"))
}

/// gw1's per-tenant overlay counters at one moment.
struct TenantTraffic {
    at: Instant,
    /// (tenant, direction) -> (packets, bytes)
    counters: std::collections::BTreeMap<(String, String), (u64, u64)>,
}

impl TenantTraffic {
    fn read(lab: &Lab) -> anyhow::Result<TenantTraffic> {
        let page = lab.metrics(1)?;
        let mut counters = std::collections::BTreeMap::new();
        for line in page.lines() {
            let (family, rest) = match line.split_once('{') {
                Some(split) => split,
                None => continue,
            };
            let slot = match family {
                "pisek_tenant_packets_total" => 0,
                "pisek_tenant_bytes_total" => 1,
                _ => continue,
            };
            let Some((labels, value)) = rest.split_once("} ") else {
                continue;
            };
            let label = |name: &str| {
                labels
                    .split(',')
                    .find_map(|l| l.strip_prefix(&format!("{name}=\"")))
                    .map(|v| v.trim_end_matches('"').to_string())
            };
            let (Some(tenant), Some(direction), Ok(value)) = (
                label("tenant"),
                label("direction"),
                value.trim().parse::<u64>(),
            ) else {
                continue;
            };
            let entry: &mut (u64, u64) = counters.entry((tenant, direction)).or_default();
            if slot == 0 {
                entry.0 = value;
            } else {
                entry.1 = value;
            }
        }
        Ok(TenantTraffic {
            at: Instant::now(),
            counters,
        })
    }

    /// kbit/s in `direction` since `before`.
    fn kbits(&self, before: &TenantTraffic, tenant: &str, direction: &str) -> f64 {
        let secs = self.at.duration_since(before.at).as_secs_f64().max(0.001);
        let key = (tenant.to_string(), direction.to_string());
        let (_, b1) = self.counters.get(&key).copied().unwrap_or_default();
        let (_, b0) = before.counters.get(&key).copied().unwrap_or_default();
        b1.saturating_sub(b0) as f64 * 8.0 / 1000.0 / secs
    }

    /// `gw1 overlay: out 12 pkt/s 9.6 kbit/s, in ...` since `before`.
    fn rate_line(&self, before: &TenantTraffic, tenant: &str) -> String {
        let secs = self.at.duration_since(before.at).as_secs_f64().max(0.001);
        let rate = |direction: &str| {
            let key = (tenant.to_string(), direction.to_string());
            let (p1, b1) = self.counters.get(&key).copied().unwrap_or_default();
            let (p0, b0) = before.counters.get(&key).copied().unwrap_or_default();
            format!(
                "{direction} {:.0} pkt/s {:.1} kbit/s",
                p1.saturating_sub(p0) as f64 / secs,
                b1.saturating_sub(b0) as f64 * 8.0 / 1000.0 / secs
            )
        };
        format!("gw1 overlay traffic: {}, {}", rate("out"), rate("in"))
    }
}

/// One gateway's sensor line: published, stored, newest point, queue.
fn sensor_line(gateway: &str, status: &GatewayStatus, carbon: bool) -> String {
    let stored = match (&status.latest, carbon) {
        (_, false) => "Graphite: no carbon".to_string(),
        (None, true) => format!("Graphite {} points", status.points),
        (Some((metric, ts, value)), true) => {
            let short = metric
                .strip_prefix(&format!("pisek.{gateway}."))
                .unwrap_or(metric);
            format!(
                "Graphite {} points, latest {short} = {value} ({} s old)",
                status.points,
                unix_now() - ts
            )
        }
    };
    let queue = status
        .queue_depth_bytes
        .map_or("?".to_string(), |b| b.to_string());
    format!(
        "published {} readings, {stored}, queue {queue} B",
        status.published
    )
}

/// `iperf3 -c` from one namespace to a server in another: the receiver's
/// rate line.
fn iperf(lab: &Lab, from: &str, to: &str, address: &str, secs: u64) -> anyhow::Result<String> {
    let mut server = std::process::Command::new("ip")
        .args(["netns", "exec", to, "iperf3", "-s", "-1", "-B", address])
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("starting iperf3 -s")?;
    pisek_lab::poll("iperf3 server", Duration::from_secs(5), || {
        let out = lab.exec(to, "ss", &["-tln"])?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .contains(":5201")
            .then_some(()))
    })?;
    let out = lab.exec(from, "iperf3", &["-c", address, "-t", &secs.to_string()])?;
    let _ = server.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.contains("receiver"))
        .map(|l| l.split_whitespace().skip(4).collect::<Vec<_>>().join(" "))
        .with_context(|| format!("no receiver line from iperf3: {text}"))
}
