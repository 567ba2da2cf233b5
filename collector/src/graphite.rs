//! The Graphite writer: queue -> carbon's plaintext receiver over TCP.
//!
//! Flow, in one thread: connect (exponential backoff) -> read a batch of
//! whole records from the queue -> check the peer has not closed -> write ->
//! acknowledge in the queue what carbon's TCP stack has acknowledged.
//!
//! The plaintext protocol has no acknowledgement of its own, and a write
//! into a connection whose peer is gone still succeeds locally. So a batch is
//! removed from the queue only when the kernel's send queue no longer holds it
//! (SIOCOUTQ: bytes not yet acknowledged by the peer), and after any error
//! the writer goes back to the queue's ack position and sends again. What
//! carbon receives twice it stores once (same path and timestamp).

use super::metrics::Metrics;
use super::queue::shared::SharedQueue;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How the writer connects and batches.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// `host:port` of carbon's line receiver.
    pub address: String,
    /// Bytes per write.
    pub batch_bytes: usize,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
}

/// A batch written but not yet acknowledged by the peer's TCP.
struct InFlight {
    /// Connection byte count at the end of the batch.
    conn_end: u64,
    /// Queue position after the batch.
    queue_end: u64,
    /// Readings (lines) in the batch.
    lines: u64,
}

/// Runs the writer until `stop` is set. Returns only then.
pub fn run(
    opts: WriterOptions,
    shared: Arc<SharedQueue>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
) {
    let mut conn: Option<TcpStream> = None;
    let mut conn_bytes = 0u64;
    let mut inflight: VecDeque<InFlight> = VecDeque::new();
    let mut backoff = opts.reconnect_min;
    let mut send_pos = shared.lock().ack_position();
    let mut buf = Vec::with_capacity(opts.batch_bytes + 64 * 1024);
    let mut last_error_log: Option<Instant> = None;

    while !stop.load(Ordering::Relaxed) {
        let Some(stream) = conn.as_mut() else {
            match connect(&opts.address) {
                Ok(s) => {
                    tracing::info!(address = %opts.address, "connected to carbon");
                    conn = Some(s);
                    conn_bytes = 0;
                    backoff = opts.reconnect_min;
                    Metrics::add(&metrics.graphite_connects, 1);
                    metrics.graphite_connected.store(true, Ordering::Relaxed);
                }
                Err(e) => {
                    if last_error_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                        tracing::warn!(address = %opts.address, error = %e, "cannot connect to carbon; readings stay queued");
                        last_error_log = Some(Instant::now());
                    }
                    sleep_unless_stopped(backoff, &stop);
                    backoff = (backoff * 2).min(opts.reconnect_max);
                }
            }
            continue;
        };

        confirm(stream, conn_bytes, &mut inflight, &shared, &metrics);

        buf.clear();
        let next = {
            let mut q = shared.lock();
            let mut next = match q.read(send_pos, opts.batch_bytes, &mut buf) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the queue");
                    drop(q);
                    sleep_unless_stopped(Duration::from_secs(1), &stop);
                    continue;
                }
            };
            if next == send_pos {
                // Nothing new. Sleep until a commit, or briefly while
                // batches wait for the peer's acknowledgement.
                let wait = if inflight.is_empty() { 100 } else { 2 };
                q = shared.wait_for_data(q, Duration::from_millis(wait));
                next = q
                    .read(send_pos, opts.batch_bytes, &mut buf)
                    .unwrap_or(send_pos);
            }
            SharedQueue::update_gauges(&q, &metrics);
            next
        };
        if next == send_pos {
            continue;
        }
        let result = if peer_closed(stream) {
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "carbon closed the connection",
            ))
        } else {
            stream.write_all(&buf)
        };
        match result {
            Ok(()) => {
                conn_bytes += buf.len() as u64;
                let lines = buf.iter().filter(|&&b| b == b'\n').count() as u64;
                inflight.push_back(InFlight {
                    conn_end: conn_bytes,
                    queue_end: next,
                    lines,
                });
                send_pos = next;
            }
            Err(e) => {
                tracing::warn!(error = %e, "lost the connection to carbon; resending from the last acknowledged reading");
                conn = None;
                metrics.graphite_connected.store(false, Ordering::Relaxed);
                inflight.clear();
                send_pos = shared.lock().ack_position();
            }
        }
    }
}

fn connect(address: &str) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "address resolves to nothing");
    for addr in address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(s) => {
                s.set_nodelay(true)?;
                // A carbon that stops reading must not block the writer forever.
                s.set_write_timeout(Some(Duration::from_secs(10)))?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Acknowledges in the queue every batch the peer's TCP has acknowledged.
fn confirm(
    stream: &TcpStream,
    conn_bytes: u64,
    inflight: &mut VecDeque<InFlight>,
    shared: &SharedQueue,
    metrics: &Metrics,
) {
    if inflight.is_empty() {
        return;
    }
    let Some(unacked) = unacknowledged_bytes(stream) else {
        return;
    };
    let acked = conn_bytes.saturating_sub(unacked);
    let mut done = None;
    let mut lines = 0;
    while inflight.front().is_some_and(|f| f.conn_end <= acked) {
        let f = inflight.pop_front().expect("front exists");
        done = Some(f.queue_end);
        lines += f.lines;
    }
    if let Some(pos) = done {
        let mut q = shared.lock();
        if let Err(e) = q.ack(pos) {
            tracing::warn!(error = %e, "cannot record the ack position; points may be sent again after a restart");
        }
        SharedQueue::update_gauges(&q, metrics);
        drop(q);
        Metrics::add(&metrics.readings_sent, lines);
        shared.space_freed.notify_one();
    }
}

/// Bytes in the socket's send queue not yet acknowledged by the peer.
fn unacknowledged_bytes(stream: &TcpStream) -> Option<u64> {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (= TIOCOUTQ) on a TCP socket writes one c_int to the
    // pointer, which points at a live c_int; the fd is owned by `stream`.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    (rc == 0 && n >= 0).then_some(n as u64)
}

/// True when carbon closed its end (it never sends, so readable = EOF or error).
fn peer_closed(stream: &TcpStream) -> bool {
    let mut byte = 0u8;
    // SAFETY: recv into one live byte, non-blocking peek, fd owned by `stream`.
    let rc = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if rc == 0 {
        return true;
    }
    rc < 0 && {
        let err = io::Error::last_os_error();
        !matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
        )
    }
}

fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let deadline = Instant::now() + total;
    while !stop.load(Ordering::Relaxed) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}
