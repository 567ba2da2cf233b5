//! Every `unsafe` block of the agent, each inside a small safe function
//! with its `// SAFETY:` argument: the batched socket calls (`recvmmsg`,
//! `sendmmsg` with a UDP GSO control message), a socket option, `poll(2)`,
//! and the conversion between `SocketAddr` and the kernel's
//! `sockaddr_storage`.
//!
//! The rest of the agent is safe Rust: whoever reviews memory safety reads
//! this file. The callers keep the policy (what to retry, what to drop);
//! these functions only build the kernel's structures and make the call.

use std::io;
use std::mem::{MaybeUninit, size_of};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd};

use super::underlay::BATCH_SIZE;

/// What `recvmmsg` reported for one datagram.
#[derive(Clone, Copy, Debug)]
pub(super) struct Received {
    /// Bytes received into the datagram's slot.
    pub len: usize,
    /// The sender; `None` for a family other than IPv4 and IPv6.
    pub from: Option<SocketAddr>,
    /// The datagram was longer than its slot (MSG_TRUNC).
    pub truncated: bool,
    /// With UDP_GRO: the size of the datagrams coalesced into this
    /// message (0: one datagram).
    pub segment: usize,
}

impl Received {
    /// A slot nothing was received into yet.
    pub const EMPTY: Received = Received {
        len: 0,
        from: None,
        truncated: false,
        segment: 0,
    };
}

/// `recvmmsg(MSG_DONTWAIT)`: up to `received.len()` (at most
/// [`BATCH_SIZE`]) datagrams, datagram `i` into the `i`-th `slot_len`-byte
/// slot of `data`. Returns how many arrived, each described in
/// `received[i]`; errors are the kernel's (`WouldBlock` when none waits).
pub(super) fn recv_datagrams(
    socket: BorrowedFd<'_>,
    data: &mut [u8],
    slot_len: usize,
    received: &mut [Received],
) -> io::Result<usize> {
    let n = received
        .len()
        .min(BATCH_SIZE)
        .min(data.len() / slot_len.max(1));
    let mut iov: [MaybeUninit<libc::iovec>; BATCH_SIZE] =
        [const { MaybeUninit::uninit() }; BATCH_SIZE];
    // SAFETY: all-zero is a valid sockaddr_storage and mmsghdr (null
    // pointers, zero lengths); every pointer is set below before use.
    let mut names: [libc::sockaddr_storage; BATCH_SIZE] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut hdrs: [libc::mmsghdr; BATCH_SIZE] = unsafe { std::mem::zeroed() };
    let mut cmsgs = [CmsgSpace([0; CMSG_BYTES]); BATCH_SIZE];
    for i in 0..n {
        let base = data[i * slot_len..].as_mut_ptr();
        iov[i].write(libc::iovec {
            iov_base: base.cast(),
            iov_len: slot_len,
        });
        hdrs[i].msg_hdr.msg_iov = iov[i].as_mut_ptr();
        hdrs[i].msg_hdr.msg_iovlen = 1;
        hdrs[i].msg_hdr.msg_name = (&raw mut names[i]).cast();
        hdrs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // Room for the UDP_GRO segment size, when the socket coalesces.
        hdrs[i].msg_hdr.msg_control = cmsgs[i].0.as_mut_ptr().cast();
        hdrs[i].msg_hdr.msg_controllen = CMSG_BYTES as _;
    }
    // SAFETY: `hdrs[..n]` point at `n` live iovecs over disjoint slots of
    // `data` (each `slot_len` bytes, inside `data` since
    // `n * slot_len <= data.len()`), at `names` and at `cmsgs` (each
    // CMSG_BYTES long), all of which outlive the call.
    let got = unsafe {
        libc::recvmmsg(
            socket.as_raw_fd(),
            hdrs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    let got = got as usize;
    for i in 0..got {
        let hdr = &hdrs[i];
        received[i] = Received {
            len: hdr.msg_len as usize,
            from: from_sockaddr(&names[i]),
            truncated: hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
            segment: gro_segment(&hdr.msg_hdr),
        };
    }
    Ok(got)
}

/// The UDP_GRO segment size in a received message's control data (0 when
/// the message is one datagram).
fn gro_segment(hdr: &libc::msghdr) -> usize {
    // SAFETY: `hdr` is a message the kernel filled: msg_control points at
    // its live buffer and msg_controllen says how much of it the kernel
    // wrote; CMSG_FIRSTHDR/NXTHDR stay inside that and return null at the
    // end. The kernel writes the segment size as an int.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_UDP && (*cmsg).cmsg_type == UDP_GRO {
                let size = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                return usize::try_from(size).unwrap_or(0);
            }
            cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
        }
    }
    0
}

/// One message of a `sendmmsg`: the datagrams `payloads[first..first +
/// count]` to `to`. More than one go as one UDP GSO message whose segments
/// are `segment` bytes (the last may be shorter).
#[derive(Clone, Copy, Debug)]
pub(super) struct OutMessage {
    /// Index of the first datagram in the payloads.
    pub first: usize,
    /// Number of datagrams.
    pub count: usize,
    /// Where they go.
    pub to: SocketAddr,
    /// The GSO segment size (used when `count > 1`).
    pub segment: u16,
}

impl OutMessage {
    /// A placeholder for an unused entry.
    pub const EMPTY: OutMessage = OutMessage {
        first: 0,
        count: 0,
        to: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
        segment: 0,
    };
}

/// `sendmmsg` of `messages` (at most [`BATCH_SIZE`], over at most
/// [`BATCH_SIZE`] payloads). Returns how many messages the kernel took;
/// when it took none, the error (sendmmsg fails only on the first
/// message: the caller decides about that one and retries the rest).
pub(super) fn send_messages(
    socket: BorrowedFd<'_>,
    payloads: &[&[u8]],
    messages: &[OutMessage],
) -> io::Result<usize> {
    let mut iov: [MaybeUninit<libc::iovec>; BATCH_SIZE] =
        [const { MaybeUninit::uninit() }; BATCH_SIZE];
    // SAFETY: as in recv_datagrams, all-zero is valid for these types.
    let mut names: [libc::sockaddr_storage; BATCH_SIZE] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut hdrs: [libc::mmsghdr; BATCH_SIZE] = unsafe { std::mem::zeroed() };
    let mut cmsgs = [CmsgSpace([0; CMSG_BYTES]); BATCH_SIZE];
    for (i, b) in payloads.iter().take(BATCH_SIZE).enumerate() {
        iov[i].write(libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        });
    }
    let msgs = messages.len().min(BATCH_SIZE);
    for (k, m) in messages[..msgs].iter().enumerate() {
        assert!(m.first + m.count <= payloads.len().min(BATCH_SIZE));
        let hdr = &mut hdrs[k].msg_hdr;
        hdr.msg_iov = iov[m.first].as_mut_ptr();
        hdr.msg_iovlen = m.count;
        hdr.msg_namelen = to_sockaddr(m.to, &mut names[k]);
        hdr.msg_name = (&raw mut names[k]).cast();
        if m.count > 1 {
            set_segment_size(hdr, &mut cmsgs[k], m.segment);
        }
    }
    // SAFETY: `hdrs[..msgs]` point at iovecs initialised above (the assert
    // keeps each message inside them) over the payloads' bytes (read only
    // by the kernel), at `names` and at `cmsgs`, all of which outlive the
    // call.
    let rc = unsafe {
        libc::sendmmsg(
            socket.as_raw_fd(),
            hdrs.as_mut_ptr(),
            msgs as libc::c_uint,
            0,
        )
    };
    if rc > 0 {
        Ok(rc as usize)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// UDP_SEGMENT from linux/udp.h: the segment size of a GSO send.
const UDP_SEGMENT: libc::c_int = 103;

/// UDP_GRO from linux/udp.h: the socket option, and the control message
/// carrying the segment size of a coalesced receive.
pub(super) const UDP_GRO: libc::c_int = 104;

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

/// `setsockopt` of an int option, best effort: returns whether the kernel
/// took it.
pub(super) fn set_int_option(
    socket: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> bool {
    // SAFETY: the option value is a live c_int of the size passed.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

/// `poll(2)` over `fds` for at most `timeout_ms`; returns how many have
/// events (their `revents` set), or the error (`Interrupted` included).
pub(super) fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<usize> {
    // SAFETY: `fds` is a live, exclusively borrowed slice of pollfds.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
}

/// The calling thread's nice value (Linux keeps one per thread).
pub(crate) fn thread_niceness() -> io::Result<i32> {
    // SAFETY: gettid has no preconditions and getpriority reads only its
    // arguments. getpriority may legitimately return -1: errno tells an
    // error apart, so it is cleared first.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        *libc::__errno_location() = 0;
        let current = libc::getpriority(libc::PRIO_PROCESS, tid);
        if current == -1 && *libc::__errno_location() != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(current)
    }
}

/// Sets the calling thread's nice value (`setpriority` with a thread id
/// applies to that thread alone).
pub(crate) fn set_thread_niceness(niceness: i32) -> io::Result<()> {
    // SAFETY: gettid has no preconditions and setpriority reads only its
    // arguments.
    let rc =
        unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, niceness) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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
