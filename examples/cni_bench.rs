//! CNI ADD and DEL latency through libcni: `pisek-cni` (with its agent)
//! next to the reference `bridge` + `host-local` pair, 200 pods each, in
//! the same run. Timing is inside the libcni driver, around the library
//! call only, so both chains pay the same process overhead.
//!
//! ```sh
//! cargo build --release --workspace --bins --examples
//! target/release/examples/cni_bench          # as root; Debian golang-go etc.
//! ```
use clap::Parser;
use pisek_lab::{HostAgent, Netns, TempDir, libcni, workspace_binary};
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "CNI ADD/DEL latency: pisek-cni next to bridge + host-local")]
struct Args {
    /// Pods per chain.
    #[arg(long, default_value_t = 200)]
    pods: usize,
    /// Write the agent's log here, with each attach's step times.
    #[arg(long)]
    agent_log: Option<PathBuf>,
    /// Write each call's latency (`chain,op,pod,ms`) to DIR/calls.csv and
    /// the plugin's own log (its time per call) to DIR/pisek-cni.log.
    #[arg(long)]
    raw: Option<PathBuf>,
}

/// (ADD, DEL) latencies in ms of `pods` pods through `conflist`.
fn run(
    pods: usize,
    dir: &TempDir,
    name: &str,
    conflist: serde_json::Value,
    bin_dir: &str,
    host: &str,
) -> (Vec<f64>, Vec<f64>) {
    let pods: Vec<Netns> = (0..pods).map(|_| Netns::new("cb")).collect();
    let list = dir.path.join(format!("{name}.conflist"));
    std::fs::write(&list, conflist.to_string()).expect("conflist");
    let netns_file = dir.path.join(format!("{name}.netns"));
    let paths: Vec<String> = pods
        .iter()
        .map(|p| p.path().display().to_string())
        .collect();
    std::fs::write(&netns_file, paths.join("\n")).expect("netns file");
    let cache = dir.path.join(format!("{name}-cache"));
    let out = libcni::call_in(
        Some(host),
        "bench",
        &[
            "-conf",
            list.to_str().expect("path"),
            "-bin-dir",
            bin_dir,
            "-cache-dir",
            cache.to_str().expect("path"),
            "-netns-file",
            netns_file.to_str().expect("path"),
            "-id-prefix",
            name,
        ],
    )
    .expect("the libcni driver");
    assert_eq!(out["ok"], true, "{name}: {out}");
    let ms = |key: &str| -> Vec<f64> {
        out[key]
            .as_array()
            .expect(key)
            .iter()
            .filter_map(|v| v.as_f64())
            .map(|ns| ns / 1e6)
            .collect()
    };
    (ms("add_ns"), ms("del_ns"))
}

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        v[((v.len() as f64 * q).ceil() as usize)
            .saturating_sub(1)
            .min(v.len() - 1)]
    };
    (at(0.5), at(0.99))
}

fn main() {
    let args = Args::parse();
    if args.agent_log.is_some() {
        // SAFETY: no other thread runs yet.
        unsafe {
            std::env::set_var(
                "PISEK_LAB_AGENT_LOG",
                "warn,pisek_agent::attach=debug,pisek_agent::api=debug",
            )
        };
    }
    let agent = HostAgent::start("cbh");
    let dir = TempDir::new("cbd");
    let plugin_dir = workspace_binary("pisek-cni")
        .parent()
        .expect("dir")
        .display()
        .to_string();
    let mut plugin = serde_json::json!(
        {"type": "pisek-cni", "agentSocket": agent.socket(), "defaultTenant": "city"});
    if let Some(raw) = &args.raw {
        std::fs::create_dir_all(raw).expect("the --raw directory");
        let log = std::path::absolute(raw.join("pisek-cni.log")).expect("absolute path");
        plugin["logFile"] = serde_json::json!(log);
    }
    let pisek = serde_json::json!({"cniVersion": "1.0.0", "name": "pisek", "plugins": [plugin]});
    let reference = serde_json::json!({"cniVersion": "1.0.0", "name": "reference", "plugins": [
        {"type": "bridge", "bridge": "cbr0", "isGateway": true,
         "ipam": {"type": "host-local", "subnet": "10.88.0.0/16", "dataDir": dir.path.join("ipam")}}]});
    let host = agent.host.name.clone();
    let (pa, pd) = run(
        args.pods,
        &dir,
        "pisek",
        pisek,
        &format!("{plugin_dir}:/usr/lib/cni"),
        &host,
    );
    let (ra, rd) = run(
        args.pods,
        &dir,
        "reference",
        reference,
        "/usr/lib/cni",
        &host,
    );
    if let Some(raw) = &args.raw {
        let mut csv = String::from("chain,op,pod,ms\n");
        for (chain, op, times) in [
            ("pisek", "add", &pa),
            ("pisek", "del", &pd),
            ("reference", "add", &ra),
            ("reference", "del", &rd),
        ] {
            for (pod, ms) in times.iter().enumerate() {
                csv.push_str(&format!("{chain},{op},{pod},{ms:.3}\n"));
            }
        }
        std::fs::write(raw.join("calls.csv"), csv).expect("write calls.csv");
    }
    let ((pa50, pa99), (pd50, pd99), (ra50, ra99), (rd50, rd99)) =
        (stats(pa), stats(pd), stats(ra), stats(rd));
    println!("CNI latency through libcni, {} pods each, ms", args.pods);
    println!("| chain | ADD median | ADD p99 | DEL median | DEL p99 |");
    println!("|---|---:|---:|---:|---:|");
    println!("| bridge + host-local (reference) | {ra50:.2} | {ra99:.2} | {rd50:.2} | {rd99:.2} |");
    println!("| pisek-cni + agent | {pa50:.2} | {pa99:.2} | {pd50:.2} | {pd99:.2} |");
    println!(
        "| ratio pisek / reference | {:.2} | | {:.2} | |",
        pa50 / ra50,
        pd50 / rd50
    );
    agent.assert_clean("after the benchmark");
    if let Some(path) = &args.agent_log {
        std::fs::write(path, agent.log()).expect("write the agent's log");
    }
}
