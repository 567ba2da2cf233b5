//! The BGP speaker's driver: TCP sessions, timers and the API the agent
//! calls, around the sans-I/O [`pisek_overlay::bgp::speaker::Speaker`].
//!
//! ```text
//!                      ┌──────────── BgpHandle (advertise / withdraw / subscribe / sessions)
//!                      ▼ Command
//!  listener task ──Accepted──▶ ┌───────────────┐ ──Send(bytes)──▶ writer task ──▶ TCP
//!  connect task ──Connected──▶ │  speaker task  │ ──Close─────────▶ (drops writer)
//!  reader task  ──Bytes/Closed▶│ owns Speaker,  │ ──RouteEvent────▶ subscribers
//!                              │ sleeps until   │ ──End-of-RIB────▶ (events subscribers)
//!                              │ next deadline  │
//!                              └───────────────┘
//! ```
//! One task owns the speaker and feeds it commands and the time; each TCP
//! connection has a reader and a writer task. Readers use a bounded
//! channel, so a slow speaker pushes back on the peer through TCP.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use ipnet::IpNet;
use pisek_overlay::bgp::packet::{Family, VpnPrefix};
use pisek_overlay::bgp::policy::{TenantId, VrfConfig};
use pisek_overlay::bgp::speaker::{
    ConnId, NeighborConfig, NeighborId, NeighborStatus, Output, RibPath, Speaker, SpeakerConfig,
};
pub use pisek_overlay::bgp::speaker::{ImportedRoute, RouteEvent};
use pisek_overlay::packet::Label;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The well-known BGP port (RFC 4271 §8.2.1).
pub const BGP_PORT: u16 = 179;

/// Everything the driver needs to run a speaker.
#[derive(Debug, Clone)]
pub struct BgpConfig {
    /// The speaker's settings.
    pub speaker: SpeakerConfig,
    /// Address to listen on and to connect from.
    pub local_address: IpAddr,
    /// Port to listen on (179; tests use others). None: do not listen.
    pub listen_port: Option<u16>,
    /// Neighbours and the port each listens on.
    pub peers: Vec<(NeighborConfig, u16)>,
    /// VRFs at start.
    pub vrfs: Vec<VrfConfig>,
    /// Routes to advertise from the start (tenant, prefix, label), before any
    /// session comes up: after a restart they are in the first UPDATEs, ahead
    /// of End-of-RIB, so peers keep them (RFC 4724 §4.1).
    pub routes: Vec<(TenantId, IpNet, Label)>,
}

/// What an events subscriber hears, in the order the speaker produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpeakerEvent {
    /// A tenant's best route changed.
    Route(RouteEvent),
    /// A neighbor finished sending its routes of a family (RFC 4724 §2):
    /// what it did not send since its session came up, it no longer has.
    /// Ordered after the routes that preceded it on the wire.
    EndOfRib {
        /// The neighbor's address.
        neighbor: IpAddr,
        /// The family.
        family: Family,
    },
}

/// Who hears what the speaker reports.
enum Subscriber {
    /// Route changes of one tenant, or (None) of all.
    Routes(Option<TenantId>, mpsc::UnboundedSender<RouteEvent>),
    /// Route changes of all tenants and End-of-RIB markers, in one stream.
    Events(mpsc::UnboundedSender<SpeakerEvent>),
}

enum Command {
    Accepted(TcpStream, SocketAddr),
    Connected(NeighborId, u64, TcpStream),
    ConnectFailed(NeighborId, u64),
    Bytes(ConnId, Vec<u8>),
    Closed(ConnId),
    Advertise(TenantId, IpNet, Label, oneshot::Sender<anyhow::Result<()>>),
    Withdraw(TenantId, IpNet, oneshot::Sender<anyhow::Result<()>>),
    SetVrf(VrfConfig),
    Subscribe(Subscriber),
    Sessions(oneshot::Sender<Vec<NeighborStatus>>),
    RouteCount(oneshot::Sender<usize>),
    Advertised(oneshot::Sender<Vec<(VpnPrefix, TenantId, Label)>>),
    Rib(oneshot::Sender<Vec<RibPath>>),
    Refresh,
    Stop { notify_peers: bool },
}

/// The agent's handle on a running speaker. Dropping every handle stops it
/// like [`BgpHandle::crash`].
#[derive(Clone)]
pub struct BgpHandle {
    tx: mpsc::Sender<Command>,
}

/// A running speaker: its handle and its task.
pub struct Bgp {
    /// The API.
    pub handle: BgpHandle,
    /// Ends when the speaker stops.
    pub task: JoinHandle<()>,
}

impl BgpHandle {
    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> anyhow::Result<T> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| anyhow::anyhow!("BGP speaker stopped"))?;
        rx.await.map_err(|_| anyhow::anyhow!("BGP speaker stopped"))
    }

    /// Advertises `prefix` in `tenant` with `label` (RD and route targets from
    /// the tenant's VRF).
    pub async fn advertise(
        &self,
        tenant: TenantId,
        prefix: IpNet,
        label: Label,
    ) -> anyhow::Result<()> {
        self.call(|tx| Command::Advertise(tenant, prefix, label, tx))
            .await?
    }

    /// Withdraws a prefix advertised before.
    pub async fn withdraw(&self, tenant: TenantId, prefix: IpNet) -> anyhow::Result<()> {
        self.call(|tx| Command::Withdraw(tenant, prefix, tx))
            .await?
    }

    /// Adds or replaces a VRF; routes it now imports are reported to subscribers.
    pub async fn set_vrf(&self, vrf: VrfConfig) -> anyhow::Result<()> {
        self.tx
            .send(Command::SetVrf(vrf))
            .await
            .map_err(|_| anyhow::anyhow!("BGP speaker stopped"))
    }

    /// A stream of best-path changes of every tenant. Routes already known
    /// are not replayed: subscribe before peers come up, or call
    /// [`BgpHandle::set_vrf`] again to have a VRF's routes reported.
    pub async fn subscribe(&self) -> anyhow::Result<mpsc::UnboundedReceiver<RouteEvent>> {
        self.subscribe_to(None).await
    }

    /// A stream of best-path changes of one tenant.
    pub async fn subscribe_tenant(
        &self,
        tenant: TenantId,
    ) -> anyhow::Result<mpsc::UnboundedReceiver<RouteEvent>> {
        self.subscribe_to(Some(tenant)).await
    }

    async fn subscribe_to(
        &self,
        tenant: Option<TenantId>,
    ) -> anyhow::Result<mpsc::UnboundedReceiver<RouteEvent>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.tx
            .send(Command::Subscribe(Subscriber::Routes(tenant, tx)))
            .await
            .map_err(|_| anyhow::anyhow!("BGP speaker stopped"))?;
        Ok(rx)
    }

    /// A stream of every tenant's best-path changes and of the neighbors'
    /// End-of-RIB markers, in the speaker's order: a restarting agent
    /// learns from it when its peers have resent everything (RFC 4724 §4.1).
    /// Like [`BgpHandle::subscribe`], nothing already known is replayed.
    pub async fn subscribe_events(&self) -> anyhow::Result<mpsc::UnboundedReceiver<SpeakerEvent>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.tx
            .send(Command::Subscribe(Subscriber::Events(tx)))
            .await
            .map_err(|_| anyhow::anyhow!("BGP speaker stopped"))?;
        Ok(rx)
    }

    /// Every peer's session state and route count.
    pub async fn sessions(&self) -> anyhow::Result<Vec<NeighborStatus>> {
        self.call(Command::Sessions).await
    }

    /// Every path of the RIB (`pisekctl bgp rib`).
    pub async fn rib(&self) -> anyhow::Result<Vec<RibPath>> {
        self.call(Command::Rib).await
    }

    /// The routes this node advertises: (VPN prefix, tenant, label).
    pub async fn advertised(&self) -> anyhow::Result<Vec<(VpnPrefix, TenantId, Label)>> {
        self.call(Command::Advertised).await
    }

    /// Number of prefixes in the RIB.
    pub async fn route_count(&self) -> anyhow::Result<usize> {
        self.call(Command::RouteCount).await
    }

    /// Asks every peer to resend its routes (ROUTE-REFRESH).
    pub async fn refresh(&self) -> anyhow::Result<()> {
        self.tx
            .send(Command::Refresh)
            .await
            .map_err(|_| anyhow::anyhow!("BGP speaker stopped"))
    }

    /// Stops with a Cease NOTIFICATION to every peer: they drop our routes.
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Command::Stop { notify_peers: true }).await;
    }

    /// Stops without a word, as a crash or a restart for upgrade would:
    /// peers that do graceful restart keep our routes as stale.
    pub async fn crash(&self) {
        let _ = self
            .tx
            .send(Command::Stop {
                notify_peers: false,
            })
            .await;
    }
}

/// Starts the speaker: binds the listener (if any) and spawns the tasks.
pub async fn spawn(config: BgpConfig) -> anyhow::Result<Bgp> {
    // Small: readers wait here, which pushes back on peers through TCP.
    let (tx, rx) = mpsc::channel(64);
    let listener = match config.listen_port {
        Some(port) => {
            let addr = SocketAddr::new(config.local_address, port);
            let socket = match addr {
                SocketAddr::V4(_) => TcpSocket::new_v4(),
                SocketAddr::V6(_) => TcpSocket::new_v6(),
            }?;
            socket.set_reuseaddr(true)?;
            socket
                .bind(addr)
                .with_context(|| format!("cannot bind BGP listener to {addr}"))?;
            Some(socket.listen(64)?)
        }
        None => None,
    };
    let accept_task = listener.map(|l| tokio::spawn(accept_loop(l, tx.clone())));
    let handle = BgpHandle { tx: tx.clone() };
    let task = tokio::spawn(async move {
        let mut driver = Driver::new(config, tx);
        driver.run(rx).await;
        if let Some(t) = accept_task {
            t.abort();
        }
    });
    Ok(Bgp { handle, task })
}

async fn accept_loop(listener: TcpListener, tx: mpsc::Sender<Command>) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                if tx.send(Command::Accepted(stream, addr)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "BGP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

struct ConnTasks {
    writer: mpsc::UnboundedSender<Vec<u8>>,
    reader: JoinHandle<()>,
}

struct Driver {
    speaker: Speaker,
    config: BgpConfig,
    tx: mpsc::Sender<Command>,
    conns: HashMap<ConnId, ConnTasks>,
    /// Outgoing connection attempts in flight, by attempt number.
    connecting: HashMap<NeighborId, (u64, JoinHandle<()>)>,
    next_id: u64,
    /// Who hears route changes and End-of-RIB markers.
    subscribers: Vec<Subscriber>,
}

impl Driver {
    fn new(config: BgpConfig, tx: mpsc::Sender<Command>) -> Driver {
        let mut speaker = Speaker::new(config.speaker.clone());
        for vrf in &config.vrfs {
            speaker.set_vrf(vrf.clone());
        }
        Driver {
            speaker,
            config,
            tx,
            conns: HashMap::new(),
            connecting: HashMap::new(),
            next_id: 1,
            subscribers: Vec::new(),
        }
    }

    async fn run(&mut self, mut rx: mpsc::Receiver<Command>) {
        let now = Instant::now().into_std();
        for (tenant, prefix, label) in self.config.routes.clone() {
            if let Err(e) = self.speaker.advertise(tenant, prefix, label, now) {
                tracing::error!(error = %e, %prefix, "cannot advertise");
            }
        }
        for (peer, _) in self.config.peers.clone() {
            if let Err(e) = self.speaker.add_peer(peer, now) {
                tracing::error!(error = %e, "cannot add BGP peer");
            }
        }
        self.carry_out();
        loop {
            let deadline = self.speaker.next_deadline().map(Instant::from_std);
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    if !self.command(cmd) {
                        break;
                    }
                }
                () = sleep => self.speaker.poll_timers(Instant::now().into_std()),
            }
            self.carry_out();
        }
        // Drop every connection: writers end, readers are aborted, sockets close.
        for (_, c) in self.conns.drain() {
            c.reader.abort();
        }
        for (_, (_, t)) in self.connecting.drain() {
            t.abort();
        }
    }

    /// Handles one command; false to stop.
    fn command(&mut self, cmd: Command) -> bool {
        let now = Instant::now().into_std();
        match cmd {
            Command::Accepted(stream, addr) => match self.speaker.peer_by_address(addr.ip()) {
                Some(peer) => {
                    let conn = self.start_connection(stream);
                    self.speaker.connected(peer, conn, false, now);
                }
                None => tracing::info!(%addr, "refused BGP connection from an unknown address"),
            },
            Command::Connected(peer, attempt, stream) => {
                if self
                    .connecting
                    .get(&peer)
                    .is_some_and(|(a, _)| *a == attempt)
                {
                    self.connecting.remove(&peer);
                    let conn = self.start_connection(stream);
                    self.speaker.connected(peer, conn, true, now);
                }
            }
            Command::ConnectFailed(peer, attempt) => {
                if self
                    .connecting
                    .get(&peer)
                    .is_some_and(|(a, _)| *a == attempt)
                {
                    self.connecting.remove(&peer);
                    self.speaker.connect_failed(peer, now);
                }
            }
            Command::Bytes(conn, bytes) => self.speaker.received(conn, &bytes, now),
            Command::Closed(conn) => {
                if self.conns.remove(&conn).is_some() {
                    self.speaker.closed(conn, now);
                }
            }
            Command::Advertise(tenant, prefix, label, reply) => {
                let r = self
                    .speaker
                    .advertise(tenant, prefix, label, now)
                    .map_err(anyhow::Error::from);
                let _ = reply.send(r);
            }
            Command::Withdraw(tenant, prefix, reply) => {
                let r = self
                    .speaker
                    .withdraw(tenant, prefix, now)
                    .map_err(anyhow::Error::from);
                let _ = reply.send(r);
            }
            Command::SetVrf(vrf) => self.speaker.set_vrf(vrf),
            Command::Subscribe(subscriber) => self.subscribers.push(subscriber),
            Command::Sessions(reply) => {
                let _ = reply.send(self.speaker.peer_status());
            }
            Command::Advertised(reply) => {
                let _ = reply.send(self.speaker.advertised().collect());
            }
            Command::Rib(reply) => {
                let _ = reply.send(self.speaker.rib_paths(now));
            }
            Command::RouteCount(reply) => {
                let _ = reply.send(self.speaker.rib().len());
            }
            Command::Refresh => {
                for i in 0..self.config.peers.len() {
                    self.speaker.request_refresh(NeighborId(i as u16), now);
                }
            }
            Command::Stop { notify_peers } => {
                if notify_peers {
                    self.speaker.shutdown(now);
                    self.carry_out();
                }
                return false;
            }
        }
        true
    }

    fn start_connection(&mut self, stream: TcpStream) -> ConnId {
        let conn = ConnId(self.next_id);
        self.next_id += 1;
        let _ = stream.set_nodelay(true);
        let (mut read, mut write) = stream.into_split();
        let (wtx, mut wrx) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Some(bytes) = wrx.recv().await {
                if write.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            let _ = write.shutdown().await;
        });
        let tx = self.tx.clone();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx
                            .send(Command::Bytes(conn, buf[..n].to_vec()))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
            let _ = tx.send(Command::Closed(conn)).await;
        });
        self.conns.insert(
            conn,
            ConnTasks {
                writer: wtx,
                reader,
            },
        );
        conn
    }

    fn carry_out(&mut self) {
        while let Some(out) = self.speaker.poll_output() {
            match out {
                Output::Connect { peer, address } => self.connect(peer, address),
                Output::Send { conn, bytes } => {
                    if let Some(c) = self.conns.get(&conn) {
                        let _ = c.writer.send(bytes);
                    }
                }
                Output::Close { conn } => {
                    // Dropping the writer flushes what is queued, then shuts
                    // the socket down; the reader ends on the peer's FIN.
                    if let Some(c) = self.conns.remove(&conn) {
                        drop(c.writer);
                        let reader = c.reader;
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            reader.abort();
                        });
                    }
                }
                Output::Route(event) => {
                    self.subscribers.retain(|s| match s {
                        Subscriber::Routes(tenant, tx) => {
                            tenant.is_some_and(|t| t != event.tenant)
                                || tx.send(event.clone()).is_ok()
                        }
                        Subscriber::Events(tx) => {
                            tx.send(SpeakerEvent::Route(event.clone())).is_ok()
                        }
                    });
                }
                Output::SessionState { peer, state } => {
                    tracing::info!(peer = peer.0, %state, "BGP session state");
                }
                Output::MalformedUpdate {
                    peer,
                    reason,
                    action,
                    routes,
                    message,
                } => {
                    // RFC 7606 §6: the routes involved and the whole message.
                    let hex: String = message.iter().map(|b| format!("{b:02x}")).collect();
                    let routes: Vec<String> = routes.iter().map(|r| r.to_string()).collect();
                    tracing::warn!(
                        peer = peer.0, %reason, ?action, ?routes, message = %hex,
                        "malformed BGP UPDATE handled without a session reset (RFC 7606)"
                    );
                }
                Output::EndOfRib { peer, family } => {
                    tracing::debug!(peer = peer.0, %family, "End-of-RIB");
                    // Peers were added in the order of the config's list.
                    let Some(neighbor) = self
                        .config
                        .peers
                        .get(usize::from(peer.0))
                        .map(|(p, _)| p.address)
                    else {
                        continue;
                    };
                    self.subscribers.retain(|s| match s {
                        Subscriber::Routes(..) => true,
                        Subscriber::Events(tx) => {
                            tx.send(SpeakerEvent::EndOfRib { neighbor, family }).is_ok()
                        }
                    });
                }
            }
        }
    }

    fn connect(&mut self, peer: NeighborId, address: IpAddr) {
        let port = self
            .config
            .peers
            .get(usize::from(peer.0))
            .map(|p| p.1)
            .unwrap_or(BGP_PORT);
        let local = self.config.local_address;
        let attempt = self.next_id;
        self.next_id += 1;
        let tx = self.tx.clone();
        let task = tokio::spawn(async move {
            let result = async {
                let socket = if address.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                socket.bind(SocketAddr::new(local, 0))?;
                socket.connect(SocketAddr::new(address, port)).await
            }
            .await;
            let cmd = match result {
                Ok(stream) => Command::Connected(peer, attempt, stream),
                Err(_) => Command::ConnectFailed(peer, attempt),
            };
            let _ = tx.send(cmd).await;
        });
        if let Some((_, old)) = self.connecting.insert(peer, (attempt, task)) {
            old.abort();
        }
    }
}
