//! The underlay UDP socket, with one `recvmmsg` / `sendmmsg` per batch
//! instead of one syscall per datagram (as wireguard-go's `conn/` does).
//!
//! receive: recvmmsg(MSG_DONTWAIT) → [`DatagramBatch`] slots (bytes, length,
//! source). send: [`DatagramBatch`] slots → runs of equal-size datagrams to
//! one endpoint as UDP GSO messages → sendmmsg, retrying the rest when the
//! kernel takes part of the batch, waiting briefly when the socket buffer
//! is full.

use std::io;
use std::mem::{MaybeUninit, size_of};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// Datagrams per syscall: enough to amortise the syscall, small enough that
/// the per-call header arrays live on the stack.
pub const BATCH_SIZE: usize = 64;

/// Socket buffer size asked for: a burst of a few thousand full-size
/// datagrams, so a scheduling hiccup does not drop a TCP window.
const SOCKET_BUFFER_BYTES: libc::c_int = 4 << 20;

/// How long `send_batch` waits for room in a full socket buffer before it
/// drops the rest of the batch.
const SEND_WAIT_MS: libc::c_int = 50;

/// A batch of datagrams in caller-owned, preallocated slots.
pub struct DatagramBatch {
    data: Vec<u8>,
    slot_len: usize,
    lens: Vec<usize>,
    addrs: Vec<SocketAddr>,
    count: usize,
}

impl DatagramBatch {
    /// A batch of `slots` slots of `slot_len` bytes each.
    pub fn new(slots: usize, slot_len: usize) -> DatagramBatch {
        let unspecified = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        DatagramBatch {
            data: vec![0; slots * slot_len],
            slot_len,
            lens: vec![0; slots],
            addrs: vec![unspecified; slots],
            count: 0,
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// Number of filled slots.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when no slot is filled.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// True when every slot is filled.
    pub fn is_full(&self) -> bool {
        self.count == self.capacity()
    }

    /// Empties the batch (the bytes stay, for reuse).
    pub fn clear(&mut self) {
        self.count = 0;
    }

    /// The whole buffer of the next free slot. Panics when the batch is
    /// full: check [`is_full`](Self::is_full) first.
    pub fn next_slot(&mut self) -> &mut [u8] {
        let start = self.count * self.slot_len;
        &mut self.data[start..start + self.slot_len]
    }

    /// Fills the next free slot: its first `len` bytes go to (or came from)
    /// `addr`.
    pub fn commit(&mut self, len: usize, addr: SocketAddr) {
        debug_assert!(len <= self.slot_len && !self.is_full());
        self.lens[self.count] = len;
        self.addrs[self.count] = addr;
        self.count += 1;
    }

    /// Filled slot `i`: its bytes and address.
    pub fn get(&self, i: usize) -> (&[u8], SocketAddr) {
        let start = i * self.slot_len;
        (&self.data[start..start + self.lens[i]], self.addrs[i])
    }
}

/// A non-blocking UDP socket that sends and receives in batches.
pub struct UdpBatchSocket {
    socket: UdpSocket,
    /// Whether sends may use UDP GSO; cleared when the kernel refuses it.
    gso: AtomicBool,
}

impl UdpBatchSocket {
    /// Binds to `addr` (port 0 picks one), non-blocking, with large buffers.
    pub fn bind(addr: SocketAddr) -> io::Result<UdpBatchSocket> {
        let socket = UdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        let fd = socket.as_raw_fd();
        for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
            // Best effort: the kernel caps it at net.core.[rw]mem_max.
            set_int_option(fd, libc::SOL_SOCKET, opt, SOCKET_BUFFER_BYTES);
        }
        Ok(UdpBatchSocket {
            socket,
            gso: AtomicBool::new(true),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Receives up to a batch of datagrams without blocking; returns how
    /// many arrived (0 when none is waiting). A datagram longer than a slot
    /// is skipped.
    pub fn recv_batch(&self, batch: &mut DatagramBatch) -> io::Result<usize> {
        batch.clear();
        let n = batch.capacity().min(BATCH_SIZE);
        let mut iov: [MaybeUninit<libc::iovec>; BATCH_SIZE] =
            [const { MaybeUninit::uninit() }; BATCH_SIZE];
        // SAFETY: all-zero is a valid sockaddr_storage and mmsghdr (null
        // pointers, zero lengths); every pointer is set below before use.
        let mut names: [libc::sockaddr_storage; BATCH_SIZE] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH_SIZE] = unsafe { std::mem::zeroed() };
        let slot_len = batch.slot_len;
        for i in 0..n {
            let base = batch.data[i * slot_len..].as_mut_ptr();
            iov[i].write(libc::iovec {
                iov_base: base.cast(),
                iov_len: slot_len,
            });
            hdrs[i].msg_hdr.msg_iov = iov[i].as_mut_ptr();
            hdrs[i].msg_hdr.msg_iovlen = 1;
            hdrs[i].msg_hdr.msg_name = (&raw mut names[i]).cast();
            hdrs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        }
        // SAFETY: `hdrs[..n]` point at `n` live iovecs over disjoint slots of
        // `batch.data` and at `names`, all of which outlive the call.
        let got = unsafe {
            libc::recvmmsg(
                self.socket.as_raw_fd(),
                hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(err),
            };
        }
        for i in 0..got as usize {
            let hdr = &hdrs[i];
            if hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                continue;
            }
            if let Some(from) = from_sockaddr(&names[i]) {
                // Received bytes sit in slot i; commit moves slot by slot, so
                // keep them aligned by copying down only when one was skipped.
                let dst = batch.count;
                if dst != i {
                    batch.data.copy_within(
                        i * slot_len..i * slot_len + hdr.msg_len as usize,
                        dst * slot_len,
                    );
                }
                batch.commit(hdr.msg_len as usize, from);
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
        let total = batch.len();
        let mut done = 0;
        let mut sent = 0;
        while done < total {
            let mut iov: [MaybeUninit<libc::iovec>; BATCH_SIZE] =
                [const { MaybeUninit::uninit() }; BATCH_SIZE];
            // SAFETY: as in recv_batch, all-zero is valid for these types.
            let mut names: [libc::sockaddr_storage; BATCH_SIZE] = unsafe { std::mem::zeroed() };
            let mut hdrs: [libc::mmsghdr; BATCH_SIZE] = unsafe { std::mem::zeroed() };
            let mut cmsgs = [CmsgSpace([0; CMSG_BYTES]); BATCH_SIZE];
            let mut datagrams_in = [0usize; BATCH_SIZE];
            let gso = self.gso.load(Ordering::Relaxed);
            let (mut msgs, mut used, mut next) = (0, 0, done);
            while next < total && used < BATCH_SIZE {
                let (first, to) = batch.get(next);
                let segment = first.len();
                let mut count = 1;
                let mut bytes = segment;
                while gso
                    && next + count < total
                    && used + count < BATCH_SIZE
                    && count < GSO_MAX_SEGMENTS
                {
                    let (more, more_to) = batch.get(next + count);
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
                    let (b, _) = batch.get(next + k);
                    iov[used + k].write(libc::iovec {
                        iov_base: b.as_ptr() as *mut libc::c_void,
                        iov_len: b.len(),
                    });
                }
                let hdr = &mut hdrs[msgs].msg_hdr;
                hdr.msg_iov = iov[used].as_mut_ptr();
                hdr.msg_iovlen = count;
                hdr.msg_namelen = to_sockaddr(to, &mut names[msgs]);
                hdr.msg_name = (&raw mut names[msgs]).cast();
                if count > 1 {
                    set_segment_size(hdr, &mut cmsgs[msgs], segment as u16);
                }
                datagrams_in[msgs] = count;
                msgs += 1;
                used += count;
                next += count;
            }
            // SAFETY: `hdrs[..msgs]` point at live iovecs over the batch's
            // bytes (read only by the kernel), at `names` and at `cmsgs`.
            let rc = unsafe {
                libc::sendmmsg(
                    self.socket.as_raw_fd(),
                    hdrs.as_mut_ptr(),
                    msgs as libc::c_uint,
                    0,
                )
            };
            if rc > 0 {
                let n: usize = datagrams_in[..rc as usize].iter().sum();
                done += n;
                sent += n;
                continue;
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => {
                    if !wait_writable(self.socket.as_raw_fd())? {
                        break;
                    }
                }
                // The path cannot segment in software (EIO) or the kernel
                // predates UDP_SEGMENT (EINVAL): send one by one from now on.
                _ if datagrams_in[0] > 1
                    && matches!(err.raw_os_error(), Some(libc::EIO | libc::EINVAL)) =>
                {
                    self.gso.store(false, Ordering::Relaxed);
                }
                // This message cannot go (no route, too big, refused): drop
                // it and carry on with the others.
                _ => done += datagrams_in[0],
            }
        }
        batch.clear();
        Ok(sent)
    }
}

/// UDP_SEGMENT from linux/udp.h: the segment size of a GSO send.
const UDP_SEGMENT: libc::c_int = 103;

/// At most this many segments in one GSO send (UDP_MAX_SEGMENTS).
const GSO_MAX_SEGMENTS: usize = 64;

/// At most this many payload bytes in one GSO send: the whole must fit one
/// IP packet of 64 KiB with its headers.
const GSO_MAX_BYTES: usize = 65_000;

/// Room for one control message carrying a u16 (CMSG_SPACE(2) is 24 on
/// 64-bit Linux).
const CMSG_BYTES: usize = 32;

/// A control-message buffer aligned for `cmsghdr`.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct CmsgSpace([u8; CMSG_BYTES]);

/// Attaches a UDP_SEGMENT control message to `hdr`.
fn set_segment_size(hdr: &mut libc::msghdr, space: &mut CmsgSpace, segment: u16) {
    hdr.msg_control = space.0.as_mut_ptr().cast();
    // SAFETY: CMSG_* compute sizes and addresses inside `space`, which is
    // large enough and aligned for one cmsghdr plus a u16.
    unsafe {
        hdr.msg_controllen = libc::CMSG_SPACE(size_of::<u16>() as u32) as _;
        let cmsg = libc::CMSG_FIRSTHDR(hdr);
        (*cmsg).cmsg_level = libc::SOL_UDP;
        (*cmsg).cmsg_type = UDP_SEGMENT;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), segment);
    }
}

impl AsRawFd for UdpBatchSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

fn set_int_option(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) {
    // SAFETY: the option value is a live c_int of the size passed.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Waits until `fd` is writable; false after [`SEND_WAIT_MS`].
fn wait_writable(fd: RawFd) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one live pollfd.
    let rc = unsafe { libc::poll(&mut pfd, 1, SEND_WAIT_MS) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(true);
        }
        return Err(err);
    }
    Ok(rc > 0)
}

fn to_sockaddr(addr: SocketAddr, storage: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((storage as *mut libc::sockaddr_storage).cast(), sin) };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((storage as *mut libc::sockaddr_storage).cast(), sin6) };
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

fn from_sockaddr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin: libc::sockaddr_in =
                unsafe { std::ptr::read((storage as *const libc::sockaddr_storage).cast()) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6: libc::sockaddr_in6 =
                unsafe { std::ptr::read((storage as *const libc::sockaddr_storage).cast()) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
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
    fn ipv6_addresses_round_trip_through_sockaddr() {
        let addr: SocketAddr = "[fd00::1]:51820".parse().unwrap();
        // SAFETY: all-zero is a valid sockaddr_storage.
        let mut s: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        to_sockaddr(addr, &mut s);
        assert_eq!(from_sockaddr(&s), Some(addr));
        let addr4: SocketAddr = "192.0.2.1:7".parse().unwrap();
        to_sockaddr(addr4, &mut s);
        assert_eq!(from_sockaddr(&s), Some(addr4));
    }
}
