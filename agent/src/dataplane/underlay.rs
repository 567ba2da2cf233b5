//! The underlay UDP socket, with one `recvmmsg` / `sendmmsg` per batch
//! instead of one syscall per datagram (as wireguard-go's `conn/` does).
//!
//! receive: recvmmsg(MSG_DONTWAIT) → [`DatagramBatch`] slots (bytes, length,
//! source). send: [`DatagramBatch`] slots → runs of equal-size datagrams to
//! one endpoint as UDP GSO messages → sendmmsg, retrying the rest when the
//! kernel takes part of the batch, waiting briefly when the socket buffer
//! is full.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use super::sys::{self, OutMessage, Received};

/// Datagrams per syscall: enough to amortise the syscall, small enough that
/// the per-call header arrays live on the stack.
pub const BATCH_SIZE: usize = 64;

/// Socket buffer size asked for: a burst of a few thousand full-size
/// datagrams, so a scheduling hiccup does not drop a TCP window.
const SOCKET_BUFFER_BYTES: libc::c_int = 4 << 20;

/// How long `send_batch` waits for room in a full socket buffer before it
/// drops the rest of the batch.
const SEND_WAIT_MS: libc::c_int = 50;

/// A batch of datagrams in caller-owned, preallocated slots. A slot holds
/// one datagram to send, or one received message, which with UDP GRO may
/// be several datagrams of a flow back to back (split into entries).
pub struct DatagramBatch {
    data: Vec<u8>,
    slot_len: usize,
    slots: usize,
    /// Slots filled: by `commit`, or by the last receive.
    used_slots: usize,
    entries: Vec<Entry>,
}

/// One datagram's place in the batch's bytes and its address.
#[derive(Clone, Copy)]
struct Entry {
    start: usize,
    len: usize,
    addr: SocketAddr,
}

impl DatagramBatch {
    /// A batch of `slots` slots of `slot_len` bytes each. Receiving with
    /// UDP GRO ([`UdpBatchSocket::enable_gro`]) needs slots of
    /// [`GRO_SLOT_LEN`].
    pub fn new(slots: usize, slot_len: usize) -> DatagramBatch {
        DatagramBatch {
            data: vec![0; slots * slot_len],
            slot_len,
            slots,
            used_slots: 0,
            // A GRO message splits into at most 64 datagrams: room for all
            // of them now, so a receive never allocates.
            entries: Vec::with_capacity(slots * GSO_MAX_SEGMENTS),
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.slots
    }

    /// Number of datagrams in the batch.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the batch holds no datagram.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when every slot is filled (by commits, or by the last receive:
    /// more may be waiting).
    pub fn is_full(&self) -> bool {
        self.used_slots == self.slots
    }

    /// Empties the batch (the bytes stay, for reuse).
    pub fn clear(&mut self) {
        self.used_slots = 0;
        self.entries.clear();
    }

    /// The whole buffer of the next free slot. Panics when the batch is
    /// full: check [`is_full`](Self::is_full) first.
    pub fn next_slot(&mut self) -> &mut [u8] {
        let start = self.used_slots * self.slot_len;
        &mut self.data[start..start + self.slot_len]
    }

    /// Fills the next free slot: its first `len` bytes go to (or came from)
    /// `addr`.
    pub fn commit(&mut self, len: usize, addr: SocketAddr) {
        debug_assert!(len <= self.slot_len && !self.is_full());
        self.entries.push(Entry {
            start: self.used_slots * self.slot_len,
            len,
            addr,
        });
        self.used_slots += 1;
    }

    /// Datagram `i`: its bytes and address.
    pub fn get(&self, i: usize) -> (&[u8], SocketAddr) {
        let e = self.entries[i];
        (&self.data[e.start..e.start + e.len], e.addr)
    }
}

/// The receive slot a GRO message needs: a UDP payload of up to 64 KiB.
pub const GRO_SLOT_LEN: usize = 65_536;

/// A non-blocking UDP socket that sends and receives in batches.
pub struct UdpBatchSocket {
    socket: UdpSocket,
    /// Whether sends may use UDP GSO; cleared when the kernel refuses it.
    gso: AtomicBool,
    /// Whether the kernel may coalesce received datagrams (UDP_GRO).
    gro: bool,
}

impl UdpBatchSocket {
    /// Binds to `addr` (port 0 picks one), non-blocking, with large buffers.
    pub fn bind(addr: SocketAddr) -> io::Result<UdpBatchSocket> {
        let socket = UdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
            // Best effort: the kernel caps it at net.core.[rw]mem_max.
            let _ = sys::set_int_option(socket.as_fd(), libc::SOL_SOCKET, opt, SOCKET_BUFFER_BYTES);
        }
        Ok(UdpBatchSocket {
            socket,
            gso: AtomicBool::new(true),
            gro: false,
        })
    }

    /// Lets the kernel coalesce datagrams of a flow into one received
    /// message (UDP_GRO, Linux 5.0), which [`recv_batch`](Self::recv_batch)
    /// splits again: one socket buffer and one copy-out per burst instead
    /// of per datagram, and a GSO burst from the peer (or one that a router
    /// forwarded whole) is never segmented on the way in. Every batch
    /// received into must then have slots of [`GRO_SLOT_LEN`]: a longer
    /// message would be truncated, its datagrams lost. Returns whether the
    /// kernel took the option.
    pub fn enable_gro(&mut self) -> bool {
        self.gro = sys::set_int_option(self.socket.as_fd(), libc::SOL_UDP, sys::UDP_GRO, 1);
        self.gro
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Receives up to a batch of messages without blocking and splits
    /// coalesced ones into their datagrams; returns how many datagrams
    /// arrived (0 when none is waiting). A message longer than a slot is
    /// skipped.
    pub fn recv_batch(&self, batch: &mut DatagramBatch) -> io::Result<usize> {
        batch.clear();
        debug_assert!(!self.gro || batch.slot_len >= GRO_SLOT_LEN);
        let n = batch.capacity().min(BATCH_SIZE);
        let mut received = [Received::EMPTY; BATCH_SIZE];
        let slot_len = batch.slot_len;
        let got = match sys::recv_datagrams(
            self.socket.as_fd(),
            &mut batch.data,
            slot_len,
            &mut received[..n],
        ) {
            Ok(got) => got,
            Err(err) => {
                return match err.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                    _ => Err(err),
                };
            }
        };
        batch.used_slots = got;
        for (i, message) in received[..got].iter().enumerate() {
            let Some(addr) = message.from else { continue };
            if message.truncated {
                continue;
            }
            // A coalesced message holds datagrams of `segment` bytes, the
            // last possibly shorter (udp(7), UDP_GRO).
            let segment = if message.segment > 0 {
                message.segment
            } else {
                message.len.max(1)
            };
            let mut start = i * slot_len;
            let end = start + message.len;
            while start < end {
                let len = segment.min(end - start);
                batch.entries.push(Entry { start, len, addr });
                start += len;
            }
            if message.len == 0 {
                batch.entries.push(Entry {
                    start,
                    len: 0,
                    addr,
                });
            }
        }
        Ok(batch.len())
    }

    /// Sends every datagram of the batch and empties it. Runs of datagrams
    /// to one endpoint with one size (the last may be shorter) go as one
    /// UDP GSO message (UDP_SEGMENT, Linux 4.18): the stack builds one
    /// packet and splits it late, as wireguard-go does. Datagrams the kernel
    /// refuses (unreachable, too big) are dropped message by message; when
    /// the socket buffer stays full for 50 ms, the rest is dropped. Returns
    /// how many datagrams were sent.
    pub fn send_batch(&self, batch: &mut DatagramBatch) -> io::Result<usize> {
        let sent = self.send_datagrams(batch.len(), |i| batch.get(i));
        batch.clear();
        sent
    }

    /// [`send_batch`](Self::send_batch) over datagrams the caller holds
    /// elsewhere: `datagram(i)` for `i` in `0..total` (in order), so a
    /// pipeline's output batch goes out without a copy.
    pub fn send_datagrams<'b>(
        &self,
        total: usize,
        datagram: impl Fn(usize) -> (&'b [u8], SocketAddr),
    ) -> io::Result<usize> {
        let mut done = 0;
        let mut sent = 0;
        while done < total {
            let mut payloads: [&[u8]; BATCH_SIZE] = [&[]; BATCH_SIZE];
            let mut messages = [OutMessage::EMPTY; BATCH_SIZE];
            let gso = self.gso.load(Ordering::Relaxed);
            let (mut msgs, mut used, mut next) = (0, 0, done);
            while next < total && used < BATCH_SIZE {
                let (first, to) = datagram(next);
                let segment = first.len();
                let mut count = 1;
                let mut bytes = segment;
                while gso
                    && next + count < total
                    && used + count < BATCH_SIZE
                    && count < GSO_MAX_SEGMENTS
                {
                    let (more, more_to) = datagram(next + count);
                    if more_to != to || more.len() > segment || bytes + more.len() > GSO_MAX_BYTES {
                        break;
                    }
                    count += 1;
                    bytes += more.len();
                    if more.len() < segment {
                        break; // only the last segment may be short
                    }
                }
                for k in 0..count {
                    payloads[used + k] = datagram(next + k).0;
                }
                messages[msgs] = OutMessage {
                    first: used,
                    count,
                    to,
                    segment: segment as u16,
                };
                msgs += 1;
                used += count;
                next += count;
            }
            let err =
                match sys::send_messages(self.socket.as_fd(), &payloads[..used], &messages[..msgs])
                {
                    Ok(taken) => {
                        let n: usize = messages[..taken].iter().map(|m| m.count).sum();
                        done += n;
                        sent += n;
                        continue;
                    }
                    Err(err) => err,
                };
            match err.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => {
                    if !wait_writable(self.socket.as_fd())? {
                        break;
                    }
                }
                // The path cannot segment in software (EIO) or the kernel
                // predates UDP_SEGMENT (EINVAL): send one by one from now on.
                _ if messages[0].count > 1
                    && matches!(err.raw_os_error(), Some(libc::EIO | libc::EINVAL)) =>
                {
                    self.gso.store(false, Ordering::Relaxed);
                }
                // This message cannot go (no route, too big, refused): drop
                // it and carry on with the others.
                _ => done += messages[0].count,
            }
        }
        Ok(sent)
    }
}

/// At most this many segments in one GSO send (UDP_MAX_SEGMENTS).
const GSO_MAX_SEGMENTS: usize = 64;

/// At most this many payload bytes in one GSO send: the whole must fit one
/// IP packet of 64 KiB with its headers.
const GSO_MAX_BYTES: usize = 65_000;

impl AsRawFd for UdpBatchSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

/// Waits until `socket` is writable; false after [`SEND_WAIT_MS`].
fn wait_writable(socket: BorrowedFd<'_>) -> io::Result<bool> {
    let mut pfd = [libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    }];
    match sys::poll(&mut pfd, SEND_WAIT_MS) {
        Ok(ready) => Ok(ready > 0),
        Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(true),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_goes_out_in_one_call_and_arrives_whole_with_sources() {
        let a = UdpBatchSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = UdpBatchSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let to = b.local_addr().unwrap();
        let mut out = DatagramBatch::new(BATCH_SIZE, 2048);
        for i in 0..10u8 {
            let slot = out.next_slot();
            slot[..3].copy_from_slice(&[i, i, i]);
            out.commit(3 + i as usize, to);
        }
        assert_eq!(a.send_batch(&mut out).unwrap(), 10);
        assert!(out.is_empty());
        let mut got = DatagramBatch::new(BATCH_SIZE, 2048);
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while seen.len() < 10 && std::time::Instant::now() < deadline {
            b.recv_batch(&mut got).unwrap();
            for i in 0..got.len() {
                let (bytes, from) = got.get(i);
                assert_eq!(from, a.local_addr().unwrap());
                seen.push((bytes[0], bytes.len()));
            }
        }
        let expected: Vec<_> = (0..10u8).map(|i| (i, 3 + i as usize)).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn equal_size_runs_go_as_gso_and_arrive_as_separate_datagrams() {
        let a = UdpBatchSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = UdpBatchSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let c = UdpBatchSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let (to_b, to_c) = (b.local_addr().unwrap(), c.local_addr().unwrap());
        let mut out = DatagramBatch::new(BATCH_SIZE, 2048);
        // 40 x 1400 to b (a GSO run), a short tail, then 3 to c.
        let plan: Vec<(SocketAddr, usize)> = (0..40)
            .map(|_| (to_b, 1400))
            .chain([(to_b, 100), (to_c, 500), (to_c, 500), (to_c, 20)])
            .collect();
        for (i, (to, len)) in plan.iter().enumerate() {
            out.next_slot()[..*len].fill(i as u8);
            out.commit(*len, *to);
        }
        assert_eq!(a.send_batch(&mut out).unwrap(), plan.len());
        assert!(
            a.gso.load(Ordering::Relaxed),
            "the kernel took the GSO sends"
        );
        let mut got = DatagramBatch::new(BATCH_SIZE, 2048);
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while seen.len() < plan.len() && std::time::Instant::now() < deadline {
            for sock in [&b, &c] {
                sock.recv_batch(&mut got).unwrap();
                for i in 0..got.len() {
                    let (bytes, _) = got.get(i);
                    assert!(
                        bytes.iter().all(|x| *x == bytes[0]),
                        "one datagram, one fill"
                    );
                    seen.push((bytes[0] as usize, bytes.len()));
                }
            }
        }
        seen.sort();
        let expected: Vec<_> = plan.iter().enumerate().map(|(i, (_, l))| (i, *l)).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_gro_socket_splits_a_coalesced_burst_back_into_its_datagrams() {
        let a = UdpBatchSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut b = UdpBatchSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(b.enable_gro(), "the kernel takes UDP_GRO");
        let to = b.local_addr().unwrap();
        let mut out = DatagramBatch::new(BATCH_SIZE, 2048);
        // One GSO run of 30 x 1200 bytes and a short tail: the loopback
        // hands it to a GRO socket as one message.
        let plan: Vec<usize> = (0..30).map(|_| 1200).chain([77]).collect();
        for (i, len) in plan.iter().enumerate() {
            out.next_slot()[..*len].fill(i as u8);
            out.commit(*len, to);
        }
        assert_eq!(a.send_batch(&mut out).unwrap(), plan.len());
        let mut got = DatagramBatch::new(4, GRO_SLOT_LEN);
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while seen.len() < plan.len() && std::time::Instant::now() < deadline {
            b.recv_batch(&mut got).unwrap();
            for i in 0..got.len() {
                let (bytes, from) = got.get(i);
                assert_eq!(from, a.local_addr().unwrap());
                assert!(
                    bytes.iter().all(|x| *x == bytes[0]),
                    "one datagram, one fill"
                );
                seen.push((bytes[0] as usize, bytes.len()));
            }
        }
        let expected: Vec<_> = plan.iter().copied().enumerate().collect();
        assert_eq!(seen, expected);
    }
}
