//! The edge with many gateways (issue 14): how fast the edge's pipeline
//! relays between two gateways when it has 2 gateway peers and when it has
//! 300 (each with a session, as after a morning of traffic), and what one
//! peer costs the edge in memory.
//!
//! Everything runs in this process, with no socket: the gateways are
//! `WgInterface`s of the library, the edge is the agent's `Pipeline` in the
//! edge role. Gateway 1 encrypts tunnel packets (outer IPv4 to gateway N's
//! tunnel address, as a gateway's MPLSoUDP packet is), the edge decrypts
//! and re-encrypts them towards gateway N (`Pipeline::ingress_datagram`, the
//! relay the agent runs), gateway N decrypts them. Only the edge's work is
//! timed, and only the edge's allocations are counted (a counting global
//! allocator, read around each call into the edge).
//!
//! ```sh
//! cargo run --release --example edge_peers [-- --peers 300 --packets 200000]
//! ```

use clap::Parser;
use pisek_overlay::forward::{ForwardOutput, Pipeline, PipelineConfig, Role};
use pisek_overlay::vrf::Vrfs;
use pisek_overlay::wg::{
    PeerConfig, PeerId, PublicKey, StaticSecret, WgInterface, WgOutput, WgSettings,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// Counts the bytes live on the heap, so the edge's share can be read.
struct CountingAllocator;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; the
// counter only observes sizes.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Edge relay benchmark: 2 gateway peers against many.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Gateway peers of the large edge.
    #[arg(long, default_value_t = 300)]
    peers: usize,
    /// Packets relayed per measurement.
    #[arg(long, default_value_t = 200_000)]
    packets: usize,
    /// Tunnel packet size (outer IPv4, as a gateway's MPLSoUDP packet).
    #[arg(long, default_value_t = 1400)]
    size: usize,
}

const EDGE_UNDERLAY: &str = "192.0.2.1:51820";

/// One simulated gateway.
struct Gateway {
    wg: WgInterface,
    underlay: SocketAddr,
    tunnel: Ipv4Addr,
}

/// A gateway's output: the last datagram it produced, and what it
/// decrypted (dropped: only the count matters).
#[derive(Default)]
struct Wire {
    buf: Vec<u8>,
    datagrams: Vec<(Vec<u8>, SocketAddr)>,
    delivered: usize,
}

impl WgOutput for Wire {
    fn datagram_buffer(&mut self) -> &mut [u8] {
        self.buf.resize(65_536, 0);
        &mut self.buf
    }
    fn send_datagram(&mut self, len: usize, endpoint: SocketAddr) {
        self.datagrams.push((self.buf[..len].to_vec(), endpoint));
    }
    fn tunnel_buffer(&mut self) -> &mut [u8] {
        self.buf.resize(65_536, 0);
        &mut self.buf
    }
    fn deliver_to_tunnel(&mut self, _len: usize, _peer: PeerId) {
        self.delivered += 1;
    }
}

fn secret(n: usize, role: u8) -> StaticSecret {
    let mut bytes = [role; 32];
    // Away from the bytes x25519 clamps (0 and 31), so every n differs.
    bytes[8..16].copy_from_slice(&(n as u64).to_le_bytes());
    StaticSecret::from(bytes)
}

/// The edge and its `n` gateways, every session up; returns the edge's
/// heap bytes for its peers (configuration and sessions).
fn build(n: usize) -> anyhow::Result<(Pipeline, Vec<Gateway>, i64)> {
    let edge_secret = secret(0, 0xed);
    let edge_public = PublicKey::from(&edge_secret);
    let edge_underlay: SocketAddr = EDGE_UNDERLAY.parse()?;
    let edge_tunnel = IpAddr::V4(Ipv4Addr::new(10, 200, 0, 1));
    let config = PipelineConfig::new(Role::Edge, edge_tunnel, 1500);
    let mut edge = Pipeline::new(
        config,
        Vrfs::new(),
        // The edge's handshake rate limiter (whitepaper §5.3) would answer
        // this burst of 300 handshakes with cookies (boringtun resets its
        // count on its own clock, once a second); real gateways come up
        // over minutes.
        WgInterface::new(
            edge_secret,
            WgSettings {
                handshake_rate_limit: 1_000_000,
                ..WgSettings::default()
            },
        ),
    );
    let mut out = ForwardOutput::new(80, &edge.config().mtu);
    let mut edge_bytes = 0i64;
    let mut gateways = Vec::with_capacity(n);
    let now = Instant::now();
    for i in 0..n {
        let gw_secret = secret(i + 1, 0x9a);
        let gw_public = PublicKey::from(&gw_secret);
        let tunnel = Ipv4Addr::new(10, 200, 1 + (i / 250) as u8, 2 + (i % 250) as u8);
        let underlay = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)),
            10_000 + i as u16,
        );
        let mut wg = WgInterface::new(gw_secret, WgSettings::default());
        let edge_peer = wg.add_peer(PeerConfig {
            public_key: edge_public,
            preshared_key: None,
            endpoint: Some(edge_underlay),
            persistent_keepalive: None,
        })?;
        wg.add_route("10.200.0.0/16".parse()?, edge_peer, None)?;

        let before = LIVE_BYTES.load(Ordering::Relaxed);
        let peer = edge.wireguard_mut().add_peer(PeerConfig {
            public_key: gw_public,
            preshared_key: None,
            endpoint: None,
            persistent_keepalive: None,
        })?;
        edge.wireguard_mut()
            .add_route(format!("{tunnel}/32").parse()?, peer, None)?;
        edge_bytes += LIVE_BYTES.load(Ordering::Relaxed) - before;

        // Handshake: initiation → response → the gateway's first data
        // (a keepalive) confirms the session at the edge (whitepaper §5.4.7).
        let mut wire = Wire::default();
        wg.initiate_handshakes(now, &mut wire);
        for _ in 0..4 {
            let datagrams = std::mem::take(&mut wire.datagrams);
            if datagrams.is_empty() {
                break;
            }
            for (d, _) in datagrams {
                let before = LIVE_BYTES.load(Ordering::Relaxed);
                edge.ingress_datagram(&d, underlay, now, &mut out);
                edge_bytes += LIVE_BYTES.load(Ordering::Relaxed) - before;
            }
            for (d, _) in out.underlay.datagrams() {
                let _ = wg.receive(d, edge_underlay, now, &mut wire);
            }
            out.clear();
        }
        // An empty packet is a keepalive: it confirms the session.
        let _ = wg.send_to_peer(edge_peer, &[], now, &mut wire);
        for (d, _) in std::mem::take(&mut wire.datagrams) {
            let before = LIVE_BYTES.load(Ordering::Relaxed);
            edge.ingress_datagram(&d, underlay, now, &mut out);
            edge_bytes += LIVE_BYTES.load(Ordering::Relaxed) - before;
        }
        out.clear();
        gateways.push(Gateway {
            wg,
            underlay,
            tunnel,
        });
    }
    Ok((edge, gateways, edge_bytes))
}

/// An IPv4/UDP packet of `size` bytes from `src` to `dst` (port 6635, as
/// MPLSoUDP), with a valid header checksum.
fn tunnel_packet(src: Ipv4Addr, dst: Ipv4Addr, size: usize) -> Vec<u8> {
    let total = size.max(28);
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p[22..24].copy_from_slice(&6635u16.to_be_bytes());
    let sum: u32 = p[..20]
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    let folded = (sum & 0xffff) + (sum >> 16);
    let folded = (folded & 0xffff) + (folded >> 16);
    p[10..12].copy_from_slice(&(!(folded as u16)).to_be_bytes());
    p
}

/// Relays `packets` packets from the first gateway to the last through
/// the edge, 64 at a time; returns the edge's time and how many arrived.
fn relay(
    edge: &mut Pipeline,
    gateways: &mut [Gateway],
    packets: usize,
    size: usize,
) -> (Duration, usize) {
    let last = gateways.len() - 1;
    let (from, to) = (gateways[0].tunnel, gateways[last].tunnel);
    let packet = tunnel_packet(from, to, size);
    let mut out = ForwardOutput::new(80, &edge.config().mtu);
    let mut tx = Wire::default();
    let mut rx = Wire::default();
    let edge_underlay: SocketAddr = EDGE_UNDERLAY.parse().expect("edge address");
    let mut busy = Duration::ZERO;
    let mut sent = 0;
    while sent < packets {
        let now = Instant::now();
        for _ in 0..64 {
            let _ = gateways[0].wg.send(&packet, now, &mut tx);
        }
        sent += 64;
        let underlay = gateways[0].underlay;
        let start = Instant::now();
        for (d, _) in &tx.datagrams {
            edge.ingress_datagram(d, underlay, now, &mut out);
        }
        busy += start.elapsed();
        tx.datagrams.clear();
        for (d, _) in out.underlay.datagrams() {
            let _ = gateways[last].wg.receive(d, edge_underlay, now, &mut rx);
        }
        out.clear();
    }
    (busy, rx.delivered)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.peers >= 2, "--peers must be at least 2");
    println!(
        "edge relay, gateway 1 -> edge -> gateway N, {} B tunnel packets, {} packets, one thread",
        args.size, args.packets
    );
    println!(
        "{:>6} {:>12} {:>10} {:>10} {:>16} {:>8}",
        "peers", "Mpps (edge)", "Gbit/s", "vs 2", "edge B/peer", "arrived"
    );
    let mut small = f64::NAN;
    for n in [2, args.peers] {
        let (mut edge, mut gateways, bytes) = build(n)?;
        // A warm-up pass, then the measured one.
        relay(&mut edge, &mut gateways, args.packets / 10, args.size);
        let (busy, arrived) = relay(&mut edge, &mut gateways, args.packets, args.size);
        let pps = args.packets as f64 / busy.as_secs_f64();
        if n == 2 {
            small = pps;
        }
        println!(
            "{:>6} {:>12.3} {:>10.2} {:>10.3} {:>16} {:>8}",
            n,
            pps / 1e6,
            pps * args.size as f64 * 8.0 / 1e9,
            pps / small,
            bytes / n as i64,
            arrived
        );
    }
    println!("edge B/peer: heap bytes the edge holds per gateway peer (peer, route, session).");
    Ok(())
}
