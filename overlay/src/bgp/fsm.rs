//! The BGP session state machine (RFC 4271 §8), one per TCP connection
//! attempt. It owns no socket and reads no clock: the caller feeds events
//! and the time, and carries out the actions (send, connect, disconnect).
//!
//! Timers are deadlines kept here; [`Fsm::due_timer`] turns an expired one
//! into its RFC event, which goes through the one `match (state, event)`.
//! Connect retry backs off exponentially from the configured interval, and
//! the same back-off delays an automatic restart after an error (RFC 4271
//! §8.1.1's IdleHoldTimer, "DampPeerOscillations").

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::packet::capability::{Capability, GracefulRestart, GracefulRestartFamily};
use super::packet::error::{ErrorCode, cease};
use super::packet::iana::AS_TRANS;
use super::packet::{
    DecodeError, Family, Message, Notification, Open, RouteRefresh, SessionContext, Update,
};

/// Session states (RFC 4271 §8.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not trying; waits for a start or the automatic restart timer.
    Idle,
    /// Waiting for an outgoing TCP connection to complete.
    Connect,
    /// Waiting for the peer to connect (or the retry timer).
    Active,
    /// OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for the peer's KEEPALIVE.
    OpenConfirm,
    /// Exchanging UPDATEs.
    Established,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// Inputs of the state machine, each named after its RFC 4271 §8.1 event.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Event 1: ManualStart (and Event 3, AutomaticStart, when the restart
    /// timer fires in Idle).
    ManualStart,
    /// Event 2: ManualStop.
    ManualStop,
    /// Event 9: ConnectRetryTimer_Expires.
    ConnectRetryTimerExpires,
    /// Event 10: HoldTimer_Expires.
    HoldTimerExpires,
    /// Event 11: KeepaliveTimer_Expires.
    KeepaliveTimerExpires,
    /// Events 16 and 17: Tcp_CR_Acked (our connect succeeded) and
    /// TcpConnectionConfirmed (we accepted the peer's connection).
    TcpConnectionUp {
        /// True when we initiated the connection.
        outgoing: bool,
    },
    /// Event 18: TcpConnectionFails (refused, reset, closed by the peer).
    TcpConnectionFails,
    /// Event 19: BGPOpen.
    BgpOpen(Open),
    /// Events 21, 22 and 28: BGPHeaderErr, BGPOpenMsgErr, UpdateMsgErr.
    MessageError(DecodeError),
    /// Event 23: OpenCollisionDump (this connection lost a collision, §6.8).
    OpenCollisionDump,
    /// Event 25: NotifMsg (and 24, NotifMsgVerErr).
    NotifMsg(Notification),
    /// Event 26: KeepAliveMsg.
    KeepAliveMsg,
    /// Event 27: UpdateMsg.
    UpdateMsg(Box<Update>),
    /// ROUTE-REFRESH received (RFC 2918 §4; RFC 4271 has no number for it).
    RouteRefreshMsg(RouteRefresh),
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send this message on the connection.
    Send(Message),
    /// Open a TCP connection to the peer.
    Connect,
    /// Close the TCP connection (after sending what is queued).
    Disconnect,
    /// The session is up with these terms.
    Established(Negotiated),
    /// The session left Established.
    Down(DownReason),
    /// An UPDATE arrived on the established session.
    Update(Box<Update>),
    /// The peer asks us to send our routes of a family again.
    RouteRefresh(Family),
}

/// Why an established session went down. RFC 4724 §4.2: only a session that
/// ends without a NOTIFICATION leaves the peer's routes in place as stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// The TCP connection failed or closed (graceful restart applies).
    ConnectionLost,
    /// The hold timer expired (graceful restart applies, RFC 4724 §4.2).
    HoldTimerExpired,
    /// We sent a NOTIFICATION.
    SentNotification(u8, u8),
    /// The peer sent a NOTIFICATION.
    ReceivedNotification(u8, u8),
    /// Stopped by the operator.
    Stopped,
}

impl DownReason {
    /// True when the peer's routes should be kept as stale (RFC 4724 §4.2).
    pub fn keeps_routes(&self) -> bool {
        matches!(
            self,
            DownReason::ConnectionLost | DownReason::HoldTimerExpired
        )
    }
}

/// Graceful restart settings of the local speaker (RFC 4724).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GracefulRestartConfig {
    /// Seconds the peer should keep our routes after we go away.
    pub restart_time: u16,
    /// We are coming back from a restart with forwarding state preserved:
    /// sets the Restart State and Forwarding bits (RFC 4724 §3).
    pub restarting: bool,
}

/// The local side of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Our AS.
    pub local_as: u32,
    /// Our BGP Identifier.
    pub router_id: Ipv4Addr,
    /// The peer's AS (equal to ours: the speaker does iBGP).
    pub remote_as: u32,
    /// Hold time we offer (0 or at least 3 seconds).
    pub hold_time: u16,
    /// Families we offer.
    pub families: Vec<Family>,
    /// Graceful restart, if offered.
    pub graceful_restart: Option<GracefulRestartConfig>,
    /// The address family of our next hops (1 IPv4, 2 IPv6): for each
    /// offered family of the other AFI we announce the extended next hop
    /// capability (RFC 8950 §3; BIRD also reads it for VPNv6 routes with
    /// IPv4 next hops, the RFC 4659 §3.2.1.2 case).
    pub next_hop_afi: u16,
    /// Never connect; only accept the peer's connections.
    pub passive: bool,
    /// First connect retry interval; doubles per failure up to `connect_retry_max`.
    pub connect_retry: Duration,
    /// Upper bound of the back-off.
    pub connect_retry_max: Duration,
}

impl SessionConfig {
    /// The OPEN we send.
    pub fn open(&self) -> Open {
        let mut capabilities: Vec<Capability> = self
            .families
            .iter()
            .map(|f| Capability::Multiprotocol(*f))
            .collect();
        capabilities.push(Capability::RouteRefresh);
        let other_afi: Vec<(Family, u16)> = self
            .families
            .iter()
            .filter(|f| f.afi != self.next_hop_afi)
            .map(|f| (*f, self.next_hop_afi))
            .collect();
        if !other_afi.is_empty() {
            capabilities.push(Capability::ExtendedNextHop(other_afi));
        }
        if let Some(gr) = self.graceful_restart {
            capabilities.push(Capability::GracefulRestart(GracefulRestart {
                restarting: gr.restarting,
                restart_time: gr.restart_time,
                families: self
                    .families
                    .iter()
                    .map(|f| GracefulRestartFamily {
                        family: *f,
                        forwarding_preserved: gr.restarting,
                    })
                    .collect(),
            }));
        }
        capabilities.push(Capability::FourOctetAs(self.local_as));
        Open {
            my_as: u16::try_from(self.local_as).unwrap_or(AS_TRANS),
            hold_time: self.hold_time,
            bgp_id: self.router_id,
            capabilities,
        }
    }
}

/// The terms of an established session, from both OPENs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The peer's BGP Identifier.
    pub remote_id: Ipv4Addr,
    /// Hold time in use (the smaller offer, RFC 4271 §4.2).
    pub hold_time: u16,
    /// Families both sides offered.
    pub families: Vec<Family>,
    /// Wire format context.
    pub context: SessionContext,
    /// The peer supports ROUTE-REFRESH.
    pub route_refresh: bool,
    /// The peer's graceful restart capability, if any.
    pub peer_graceful_restart: Option<GracefulRestart>,
    /// Both sides offered graceful restart.
    pub graceful_restart: bool,
}

/// One session (one TCP connection at a time) with one peer.
#[derive(Debug)]
pub struct Fsm {
    state: State,
    /// Which side opened the current connection.
    outgoing: bool,
    negotiated: Option<Negotiated>,
    connect_retry_at: Option<Instant>,
    hold_at: Option<Instant>,
    keepalive_at: Option<Instant>,
    /// Current back-off interval.
    retry_interval: Duration,
}

/// Hold timer while waiting for the peer's OPEN (RFC 4271 §8.2.2: "a large
/// value", 4 minutes suggested).
const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);

impl Fsm {
    /// A session in Idle.
    pub fn new(cfg: &SessionConfig) -> Fsm {
        Fsm {
            state: State::Idle,
            outgoing: false,
            negotiated: None,
            connect_retry_at: None,
            hold_at: None,
            keepalive_at: None,
            retry_interval: cfg.connect_retry,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// True when the current connection is the one we opened.
    pub fn is_outgoing(&self) -> bool {
        self.outgoing
    }

    /// The negotiated terms once OPENs are exchanged.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// The earliest timer deadline, for the caller's sleep.
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.connect_retry_at, self.hold_at, self.keepalive_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// The event of a timer that has expired at `now`, if any (clearing it).
    pub fn due_timer(&mut self, now: Instant) -> Option<Event> {
        if self.hold_at.is_some_and(|t| t <= now) {
            self.hold_at = None;
            return Some(Event::HoldTimerExpires);
        }
        if self.keepalive_at.is_some_and(|t| t <= now) {
            self.keepalive_at = None;
            return Some(Event::KeepaliveTimerExpires);
        }
        if self.connect_retry_at.is_some_and(|t| t <= now) {
            self.connect_retry_at = None;
            return Some(if self.state == State::Idle {
                Event::ManualStart
            } else {
                Event::ConnectRetryTimerExpires
            });
        }
        None
    }

    /// Tells the session a message went out, which restarts the keepalive
    /// timer (RFC 4271 §4.4: KEEPALIVEs only fill silence).
    pub fn message_sent(&mut self, now: Instant) {
        if let (Some(n), Some(_)) = (&self.negotiated, self.keepalive_at) {
            self.keepalive_at = Some(now + keepalive_interval(n.hold_time));
        }
    }

    /// Feeds one event; actions go to `out`.
    // check-size: one protocol match
    pub fn handle(
        &mut self,
        event: Event,
        now: Instant,
        cfg: &SessionConfig,
        out: &mut Vec<Action>,
    ) {
        use Event as E;
        use State as S;
        match (self.state, event) {
            (S::Idle, E::ManualStart) => {
                if cfg.passive {
                    self.state = S::Active;
                } else {
                    self.state = S::Connect;
                    out.push(Action::Connect);
                    self.connect_retry_at = Some(now + self.retry_interval);
                }
            }
            (S::Idle, _) => {}
            (_, E::ManualStop) => {
                let established = self.state == S::Established;
                if matches!(self.state, S::OpenSent | S::OpenConfirm | S::Established) {
                    out.push(notification(
                        ErrorCode::Cease,
                        cease::ADMINISTRATIVE_SHUTDOWN,
                    ));
                }
                out.push(Action::Disconnect);
                if established {
                    out.push(Action::Down(DownReason::Stopped));
                }
                self.enter_idle(None);
            }
            (S::Connect | S::Active, E::ConnectRetryTimerExpires) => {
                // Abandon the attempt in progress and try again, backing off.
                self.retry_interval = (self.retry_interval * 2).min(cfg.connect_retry_max);
                self.connect_retry_at = Some(now + self.retry_interval);
                if !cfg.passive {
                    self.state = S::Connect;
                    out.push(Action::Disconnect);
                    out.push(Action::Connect);
                }
            }
            (S::Connect | S::Active, E::TcpConnectionUp { outgoing }) => {
                self.outgoing = outgoing;
                self.connect_retry_at = None;
                out.push(Action::Send(Message::Open(cfg.open())));
                self.hold_at = Some(now + OPEN_HOLD_TIME);
                self.state = S::OpenSent;
            }
            (S::Connect | S::Active, E::TcpConnectionFails) => {
                // Wait for the retry timer in Active (§8.2.2, Connect state).
                self.state = S::Active;
                if self.connect_retry_at.is_none() {
                    self.connect_retry_at = Some(now + self.retry_interval);
                }
            }
            (S::Connect | S::Active, _) => {}
            (S::OpenSent, E::BgpOpen(open)) => match negotiate(cfg, &open) {
                Ok(n) => {
                    out.push(Action::Send(Message::Keepalive));
                    self.start_session_timers(&n, now);
                    self.negotiated = Some(n);
                    self.state = S::OpenConfirm;
                }
                Err(e) => self.fail_with(&e, now, out),
            },
            (S::OpenConfirm, E::KeepAliveMsg) => {
                self.restart_hold(now);
                self.retry_interval = cfg.connect_retry;
                self.state = S::Established;
                if let Some(n) = &self.negotiated {
                    out.push(Action::Established(n.clone()));
                }
            }
            (S::Established, E::KeepAliveMsg) => self.restart_hold(now),
            (S::Established, E::UpdateMsg(update)) => {
                self.restart_hold(now);
                out.push(Action::Update(update));
            }
            (S::Established, E::RouteRefreshMsg(rr)) => {
                self.restart_hold(now);
                // RFC 7313 begin/end markers (subtypes 1, 2) need no answer.
                if rr.subtype == 0 {
                    out.push(Action::RouteRefresh(rr.family));
                }
            }
            (S::OpenConfirm | S::Established, E::KeepaliveTimerExpires) => {
                out.push(Action::Send(Message::Keepalive));
                if let Some(n) = &self.negotiated {
                    self.keepalive_at = Some(now + keepalive_interval(n.hold_time));
                }
            }
            (S::OpenSent | S::OpenConfirm | S::Established, E::HoldTimerExpires) => {
                out.push(notification(ErrorCode::HoldTimerExpired, 0));
                out.push(Action::Disconnect);
                self.leave(DownReason::HoldTimerExpired, now, out);
            }
            (S::OpenSent | S::OpenConfirm | S::Established, E::TcpConnectionFails) => {
                self.leave(DownReason::ConnectionLost, now, out);
            }
            (S::OpenSent | S::OpenConfirm | S::Established, E::NotifMsg(n)) => {
                out.push(Action::Disconnect);
                self.leave(
                    DownReason::ReceivedNotification(n.code, n.subcode),
                    now,
                    out,
                );
            }
            (S::OpenSent | S::OpenConfirm | S::Established, E::MessageError(e)) => {
                self.fail_with(&e, now, out)
            }
            (S::OpenSent | S::OpenConfirm | S::Established, E::OpenCollisionDump) => {
                out.push(notification(ErrorCode::Cease, cease::CONNECTION_COLLISION));
                out.push(Action::Disconnect);
                self.leave(
                    DownReason::SentNotification(
                        ErrorCode::Cease as u8,
                        cease::CONNECTION_COLLISION,
                    ),
                    now,
                    out,
                );
            }
            // Anything else is a message this state does not expect (§6.6):
            // subcode 1, 2 or 3 names the state it arrived in (RFC 6608).
            (S::OpenSent | S::OpenConfirm | S::Established, _) => {
                let subcode = match self.state {
                    S::OpenSent => 1,
                    S::OpenConfirm => 2,
                    _ => 3,
                };
                out.push(notification(ErrorCode::FiniteStateMachine, subcode));
                out.push(Action::Disconnect);
                self.leave(
                    DownReason::SentNotification(ErrorCode::FiniteStateMachine as u8, subcode),
                    now,
                    out,
                );
            }
        }
    }

    /// Sends the NOTIFICATION for a decode error and drops the session.
    fn fail_with(&mut self, e: &DecodeError, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::Send(Message::Notification(Notification::from(e))));
        out.push(Action::Disconnect);
        self.leave(
            DownReason::SentNotification(e.code() as u8, e.subcode()),
            now,
            out,
        );
    }

    /// Leaves OpenSent/OpenConfirm/Established for Idle, reporting Down if
    /// the session was up, and schedules the automatic restart.
    fn leave(&mut self, reason: DownReason, now: Instant, out: &mut Vec<Action>) {
        if self.state == State::Established {
            out.push(Action::Down(reason));
        }
        self.enter_idle(Some(now + self.retry_interval));
    }

    fn enter_idle(&mut self, restart_at: Option<Instant>) {
        self.state = State::Idle;
        self.negotiated = None;
        self.hold_at = None;
        self.keepalive_at = None;
        self.connect_retry_at = restart_at;
    }

    fn start_session_timers(&mut self, n: &Negotiated, now: Instant) {
        if n.hold_time == 0 {
            self.hold_at = None;
            self.keepalive_at = None;
        } else {
            self.hold_at = Some(now + Duration::from_secs(u64::from(n.hold_time)));
            self.keepalive_at = Some(now + keepalive_interval(n.hold_time));
        }
    }

    fn restart_hold(&mut self, now: Instant) {
        if let Some(n) = &self.negotiated {
            if n.hold_time != 0 {
                self.hold_at = Some(now + Duration::from_secs(u64::from(n.hold_time)));
            }
        }
    }
}

/// One third of the hold time (RFC 4271 §10 suggests it).
fn keepalive_interval(hold_time: u16) -> Duration {
    Duration::from_millis(u64::from(hold_time) * 1000 / 3)
}

fn notification(code: ErrorCode, subcode: u8) -> Action {
    Action::Send(Message::Notification(Notification {
        code: code as u8,
        subcode,
        data: Vec::new(),
    }))
}

/// Checks the peer's OPEN against ours (RFC 4271 §6.2) and agrees terms.
pub fn negotiate(cfg: &SessionConfig, open: &Open) -> Result<Negotiated, DecodeError> {
    let remote_as = open.asn();
    if remote_as != cfg.remote_as {
        return Err(DecodeError::BadPeerAs(remote_as));
    }
    // RFC 6286 §2.2: the identifier must be non-zero and, within an AS, unique.
    if open.bgp_id.is_unspecified() || open.bgp_id == cfg.router_id {
        return Err(DecodeError::BadBgpIdentifier(open.bgp_id));
    }
    if matches!(open.hold_time, 1 | 2) {
        return Err(DecodeError::UnacceptableHoldTime(open.hold_time));
    }
    let offered: Vec<Family> = open
        .capabilities
        .iter()
        .filter_map(|c| match c {
            Capability::Multiprotocol(f) => Some(*f),
            _ => None,
        })
        .collect();
    let families: Vec<Family> = cfg
        .families
        .iter()
        .copied()
        .filter(|f| offered.contains(f))
        .collect();
    if families.is_empty() {
        // RFC 5492 §3: name the capabilities we needed.
        let mut data = Vec::new();
        for f in &cfg.families {
            Capability::Multiprotocol(*f).emit(&mut data);
        }
        return Err(DecodeError::UnsupportedCapability(data));
    }
    let peer_graceful_restart = open.capabilities.iter().find_map(|c| match c {
        Capability::GracefulRestart(gr) => Some(gr.clone()),
        _ => None,
    });
    Ok(Negotiated {
        remote_id: open.bgp_id,
        hold_time: cfg.hold_time.min(open.hold_time),
        families,
        context: SessionContext {
            four_octet_as: open
                .capabilities
                .iter()
                .any(|c| matches!(c, Capability::FourOctetAs(_))),
            external: cfg.remote_as != cfg.local_as,
        },
        route_refresh: open.capabilities.contains(&Capability::RouteRefresh),
        graceful_restart: cfg.graceful_restart.is_some() && peer_graceful_restart.is_some(),
        peer_graceful_restart,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(id: u8) -> SessionConfig {
        SessionConfig {
            local_as: 65000,
            router_id: Ipv4Addr::new(10, 0, 0, id),
            remote_as: 65000,
            hold_time: 90,
            families: vec![Family::VPNV4, Family::VPNV6],
            graceful_restart: Some(GracefulRestartConfig {
                restart_time: 120,
                restarting: false,
            }),
            next_hop_afi: crate::bgp::packet::iana::afi::IPV4,
            passive: false,
            connect_retry: Duration::from_secs(1),
            connect_retry_max: Duration::from_secs(8),
        }
    }

    /// Drives two machines against each other in memory until quiet.
    fn establish(a: &mut Fsm, ca: &SessionConfig, b: &mut Fsm, cb: &SessionConfig, now: Instant) {
        let mut out_a = Vec::new();
        let mut out_b = Vec::new();
        a.handle(Event::ManualStart, now, ca, &mut out_a);
        b.handle(Event::ManualStart, now, cb, &mut out_b);
        out_a.clear();
        out_b.clear();
        a.handle(
            Event::TcpConnectionUp { outgoing: true },
            now,
            ca,
            &mut out_a,
        );
        b.handle(
            Event::TcpConnectionUp { outgoing: false },
            now,
            cb,
            &mut out_b,
        );
        for _ in 0..4 {
            let (to_b, to_a) = (std::mem::take(&mut out_a), std::mem::take(&mut out_b));
            for act in to_b {
                if let Action::Send(m) = act {
                    b.handle(as_event(m), now, cb, &mut out_b);
                }
            }
            for act in to_a {
                if let Action::Send(m) = act {
                    a.handle(as_event(m), now, ca, &mut out_a);
                }
            }
        }
    }

    /// A machine that started and connected out: its OPEN is sent (and
    /// dropped), the peer's is awaited.
    fn open_sent(config: &SessionConfig, now: Instant) -> Fsm {
        let mut fsm = Fsm::new(config);
        let mut out = Vec::new();
        fsm.handle(Event::ManualStart, now, config, &mut out);
        fsm.handle(
            Event::TcpConnectionUp { outgoing: true },
            now,
            config,
            &mut out,
        );
        assert_eq!(fsm.state(), State::OpenSent);
        fsm
    }

    fn as_event(m: Message) -> Event {
        match m {
            Message::Open(o) => Event::BgpOpen(o),
            Message::Keepalive => Event::KeepAliveMsg,
            Message::Update(u) => Event::UpdateMsg(u),
            Message::Notification(n) => Event::NotifMsg(n),
            Message::RouteRefresh(r) => Event::RouteRefreshMsg(r),
        }
    }

    #[test]
    fn two_machines_establish_in_memory() {
        let (ca, cb) = (cfg(1), cfg(2));
        let (mut a, mut b) = (Fsm::new(&ca), Fsm::new(&cb));
        establish(&mut a, &ca, &mut b, &cb, Instant::now());
        assert_eq!(a.state(), State::Established);
        assert_eq!(b.state(), State::Established);
        assert!(a.negotiated().unwrap().graceful_restart);
    }

    #[test]
    fn holdtime_uses_the_smaller_offer() {
        let (ca, mut cb) = (cfg(1), cfg(2));
        cb.hold_time = 9;
        let (mut a, mut b) = (Fsm::new(&ca), Fsm::new(&cb));
        let now = Instant::now();
        establish(&mut a, &ca, &mut b, &cb, now);
        assert_eq!(a.negotiated().unwrap().hold_time, 9);
        // The keepalive is due after a third of it, the hold timer after all of it.
        assert_eq!(a.next_deadline(), Some(now + Duration::from_secs(3)));
        let mut out = Vec::new();
        assert_eq!(
            a.due_timer(now + Duration::from_secs(3)),
            Some(Event::KeepaliveTimerExpires)
        );
        assert_eq!(
            a.due_timer(now + Duration::from_secs(9)),
            Some(Event::HoldTimerExpires)
        );
        a.handle(Event::HoldTimerExpires, now, &ca, &mut out);
        assert!(out.contains(&Action::Down(DownReason::HoldTimerExpired)));
        assert!(out.contains(&notification(ErrorCode::HoldTimerExpired, 0)));
        assert_eq!(a.state(), State::Idle);
    }

    #[test]
    fn wrong_peer_as_gets_bad_peer_as() {
        let (ca, mut cb) = (cfg(1), cfg(2));
        cb.local_as = 65001;
        let now = Instant::now();
        let mut a = open_sent(&ca, now);
        let mut out = Vec::new();
        a.handle(Event::BgpOpen(cb.open()), now, &ca, &mut out);
        let sent = Notification::from(&DecodeError::BadPeerAs(65001));
        assert_eq!((sent.code, sent.subcode), (2, 2));
        assert_eq!(out[0], Action::Send(Message::Notification(sent)));
        assert_eq!(a.state(), State::Idle);
    }

    #[test]
    fn peer_without_vpn_families_gets_unsupported_capability() {
        let (ca, mut cb) = (cfg(1), cfg(2));
        cb.families = vec![Family::IPV4_UNICAST];
        let e = negotiate(&ca, &cb.open()).unwrap_err();
        assert_eq!((e.code() as u8, e.subcode()), (2, 7));
    }

    #[test]
    fn update_in_open_sent_is_a_state_machine_error() {
        let ca = cfg(1);
        let now = Instant::now();
        let mut a = open_sent(&ca, now);
        let mut out = Vec::new();
        a.handle(Event::UpdateMsg(Box::default()), now, &ca, &mut out);
        assert_eq!(out[0], notification(ErrorCode::FiniteStateMachine, 1));
    }

    #[test]
    fn connect_retry_backs_off_to_the_maximum() {
        let ca = cfg(1);
        let mut a = Fsm::new(&ca);
        let mut now = Instant::now();
        let mut out = Vec::new();
        a.handle(Event::ManualStart, now, &ca, &mut out);
        let mut gaps = Vec::new();
        for _ in 0..5 {
            let next = a.next_deadline().unwrap();
            gaps.push(next - now);
            now = next;
            let ev = a.due_timer(now).unwrap();
            a.handle(ev, now, &ca, &mut out);
        }
        let secs: Vec<u64> = gaps.iter().map(|d| d.as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 8]);
    }

    #[test]
    fn connection_loss_keeps_routes_but_notification_does_not() {
        assert!(DownReason::ConnectionLost.keeps_routes());
        assert!(!DownReason::ReceivedNotification(6, 2).keeps_routes());
    }
}
