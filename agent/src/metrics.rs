//! Prometheus metrics on a loopback port (text exposition format 0.0.4),
//! read from the same snapshots the API shows: packets and bytes per
//! tenant, drops by reason, WireGuard peers' last handshake and bytes, BGP
//! session state.

use crate::api::BgpSessionInfo;
use crate::config::Config;
use crate::vrouter::Snapshot;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves `GET /metrics` (any path) on `listen` until the listener fails.
pub async fn serve(
    listen: SocketAddr,
    config: Arc<Config>,
    snapshot: Arc<Mutex<Snapshot>>,
    sessions: Arc<Mutex<Vec<BgpSessionInfo>>>,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (mut stream, _) = listener.accept().await?;
        let body = render(&config, &snapshot, &sessions);
        tokio::spawn(async move {
            // The request itself does not matter: one page, then close.
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request).await;
            let head = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
        });
    }
}

/// The exposition text.
pub fn render(
    config: &Config,
    snapshot: &Mutex<Snapshot>,
    sessions: &Mutex<Vec<BgpSessionInfo>>,
) -> String {
    let snapshot = snapshot.lock().map(|s| s.clone()).unwrap_or_default();
    let mut m = String::new();
    let tenant_name = |id: u32| {
        config
            .tenants
            .iter()
            .find(|t| t.id == id)
            .map_or_else(|| id.to_string(), |t| t.name.clone())
    };
    let _ = writeln!(
        m,
        "# HELP pisek_tenant_packets_total Tenant packets through the overlay."
    );
    let _ = writeln!(m, "# TYPE pisek_tenant_packets_total counter");
    for (id, c) in &snapshot.tenants {
        let t = tenant_name(id.0);
        let _ = writeln!(
            m,
            "pisek_tenant_packets_total{{tenant=\"{t}\",direction=\"tx\"}} {}",
            c.tx_packets
        );
        let _ = writeln!(
            m,
            "pisek_tenant_packets_total{{tenant=\"{t}\",direction=\"rx\"}} {}",
            c.rx_packets
        );
    }
    let _ = writeln!(
        m,
        "# HELP pisek_tenant_bytes_total Tenant bytes through the overlay."
    );
    let _ = writeln!(m, "# TYPE pisek_tenant_bytes_total counter");
    for (id, c) in &snapshot.tenants {
        let t = tenant_name(id.0);
        let _ = writeln!(
            m,
            "pisek_tenant_bytes_total{{tenant=\"{t}\",direction=\"tx\"}} {}",
            c.tx_bytes
        );
        let _ = writeln!(
            m,
            "pisek_tenant_bytes_total{{tenant=\"{t}\",direction=\"rx\"}} {}",
            c.rx_bytes
        );
    }
    let _ = writeln!(
        m,
        "# HELP pisek_drops_total Packets dropped by the data plane, by reason."
    );
    let _ = writeln!(m, "# TYPE pisek_drops_total counter");
    for (reason, n) in &snapshot.drops {
        let _ = writeln!(m, "pisek_drops_total{{reason=\"{reason}\"}} {n}");
    }
    let _ = writeln!(
        m,
        "# HELP pisek_wireguard_peer_bytes_total Bytes per WireGuard peer."
    );
    let _ = writeln!(m, "# TYPE pisek_wireguard_peer_bytes_total counter");
    let _ = writeln!(
        m,
        "# HELP pisek_wireguard_last_handshake_seconds Seconds since the peer's last handshake."
    );
    let _ = writeln!(m, "# TYPE pisek_wireguard_last_handshake_seconds gauge");
    for peer in &config.wireguard.peers {
        let live = crate::keyfile::parse_public_key(&peer.public_key)
            .ok()
            .and_then(|k| {
                snapshot
                    .peers
                    .iter()
                    .find(|p| p.public_key == *k.as_bytes())
            });
        let Some(live) = live else { continue };
        let name = &peer.name;
        let _ = writeln!(
            m,
            "pisek_wireguard_peer_bytes_total{{peer=\"{name}\",direction=\"rx\"}} {}",
            live.rx_bytes
        );
        let _ = writeln!(
            m,
            "pisek_wireguard_peer_bytes_total{{peer=\"{name}\",direction=\"tx\"}} {}",
            live.tx_bytes
        );
        if let Some(s) = live.last_handshake_secs {
            let _ = writeln!(
                m,
                "pisek_wireguard_last_handshake_seconds{{peer=\"{name}\"}} {s}"
            );
        }
    }
    let _ = writeln!(
        m,
        "# HELP pisek_bgp_session_established 1 when the BGP session is Established."
    );
    let _ = writeln!(m, "# TYPE pisek_bgp_session_established gauge");
    for s in sessions.lock().map(|s| s.clone()).unwrap_or_default() {
        let up = u8::from(s.state == "Established");
        let _ = writeln!(
            m,
            "pisek_bgp_session_established{{neighbor=\"{}\"}} {up}",
            s.neighbor
        );
    }
    m
}
