//! Timers: one `tick(now)` drives WireGuard's (rekey, keepalive, handshake
//! retry, the rate limiter's reset) and failover between edges; what they
//! send goes to the underlay batch.

use super::sink::WgSink;
use super::{ForwardOutput, Pipeline};
use crate::drop::DropReason;
use std::time::Instant;

impl Pipeline {
    /// Sends a WireGuard handshake initiation to every peer with a known
    /// endpoint (at start); returns how many.
    pub fn initiate_handshakes(&mut self, now: Instant, out: &mut ForwardOutput) -> usize {
        let mut sink = WgSink::new(&mut out.underlay, &mut self.overflow, &mut []);
        let sent = self.wg.initiate_handshakes(now, &mut sink);
        let overflowed = sink.overflowed;
        self.drops.record_many(DropReason::QueueFull, overflowed);
        sent
    }

    /// Runs every timer due at `now`. Call it every 100-250 ms.
    pub fn tick(&mut self, now: Instant, out: &mut ForwardOutput) {
        let mut sink = WgSink::new(&mut out.underlay, &mut self.overflow, &mut []);
        self.wg.update_timers(now, &mut sink);
        let overflowed = sink.overflowed;
        self.drops.record_many(DropReason::QueueFull, overflowed);
    }
}
