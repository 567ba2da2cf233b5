//! What keeping the learned routes across a restart costs
//! (`learned-routes.json`, agent/src/routing/restart.rs): writing N routes
//! (encode + atomic, fsynced replace), reading them back, and loading them
//! stale into `VrfRoutes` (what a restart does before the forwarder starts),
//! next to the anchor measured in the same run: an atomic write of the same
//! bytes alone (what the I/O costs without the encoding).
//!
//! `cargo run --release --example learned_routes_file -- [ROUTES]` (default 100000).

use pisek_agent::control::VrfRoutes;
use pisek_agent::state::{
    LearnedRoute, atomic, encode_learned_routes, learned_routes_path, load_learned_routes,
    save_learned_routes,
};
use pisek_overlay::TenantId;
use pisek_overlay::bgp::packet::RouteDistinguisher;
use pisek_overlay::packet::{Encapsulation, Label};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const RUNS: usize = 5;

fn main() -> anyhow::Result<()> {
    let count: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 100_000,
    };
    let routes: Vec<LearnedRoute> = (0..count)
        .map(|i| {
            let i = i as u32;
            // Spread over 64 advertisers and two tenants.
            let advertiser = Ipv4Addr::new(10, 255, 1, (i % 64) as u8 + 1);
            // Distinct /24s, and every fourth a /32 (stray addresses).
            let prefix = if i % 4 == 0 {
                ipnet::IpNet::new(Ipv4Addr::from(0x6400_0000 + i).into(), 32)?
            } else {
                ipnet::IpNet::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)).into(), 24)?
            };
            Ok(LearnedRoute {
                tenant: TenantId(1 + i % 2),
                rd: RouteDistinguisher::from_ipv4(advertiser, (1 + i % 2) as u16),
                prefix,
                next_hop: advertiser.into(),
                label: Label::for_vrf(16 + i % 2)?,
                encap: Encapsulation::MplsOverUdp,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let dir = std::env::temp_dir().join(format!("pisek-learned-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let mut save = Vec::new();
    let mut raw = Vec::new();
    let mut load = Vec::new();
    let mut restore = Vec::new();
    let bytes = encode_learned_routes(&routes)?;
    let raw_path = dir.join("raw.json");
    let mut installed = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        save_learned_routes(&dir, &routes)?;
        save.push(t.elapsed());
        let t = Instant::now();
        atomic::write_atomically(&raw_path, &bytes)?;
        raw.push(t.elapsed());
        let t = Instant::now();
        let loaded = load_learned_routes(&dir)?;
        load.push(t.elapsed());
        let t = Instant::now();
        let mut vrf_routes = VrfRoutes::new("10.255.0.11".parse()?);
        installed = vrf_routes.restore(&loaded).len();
        restore.push(t.elapsed());
    }
    let size = std::fs::metadata(learned_routes_path(&dir))?.len();
    std::fs::remove_dir_all(&dir)?;
    let (save, raw, load, restore) = (median(save), median(raw), median(load), median(restore));
    println!(
        "{count} learned routes, {size} bytes on disk, {installed} VRF next hops, median of {RUNS}"
    );
    println!("{:<44} {:>10}", "step", "time");
    println!(
        "{:<44} {:>10.1?}",
        "anchor: atomic write of the same bytes", raw
    );
    println!(
        "{:<44} {:>10.1?}  ({:.1}x the anchor)",
        "encode + atomic write (save_learned_routes)",
        save,
        save.as_secs_f64() / raw.as_secs_f64()
    );
    println!(
        "{:<44} {:>10.1?}",
        "read + parse (load_learned_routes)", load
    );
    println!("{:<44} {:>10.1?}", "VrfRoutes::restore (stale)", restore);
    Ok(())
}
