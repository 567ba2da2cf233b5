//! What the control plane tells the forwarder thread: [`Command`]s
//! through a [`CommandSender`], applied between batches.
//!
//! The sender also wakes the thread's poll (a datagram on a socket pair in
//! its poll set), so a command takes effect within one turn, not at the
//! next tick. [`CommandSender::applied`] waits until the thread has applied
//! everything sent before it: the attach path uses it so that a workload's
//! addresses are known before its attach is answered.

use ipnet::IpNet;
use pisek_overlay::vrf::{NextHop, TenantId};
use std::net::IpAddr;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::mpsc::{SendError, Sender};

#[cfg(test)]
use std::{io, sync::mpsc::Receiver};

/// A control-plane change, applied between batches.
#[derive(Debug)]
pub enum Command {
    /// Installs (`Some`) or removes (`None`) a route in a tenant's VRF.
    Route {
        /// The tenant.
        tenant: TenantId,
        /// The destination.
        prefix: IpNet,
        /// Where it goes.
        next_hop: Option<NextHop>,
    },
    /// A workload address appeared (`present`) or went away: anti-spoofing.
    Workload {
        /// The tenant.
        tenant: TenantId,
        /// The workload's address.
        address: IpAddr,
        /// Attached or detached.
        present: bool,
    },
    /// Answered once every command sent before it is applied (and the VRFs
    /// committed): see [`CommandSender::applied`].
    Barrier(tokio::sync::oneshot::Sender<()>),
}

/// The forwarder thread is gone: it stopped or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the forwarder thread is not running")]
pub struct ForwarderStopped;

/// Where control-plane changes go: a channel into the forwarder thread and
/// a wake-up for its poll.
#[derive(Debug, Clone)]
pub struct CommandSender {
    commands: Sender<Command>,
    wake: Arc<UnixDatagram>,
}

impl CommandSender {
    /// A sender over the forwarder thread's channel and the sending end
    /// of its wake-up socket pair.
    pub(super) fn new(commands: Sender<Command>, wake: UnixDatagram) -> CommandSender {
        CommandSender {
            commands,
            wake: Arc::new(wake),
        }
    }

    /// Queues a command and wakes the thread.
    pub fn send(&self, command: Command) -> Result<(), SendError<Command>> {
        self.commands.send(command)?;
        // A full socket buffer means a wake-up is pending already.
        let _ = self.wake.send(&[1]);
        Ok(())
    }

    /// A sender whose commands land in the returned receiver instead of a
    /// forwarder thread: for tests of what the control plane sends.
    #[cfg(test)]
    pub(crate) fn channel() -> io::Result<(CommandSender, Receiver<Command>)> {
        let (commands, receiver) = std::sync::mpsc::channel();
        let (wake, _) = UnixDatagram::pair()?;
        wake.set_nonblocking(true)?;
        let sender = CommandSender {
            commands,
            wake: Arc::new(wake),
        };
        Ok((sender, receiver))
    }

    /// Returns once the thread applied every command sent before this call.
    pub async fn applied(&self) -> Result<(), ForwarderStopped> {
        let (done, applied) = tokio::sync::oneshot::channel();
        self.send(Command::Barrier(done))
            .map_err(|_| ForwarderStopped)?;
        applied.await.map_err(|_| ForwarderStopped)
    }
}
