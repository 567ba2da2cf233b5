//! A minimal HTTP/1.0 endpoint: `GET /health` (200 or 503) and
//! `GET /metrics` (Prometheus text). A thread of its own, one request per
//! connection, so it answers even while the MQTT side is stuck.

use super::metrics::Metrics;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// Binds `listen` and serves in a new thread; returns the bound address.
pub fn spawn(listen: SocketAddr, metrics: Arc<Metrics>) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(listen)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("collector-health".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = answer(stream, &metrics);
            }
        })?;
    Ok(bound)
}

fn answer(stream: TcpStream, metrics: &Metrics) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut reader = BufReader::new(stream.try_clone()?).take(8192);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Read the rest of the request head before answering: closing with
    // unread bytes makes the kernel send RST instead of FIN (RFC 1122
    // §4.2.2.13), and a client that has not read the answer yet loses it.
    let mut header = String::new();
    while matches!(reader.read_line(&mut header), Ok(n) if n > 0) && !header.trim_end().is_empty() {
        header.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = match path {
        "/health" => match metrics.health() {
            Ok(s) => ("200 OK", format!("ok {s}\n")),
            Err(s) => ("503 Service Unavailable", format!("unhealthy: {s}\n")),
        },
        "/metrics" => ("200 OK", metrics.render()),
        _ => ("404 Not Found", "try /health or /metrics\n".to_string()),
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
