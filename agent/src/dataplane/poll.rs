//! Waiting for input on several descriptors at once (`poll(2)`): a
//! forwarding thread's TUNs, its underlay socket and its wake-up socket.
//! The set is built once; each wait reuses it.

use std::io;
use std::os::fd::RawFd;
use std::time::Instant;

use super::sys;

/// Descriptors waited on together for input, in a fixed order.
pub struct PollSet {
    fds: Vec<libc::pollfd>,
}

impl PollSet {
    /// A set over `fds`; [`is_ready`](Self::is_ready) takes their position.
    /// A descriptor closed meanwhile shows as ready (POLLNVAL), never as
    /// memory misuse.
    pub fn new(fds: impl IntoIterator<Item = RawFd>) -> PollSet {
        PollSet {
            fds: fds
                .into_iter()
                .map(|fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect(),
        }
    }

    /// Waits until one descriptor has input (or an error or hang-up), at
    /// most until `deadline` and at most 1 s. An interrupted wait returns
    /// as one that timed out: nothing ready.
    pub fn wait(&mut self, deadline: Instant) -> io::Result<()> {
        for fd in self.fds.iter_mut() {
            fd.revents = 0;
        }
        let timeout = deadline.saturating_duration_since(Instant::now());
        let timeout_ms = timeout.as_millis().clamp(0, 1000) as libc::c_int;
        match sys::poll(&mut self.fds, timeout_ms) {
            Ok(_) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Whether the descriptor at `position` had an event in the last wait.
    pub fn is_ready(&self, position: usize) -> bool {
        self.fds[position].revents != 0
    }
}
