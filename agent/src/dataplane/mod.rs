//! The agent's data plane: TUN devices, the batched underlay UDP socket,
//! and the forwarder thread that runs `pisek_overlay::forward::Pipeline`
//! between them.
//!
//! ```text
//!  pisek-t<N> (TUN, per tenant) ─┐                        ┌─ UDP socket (underlay, WireGuard)
//!  pisek0     (TUN, fabric)     ─┤  forwarder thread       │
//!                                ├─▶ poll ─▶ Pipeline ─────┤  egress: TUN batch → VRF → MPLSoUDP → WireGuard → sendmmsg
//!                                │   (owns every fd,       │  ingress: recvmmsg → WireGuard → label → VRF → TUN write
//!                                │    the Pipeline, timers)│  every 100 ms: Pipeline::tick (handshakes, keepalives, failover)
//!                                └──────────▲──────────────┘
//!          Command (CommandSender):         │               Snapshot (Arc<Mutex>), every 500 ms
//!   routing task (BGP RouteEvent → Route) ──┤               ──▶ LiveView (DataplaneView) ──▶ API / pisekctl
//!   attach / detach (routing::WorkloadRouting:
//!     Workload, stray Route, then Barrier) ─┘
//! ```
//! The forwarder thread above is the first forwarding worker. With
//! `[dataplane] workers` > 1 each further worker (`pisek-fwd-<k>`) reads
//! queue k of every tenant TUN (multi-queue: the kernel keeps each flow on
//! one queue, so flows stay in order) and runs the egress path of the
//! diagram. The workers share the pipeline behind a mutex taken once per
//! batch, never per packet; TUN reads, sendmmsg and TUN writes run outside
//! it. Control-plane changes arrive as commands (an mpsc channel plus a
//! wake-up datagram in the poll set) and are applied between batches. The
//! first worker publishes a snapshot; the API and the metrics read only that.
//!
//! Attach and detach are authoritative for anti-spoofing: their commands
//! are applied (a `Barrier` is answered) before the API answers, so the
//! first packet of a freshly attached workload is not dropped as spoofed.
//! On start the agent replays the adopted attachments the same way
//! (`Attachments::publish_all`). The TUNs are persistent (TUNSETPERSIST):
//! when the agent stops they stay, with the kernel routes and rules that
//! point at them, and the next start attaches to them by name.
//!
//! Files, in the order a packet meets them:
//! - `start.rs`: the pipeline from the config, then devices, socket, thread;
//! - `devices.rs`: the persistent TUNs and the tenant routing into them;
//! - `tun.rs`: opening a plain TUN, and TUN read/write batches (offload);
//! - `tun_read.rs`: splitting one read from an offload TUN;
//! - `underlay.rs`: the UDP socket with recvmmsg / sendmmsg and UDP GSO;
//! - `poll.rs`: waiting on every descriptor of a thread at once;
//! - `forwarder.rs`: the first forwarding worker's loop (underlay, fabric,
//!   timers, commands, snapshot);
//! - `egress_worker.rs`: the other workers, one queue of each tenant TUN each;
//! - `worker_io.rs`: what each worker owns: TUN queues, batches, TUN reads,
//!   sendmmsg and GRO'd TUN writes;
//! - `commands.rs`: what the control plane sends the thread;
//! - `snapshot.rs`, `view.rs`: what the thread shows, and the API's view of it;
//! - `sys.rs`: every `unsafe` block of the agent, behind safe functions.

mod commands;
mod devices;
mod egress_worker;
mod forwarder;
pub mod peer_endpoints;
mod poll;
mod snapshot;
mod start;
pub(crate) mod sys;
pub mod tun;
pub mod tun_read;
mod underlay;
mod view;
mod worker_io;

pub use commands::{Command, CommandSender, ForwarderStopped};
pub use devices::{Devices, FABRIC_TUN, open_devices};
pub use forwarder::Forwarder;
pub use poll::PollSet;
pub use snapshot::{PeerSnapshot, Snapshot};
pub use start::{pipeline_config, start};
pub use underlay::{BATCH_SIZE, DatagramBatch, GRO_SLOT_LEN, UdpBatchSocket};
pub use view::LiveView;
