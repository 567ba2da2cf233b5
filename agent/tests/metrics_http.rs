//! The metrics endpoint over real TCP on 127.0.0.1: a scrape shows the
//! view's figures in the exposition format, and malformed, oversized or
//! stalled requests are answered and closed without holding up other clients.

use pisek_agent::api::{BgpSessionInfo, DataplaneView, DropCounter, PeerInfo, RouteInfo};
use pisek_agent::metrics::{
    self, Limits, MetricsServer, MetricsSources, TenantTraffic, TenantTrafficSource,
};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A gateway with one edge peer, one BGP session and a spoofing drop.
struct FakeGateway;

impl DataplaneView for FakeGateway {
    fn running(&self) -> bool {
        true
    }
    fn remote_routes(&self, _tenant: Option<&str>) -> Vec<RouteInfo> {
        vec![RouteInfo {
            tenant: "city".into(),
            prefix: "10.1.2.0/24".into(),
            source: "bgp".into(),
            interface: None,
            next_hop: Some(IpAddr::V4(Ipv4Addr::new(10, 255, 0, 3))),
            label: Some(17),
        }]
    }
    fn peers(&self) -> Option<Vec<PeerInfo>> {
        Some(vec![PeerInfo {
            name: "edge \"dc1\"".into(),
            public_key: "ZWRnZQ==".into(),
            endpoint: Some("192.0.2.1:51820".into()),
            tunnel_address: IpAddr::V4(Ipv4Addr::new(10, 255, 0, 1)),
            last_handshake_secs: Some(5),
            rx_bytes: 4242,
            tx_bytes: 1717,
            rx_packets: 42,
            tx_packets: 17,
            handshakes: 2,
            endpoint_changes: 0,
            drops: BTreeMap::from([("decrypt-failed".to_string(), 1)]),
        }])
    }
    fn bgp_sessions(&self) -> Option<Vec<BgpSessionInfo>> {
        Some(vec![BgpSessionInfo {
            neighbor: IpAddr::V4(Ipv4Addr::new(10, 255, 0, 1)),
            name: Some("edge".into()),
            state: "Established".into(),
            uptime_secs: Some(12),
            received: 1,
            advertised: 2,
        }])
    }
    fn drops(&self) -> Vec<DropCounter> {
        vec![
            DropCounter {
                reason: "spoofed-source".into(),
                tenant: None,
                packets: 3,
            },
            DropCounter {
                reason: "spoofed-source".into(),
                tenant: Some("city".into()),
                packets: 3,
            },
        ]
    }
}

/// Tenant `city` sent 4 packets out and received 3.
struct FakeTraffic;

impl TenantTrafficSource for FakeTraffic {
    fn tenant_traffic(&self) -> Vec<TenantTraffic> {
        vec![TenantTraffic {
            tenant: "city".into(),
            in_packets: 3,
            in_bytes: 252,
            out_packets: 4,
            out_bytes: 336,
        }]
    }
}

async fn start(limits: Limits) -> MetricsServer {
    let sources =
        MetricsSources::new(Arc::new(FakeGateway)).with_tenant_traffic(Arc::new(FakeTraffic));
    metrics::serve_with_limits("127.0.0.1:0".parse().unwrap(), sources, limits)
        .await
        .expect("metrics server starts on loopback")
}

/// Sends `request` and reads until the server closes the connection.
async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before reading all of a huge request.
    let _ = stream.write_all(request).await;
    read_to_close(&mut stream).await
}

async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "server did not close the connection");
    String::from_utf8(answer).expect("answer is UTF-8")
}

fn body(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

#[tokio::test]
async fn scrape_shows_the_dataplane_view_in_exposition_format() {
    let server = start(Limits::default()).await;
    let answer = exchange(
        server.local_addr(),
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: text/plain\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    let text = body(&answer);
    let length: usize = answer
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.parse().ok())
        .expect("Content-Length");
    assert_eq!(length, text.len());
    for expected in [
        "# TYPE pisek_dataplane_up gauge\npisek_dataplane_up 1\n",
        "# TYPE pisek_wireguard_peer_receive_bytes_total counter\n\
         pisek_wireguard_peer_receive_bytes_total{peer=\"edge \\\"dc1\\\"\",public_key=\"ZWRnZQ==\"} 4242\n",
        "pisek_wireguard_peer_transmit_bytes_total{peer=\"edge \\\"dc1\\\"\",public_key=\"ZWRnZQ==\"} 1717\n",
        "# TYPE pisek_drops_total counter\npisek_drops_total{reason=\"spoofed-source\"} 3\n",
        "# TYPE pisek_tenant_drops_total counter\npisek_tenant_drops_total{tenant=\"city\",reason=\"spoofed-source\"} 3\n",
        "pisek_wireguard_peer_receive_packets_total{peer=\"edge \\\"dc1\\\"\",public_key=\"ZWRnZQ==\"} 42\n",
        "pisek_wireguard_peer_drops_total{peer=\"edge \\\"dc1\\\"\",public_key=\"ZWRnZQ==\",reason=\"decrypt-failed\"} 1\n",
        "pisek_bgp_session_state{neighbor=\"10.255.0.1\",name=\"edge\",state=\"Established\"} 1\n",
        "pisek_bgp_session_established{neighbor=\"10.255.0.1\",name=\"edge\"} 1\n",
        "pisek_routes{tenant=\"city\",source=\"bgp\"} 1\n",
        "pisek_tenant_packets_total{tenant=\"city\",direction=\"in\"} 3\n",
        "pisek_tenant_bytes_total{tenant=\"city\",direction=\"out\"} 336\n",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    // The handshake is a Unix time: 5 s before now.
    let handshake: u64 = text
        .lines()
        .find(|l| l.starts_with("pisek_wireguard_peer_last_handshake_seconds{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .expect("last handshake sample");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (now - 10..=now).contains(&handshake),
        "{handshake} vs {now}"
    );
}

#[tokio::test]
async fn health_answers_ok_and_other_paths_404() {
    let server = start(Limits::default()).await;
    let health = exchange(
        server.local_addr(),
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(body(&health), "ok\n");
    let missing = exchange(server.local_addr(), b"GET /admin HTTP/1.1\r\n\r\n").await;
    assert!(
        missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{missing}"
    );
    let post = exchange(server.local_addr(), b"POST /metrics HTTP/1.1\r\n\r\n").await;
    assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
    let head = exchange(server.local_addr(), b"HEAD /metrics HTTP/1.1\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(body(&head), "", "HEAD has no body");
}

#[tokio::test]
async fn garbage_gets_400_and_the_server_keeps_serving() {
    let server = start(Limits::default()).await;
    for garbage in [
        &b"\x00\x01\x02\xff\r\n\r\n"[..],
        b"GET /metrics\r\n\r\n",
        b"GET /metrics HTTP/9.9\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
    ] {
        let answer = exchange(server.local_addr(), garbage).await;
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{garbage:?} got {answer}"
        );
    }
    let answer = exchange(server.local_addr(), b"GET /metrics HTTP/1.1\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"));
}

#[tokio::test]
async fn huge_header_is_refused_with_431() {
    let server = start(Limits::default()).await;
    let mut request = b"GET /metrics HTTP/1.1\r\nX-Big: ".to_vec();
    request.resize(request.len() + 64 * 1024, b'a');
    request.extend_from_slice(b"\r\n\r\n");
    let answer = exchange(server.local_addr(), &request).await;
    assert!(
        answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{answer}"
    );
}

#[tokio::test]
async fn slowloris_is_closed_while_another_client_gets_its_answer() {
    let limits = Limits {
        read_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let server = start(limits).await;
    // A head that never ends: no final CRLF.
    let mut slow = TcpStream::connect(server.local_addr()).await.unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();

    let answer = exchange(server.local_addr(), b"GET /health HTTP/1.1\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"));

    let stalled = read_to_close(&mut slow).await;
    assert!(stalled.starts_with("HTTP/1.1 408 "), "{stalled}");
}

#[tokio::test]
async fn non_loopback_address_is_refused() {
    let sources = MetricsSources::new(Arc::new(FakeGateway));
    let err = metrics::serve_with_limits("0.0.0.0:0".parse().unwrap(), sources, Limits::default())
        .await
        .expect_err("0.0.0.0 is not loopback");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("not a loopback address"));
}
