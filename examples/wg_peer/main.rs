//! Pisek's WireGuard with a TUN device in the current network namespace, so
//! tests and benchmarks can start it with `ip netns exec NS wg_peer ...`.
//!
//! ```text
//! wg_peer --key-file /tmp/a.key --listen 0.0.0.0:51820 --tun pwg0 \
//!         --address 10.9.0.1/24 --peer <base64 public key> \
//!         [--peer-endpoint 192.0.2.2:51820] --allowed-ips 10.9.0.2/32 [--keepalive 25] \
//!         [--backup-peer <key> --backup-endpoint 192.0.2.3:51820 --failover-after-ms 10000]
//! ```
//! Prints `ready <public key> <listen address>` once it forwards. Reads
//! commands on stdin: `status` prints one line per peer and one with the
//! interface's drops; `rekey` forgets every session, so the next packet
//! starts a new handshake (for tests that must not wait two minutes).

mod forwarder;

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use forwarder::{ForwarderCommand, InterfaceStatus, WgForwarder};
use ipnet::IpNet;
use pisek_agent::dataplane::UdpBatchSocket;
use pisek_agent::dataplane::tun::{TUN_QUEUE_LEN, open_tun};
use pisek_agent::keyfile;
use pisek_overlay::wg::{PeerConfig, WgInterface, WgSettings};

#[derive(Parser)]
#[command(about = "Pisek's WireGuard (boringtun) on a TUN device")]
struct Args {
    /// Private key file (base64, mode 0600); generated when missing.
    #[arg(long)]
    key_file: PathBuf,
    /// Underlay UDP address to listen on.
    #[arg(long, default_value = "0.0.0.0:51820")]
    listen: SocketAddr,
    /// TUN device name.
    #[arg(long, default_value = "pisek0")]
    tun: String,
    /// The tunnel address of this node, with its network (e.g. 10.9.0.1/24).
    #[arg(long)]
    address: IpNet,
    /// MTU of the TUN device: underlay MTU - 80 for IPv6, - 60 for IPv4.
    #[arg(long, default_value_t = 1420)]
    mtu: u16,
    /// The peer's public key (base64, as `wg pubkey` prints it).
    #[arg(long)]
    peer: String,
    /// The peer's underlay endpoint; without it, wait for the peer to speak.
    #[arg(long)]
    peer_endpoint: Option<SocketAddr>,
    /// Tunnel prefixes routed to the peer (comma separated).
    #[arg(long, value_delimiter = ',', required = true)]
    allowed_ips: Vec<IpNet>,
    /// Persistent keepalive interval in seconds.
    #[arg(long)]
    keepalive: Option<u16>,
    /// A second peer (another edge router) that takes the allowed prefixes
    /// over while the first one does not answer handshakes.
    #[arg(long, requires = "backup_endpoint")]
    backup_peer: Option<String>,
    /// The backup peer's underlay endpoint.
    #[arg(long)]
    backup_endpoint: Option<SocketAddr>,
    /// How long a handshake may go unanswered before traffic fails over.
    #[arg(long, default_value_t = 10_000)]
    failover_after_ms: u64,
    /// How often a peer that is down is probed with a handshake.
    #[arg(long, default_value_t = 5_000)]
    probe_interval_ms: u64,
    /// Exchange packets with the TUN device one by one, without TSO/GRO
    /// super-packets (for comparison).
    #[arg(long)]
    no_offload: bool,
    /// Packets the TUN queues for the forwarder (its txqueuelen), as the
    /// agent's `dataplane.tun_queue_len`.
    #[arg(long, default_value_t = TUN_QUEUE_LEN)]
    tun_queue_len: u32,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let secret = keyfile::load_or_generate(&args.key_file)?;
    let settings = WgSettings {
        failover_after: Duration::from_millis(args.failover_after_ms),
        probe_interval: Duration::from_millis(args.probe_interval_ms),
        ..WgSettings::default()
    };
    let mut wg = WgInterface::new(secret, settings);
    let public = keyfile::encode_key(wg.public_key().as_bytes());
    let peer = wg
        .add_peer(PeerConfig {
            public_key: keyfile::parse_public_key(&args.peer).context("--peer")?,
            preshared_key: None,
            endpoint: args.peer_endpoint,
            persistent_keepalive: args.keepalive,
        })
        .context("adding the peer")?;
    let backup = match (&args.backup_peer, args.backup_endpoint) {
        (Some(key), Some(endpoint)) => Some(
            wg.add_peer(PeerConfig {
                public_key: keyfile::parse_public_key(key).context("--backup-peer")?,
                preshared_key: None,
                endpoint: Some(endpoint),
                persistent_keepalive: args.keepalive,
            })
            .context("adding the backup peer")?,
        ),
        _ => None,
    };
    for prefix in &args.allowed_ips {
        wg.add_route(*prefix, peer, backup)?;
    }
    let tun = open_tun(&args.tun, args.address, args.mtu, !args.no_offload)
        .with_context(|| format!("creating TUN device {}", args.tun))?;
    tun.set_tx_queue_len(args.tun_queue_len)
        .context("setting the TUN's queue length")?;
    let udp = UdpBatchSocket::bind(args.listen)
        .with_context(|| format!("binding the underlay socket to {}", args.listen))?;
    let listen = udp.local_addr()?;
    let mut forwarder = WgForwarder::new(wg, tun, udp, !args.no_offload);

    let (commands, inbox) = mpsc::channel();
    std::thread::spawn(move || serve_stdin(&commands));
    println!("ready {public} {listen}");
    std::io::stdout().flush()?;
    static STOP: AtomicBool = AtomicBool::new(false);
    forwarder.run(&STOP, &inbox)?;
    Ok(())
}

/// Turns stdin lines into forwarder commands; stops at end of input.
fn serve_stdin(commands: &mpsc::Sender<ForwarderCommand>) {
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { return };
        match line.trim() {
            "rekey" => {
                let _ = commands.send(ForwarderCommand::ExpireSessions);
                println!("ok rekey");
            }
            "status" => {
                let (reply, answer) = mpsc::channel();
                if commands.send(ForwarderCommand::Status(reply)).is_err() {
                    return;
                }
                if let Ok(status) = answer.recv() {
                    print_status(&status);
                }
            }
            "" => {}
            other => println!("error unknown command {other:?} (status, rekey)"),
        }
        let _ = std::io::stdout().flush();
    }
}

fn print_status(status: &InterfaceStatus) {
    for p in &status.peers {
        let m = &p.metrics;
        let drops: Vec<String> = m.drops.nonzero().map(|(r, n)| format!("{r}={n}")).collect();
        let endpoint = p.endpoint.map_or("-".to_string(), |e| e.to_string());
        println!(
            "peer {} endpoint={endpoint} health={:?} handshakes={} rx_packets={} rx_bytes={} tx_packets={} tx_bytes={} endpoint_changes={} drops=[{}]",
            keyfile::encode_key(p.public_key.as_bytes()),
            p.health,
            m.handshakes,
            m.rx_packets,
            m.rx_bytes,
            m.tx_packets,
            m.tx_bytes,
            m.endpoint_changes,
            drops.join(",")
        );
    }
    let drops: Vec<String> = status
        .drops
        .nonzero()
        .map(|(r, n)| format!("{r}={n}"))
        .collect();
    println!(
        "interface drops=[{}] tun_write_errors={}",
        drops.join(","),
        status.tun_write_errors
    );
}
