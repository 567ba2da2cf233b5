//! The data plane's I/O: TUN devices, the batched underlay UDP socket, and
//! the WireGuard forwarding loop that joins them through
//! `pisek_overlay::wg`.
//!
//! ```text
//!            ┌──────────── one thread: WgForwarder::run ─────────────┐
//!  TUN read ─┤ packet → WgInterface::send → DatagramBatch ─ sendmmsg ├─→ UDP
//!  TUN write←┤ packet ← WgInterface::receive ← DatagramBatch ← recvmmsg├─← UDP
//!            │ every 100 ms: WgInterface::update_timers               │
//!            │ commands (mpsc): expire sessions, status snapshot      │
//!            └────────────────────────────────────────────────────────┘
//! ```
//! The TUN device runs with offload (IFF_VNET_HDR): a read returns a TSO
//! super-packet that tun-rs splits into MTU-sized packets, and decrypted
//! segments of one flow are coalesced (GRO) into one write. Buffers are
//! allocated once when the forwarder starts; the packet path allocates
//! nothing.

pub mod forwarder;
pub mod tun;
pub mod udp;

pub use forwarder::{ForwarderCommand, InterfaceStatus, WgForwarder};
pub use udp::{BATCH_SIZE, DatagramBatch, UdpBatchSocket};
