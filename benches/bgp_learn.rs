//! Macro benchmark: time and memory for a receiver to learn N VPNv4 routes
//! (default 100,000) from one sender, for Pisek, BIRD 2 and gobgpd in the
//! same run, on loopback addresses of this machine.
//!
//! The sender is this program: it precomputes the UPDATEs with Pisek's
//! codec (about 270 routes share one 4,096-octet UPDATE: one attribute set,
//! one label per route), opens an iBGP session to the receiver, and writes
//! them all. The clock runs from the first UPDATE octet written to the
//! moment the receiver holds all N routes: Pisek's speaker (a child process,
//! this program re-run with `--pisek-child`) prints a line when its route
//! events reach N; BIRD and gobgpd are polled through their CLIs every
//! 10 ms. Memory is the receiver's resident set after learning minus before
//! (session up, no routes), divided by N.
//!
//! `cargo bench --bench bgp_learn [-- ROUTES] [--one-label]`
//! Needs root (port 179 on 127.x addresses), `bird`/`birdc`, `gobgpd`/`gobgp`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pisek_overlay::bgp::packet::{
    Capability, Family, Message, Open, Origin, PathAttributes, RouteTarget, SessionContext,
    UpdateEncoder, VpnNlri, VpnPrefix,
};
use pisek_overlay::packet::Label;

const AS: u32 = 65000;
const SENDER: Ipv4Addr = Ipv4Addr::new(127, 251, 0, 1);
const RECEIVER: Ipv4Addr = Ipv4Addr::new(127, 251, 0, 2);

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("--pisek-child") {
        let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
        return pisek_child(n);
    }
    let n: usize = args.iter().find_map(|s| s.parse().ok()).unwrap_or(100_000);
    // `--one-label`: every route carries label 16 (as one VRF's routes from
    // one PE do); by default each route has a label of its own.
    let one_label = args.iter().any(|a| a == "--one-label");
    let dir = std::env::temp_dir().join(format!("pisek-bgp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let updates = build_updates(n, one_label);
    println!(
        "bgp_learn: {n} VPNv4 routes ({}) in {} octets of UPDATEs, one sender, same run",
        if one_label {
            "one label"
        } else {
            "a label per route"
        },
        updates.len()
    );

    let mut results = Vec::new();
    for receiver in [Receiver::Pisek, Receiver::Bird, Receiver::Gobgp] {
        match run(receiver, n, &updates, &dir) {
            Ok(r) => results.push(r),
            Err(e) => println!("{:<8} failed: {e:#}", receiver.name()),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);

    let bird = results.iter().find(|r| r.name == "BIRD").cloned();
    println!();
    println!(
        "{:<8} {:>10} {:>12} {:>12} {:>14} {:>14}",
        "receiver", "time (s)", "routes/s", "B/route", "time vs BIRD", "mem vs BIRD"
    );
    for r in &results {
        let (t_ratio, m_ratio) = match &bird {
            Some(b) => (
                format!("{:.2}x", r.seconds / b.seconds),
                format!("{:.2}x", r.bytes_per_route / b.bytes_per_route),
            ),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:<8} {:>10.3} {:>12.0} {:>12.1} {:>14} {:>14}",
            r.name,
            r.seconds,
            n as f64 / r.seconds,
            r.bytes_per_route,
            t_ratio,
            m_ratio
        );
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Receiver {
    Pisek,
    Bird,
    Gobgp,
}

impl Receiver {
    fn name(self) -> &'static str {
        match self {
            Receiver::Pisek => "Pisek",
            Receiver::Bird => "BIRD",
            Receiver::Gobgp => "gobgpd",
        }
    }
}

#[derive(Clone)]
struct Outcome {
    name: &'static str,
    seconds: f64,
    bytes_per_route: f64,
}

/// All N routes as UPDATE messages, packed.
fn build_updates(n: usize, one_label: bool) -> Vec<u8> {
    let attrs = PathAttributes {
        origin: Origin::Igp,
        local_pref: Some(100),
        next_hop: Some(IpAddr::V4(SENDER)),
        ext_communities: vec!["65000:100".parse::<RouteTarget>().expect("rt").0],
        ..PathAttributes::default()
    };
    let rd = "65000:1".parse().expect("rd");
    let mut enc = UpdateEncoder::new(SessionContext {
        four_octet_as: true,
        external: false,
    });
    let mut out = Vec::new();
    for i in 0..n as u32 {
        // Consecutive /24s from 10.0.0.0 on.
        let addr = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + (i << 8));
        let nlri = VpnNlri {
            prefix: VpnPrefix::new(rd, ipnet::IpNet::new(IpAddr::V4(addr), 24).expect("prefix")),
            label: Label::new(if one_label { 16 } else { 16 + i % 1_000_000 }).expect("label"),
        };
        enc.announce(&attrs, IpAddr::V4(SENDER), &nlri, &mut out);
    }
    enc.flush(&mut out);
    pisek_overlay::bgp::packet::message::encode_end_of_rib(Family::VPNV4, &mut out);
    out
}

struct Running {
    child: Child,
    stdout: Option<BufReader<std::process::ChildStdout>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS"))?;
    Ok(kb * 1024)
}

fn start(receiver: Receiver, n: usize, dir: &Path) -> anyhow::Result<Running> {
    let r = RECEIVER.to_string();
    let s = SENDER.to_string();
    let mut cmd = match receiver {
        Receiver::Pisek => {
            let mut c = Command::new(std::env::current_exe()?);
            c.args(["--pisek-child", &n.to_string()]);
            c
        }
        Receiver::Bird => {
            let conf = dir.join("bird.conf");
            std::fs::write(
                &conf,
                format!(
                    "router id {r};\nvpn4 table vpntab4;\nprotocol device {{ }}\n\
                     protocol bgp sender {{\n  local {r} port 179 as {AS};\n  neighbor {s} port 179 as {AS};\n  \
                     strict bind on;\n  passive on;\n  hold time 240;\n  \
                     vpn4 mpls {{ table vpntab4; import all; export none; }};\n}}\n"
                ),
            )?;
            let mut c = Command::new("bird");
            c.args(["-f", "-c"])
                .arg(&conf)
                .arg("-s")
                .arg(dir.join("bird.ctl"));
            c
        }
        Receiver::Gobgp => {
            let conf = dir.join("gobgpd.toml");
            std::fs::write(
                &conf,
                format!(
                    "[global.config]\n  as = {AS}\n  router-id = \"{r}\"\n  port = 179\n  local-address-list = [\"{r}\"]\n\
                     [[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{s}\"\n    peer-as = {AS}\n  \
                     [neighbors.transport.config]\n    passive-mode = true\n    local-address = \"{r}\"\n  \
                     [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"l3vpn-ipv4-unicast\"\n"
                ),
            )?;
            let mut c = Command::new("gobgpd");
            c.args(["-f"]).arg(&conf).args([
                "-t",
                "toml",
                "--pprof-disable",
                "--api-hosts",
                &format!("{r}:50051"),
            ]);
            c
        }
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().map(BufReader::new);
    Ok(Running { child, stdout })
}

/// Connects to the receiver, retrying while it starts.
fn connect() -> anyhow::Result<TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // The sender's address must be SENDER: bind through a tokio socket.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let r = rt.block_on(async {
            let s = tokio::net::TcpSocket::new_v4()?;
            s.bind(SocketAddr::new(IpAddr::V4(SENDER), 0))?;
            s.connect(SocketAddr::new(IpAddr::V4(RECEIVER), 179)).await
        });
        match r {
            Ok(stream) => {
                let std = stream.into_std()?;
                std.set_nonblocking(false)?;
                return Ok(std);
            }
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Sends OPEN, waits for the receiver's OPEN and KEEPALIVE, answers KEEPALIVE.
fn handshake(stream: &mut TcpStream) -> anyhow::Result<()> {
    let open = Open {
        my_as: AS as u16,
        hold_time: 240,
        bgp_id: SENDER,
        capabilities: vec![
            Capability::Multiprotocol(Family::VPNV4),
            Capability::RouteRefresh,
            Capability::FourOctetAs(AS),
        ],
    };
    let mut out = Vec::new();
    Message::Open(open).encode(&SessionContext::default(), &mut out);
    stream.write_all(&out)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let (mut got_open, mut got_keepalive) = (false, false);
    let mut buf = Vec::new();
    while !(got_open && got_keepalive) {
        let mut chunk = [0u8; 4096];
        let k = stream.read(&mut chunk)?;
        anyhow::ensure!(k > 0, "receiver closed the session during the handshake");
        buf.extend_from_slice(&chunk[..k]);
        while buf.len() >= 19 {
            let len = usize::from(u16::from_be_bytes([buf[16], buf[17]]));
            if buf.len() < len {
                break;
            }
            match buf[18] {
                1 => got_open = true,
                4 => got_keepalive = true,
                3 => anyhow::bail!("receiver sent NOTIFICATION {:?}", &buf[19..len]),
                _ => {}
            }
            buf.drain(..len);
        }
    }
    let mut ka = Vec::new();
    Message::Keepalive.encode(&SessionContext::default(), &mut ka);
    stream.write_all(&ka)?;
    Ok(())
}

fn count_bird(dir: &Path) -> usize {
    let out = Command::new("birdc")
        .arg("-s")
        .arg(dir.join("bird.ctl"))
        .args(["show", "route", "count", "table", "vpntab4"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // "100000 of 100000 routes for 100000 networks in table vpntab4"
    out.lines()
        .find_map(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn count_gobgp() -> usize {
    let out = Command::new("gobgp")
        .args([
            "-u",
            &RECEIVER.to_string(),
            "-p",
            "50051",
            "global",
            "rib",
            "summary",
            "-a",
            "vpnv4",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // "Table l3vpn-ipv4-unicast\nDestination: 100000, Path: 100000"
    out.split("Destination:")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn run(receiver: Receiver, n: usize, updates: &[u8], dir: &Path) -> anyhow::Result<Outcome> {
    let mut running = start(receiver, n, dir)?;
    let pid = running.child.id();
    let mut stream = connect()?;
    handshake(&mut stream)?;
    // Let the receiver settle (session up, control socket ready) before the
    // baseline.
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_bytes(pid)?;
    // Drain whatever the receiver sends (KEEPALIVEs, End-of-RIB).
    let mut drain = stream.try_clone()?;
    std::thread::spawn(move || {
        let mut sink = [0u8; 4096];
        while matches!(drain.read(&mut sink), Ok(k) if k > 0) {}
    });
    let mut writer = stream.try_clone()?;
    let data = updates.to_vec();
    let started = Instant::now();
    let sender = std::thread::spawn(move || writer.write_all(&data));
    let deadline = started + Duration::from_secs(120);
    match receiver {
        Receiver::Pisek => {
            let stdout = running
                .stdout
                .as_mut()
                .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
            let mut line = String::new();
            loop {
                line.clear();
                anyhow::ensure!(stdout.read_line(&mut line)? > 0, "Pisek child exited");
                if line.starts_with("learned") {
                    break;
                }
            }
        }
        Receiver::Bird | Receiver::Gobgp => loop {
            let have = if receiver == Receiver::Bird {
                count_bird(dir)
            } else {
                count_gobgp()
            };
            if have >= n {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} has {have} of {n} routes after 120 s",
                receiver.name()
            );
            std::thread::sleep(Duration::from_millis(10));
        },
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = sender.join();
    // Let a garbage collector (gobgpd) or allocator settle a moment.
    std::thread::sleep(Duration::from_millis(300));
    let after = rss_bytes(pid)?;
    let bytes_per_route = after.saturating_sub(before) as f64 / n as f64;
    println!(
        "{:<8} learned {n} routes in {seconds:.3} s; RSS {:.1} MiB -> {:.1} MiB",
        receiver.name(),
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    );
    drop(stream);
    Ok(Outcome {
        name: receiver.name(),
        seconds,
        bytes_per_route,
    })
}

/// The Pisek receiver: a speaker listening on RECEIVER, importing the
/// routes into one tenant, printing "learned N" when N route events arrived.
fn pisek_child(n: usize) -> anyhow::Result<()> {
    use pisek_agent::control::driver::BgpConfig;
    use pisek_overlay::bgp::policy::VrfConfig;
    use pisek_overlay::bgp::speaker::{NeighborConfig, SpeakerConfig};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let config = BgpConfig {
            speaker: SpeakerConfig {
                local_as: AS,
                router_id: RECEIVER,
                next_hop: IpAddr::V4(RECEIVER),
                hold_time: 240,
                connect_retry: Duration::from_secs(1),
                connect_retry_max: Duration::from_secs(10),
                mrai: Duration::ZERO,
                graceful_restart: None,
                stale_routes_time: Duration::from_secs(60),
                selection_deferral_time: Duration::from_secs(30),
                cluster_id: None,
                families: vec![Family::VPNV4],
            },
            local_address: IpAddr::V4(RECEIVER),
            listen_port: Some(179),
            peers: vec![(
                NeighborConfig {
                    address: IpAddr::V4(SENDER),
                    rr_client: false,
                    passive: true,
                    remote_as: None,
                },
                179,
            )],
            vrfs: vec![VrfConfig {
                tenant: pisek_overlay::TenantId(1),
                rd: "65000:9".parse()?,
                import: vec!["65000:100".parse()?],
                export: Vec::new(),
            }],
            routes: Vec::new(),
        };
        let bgp = pisek_agent::control::driver::spawn(config).await?;
        let mut events = bgp.handle.subscribe().await?;
        let mut seen = 0usize;
        while let Some(_event) = events.recv().await {
            seen += 1;
            if seen == n {
                println!("learned {n}");
                let _ = std::io::stdout().flush();
            }
        }
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(())
}
