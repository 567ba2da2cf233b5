//! Per-neighbor sessions: connections and their framing, the FSM events,
//! collision detection (RFC 4271 §6.8), and what a session coming up or
//! going down does to the RIB (RFC 4724 §4.2 for a restarting neighbor).

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::{ConnId, NeighborConfig, NeighborId, Output, Speaker, source_of};
use crate::bgp::fsm::{Action, DownReason, Event, Fsm, Negotiated, SessionConfig, State};
use crate::bgp::gr::families_kept_stale;
use crate::bgp::packet::message::frame_len;
use crate::bgp::packet::{Family, Message, SessionContext, VpnPrefix};

/// One configured neighbor: its session, the racing connection of a
/// collision, its Adj-RIB-Out and its graceful-restart bookkeeping.
pub(super) struct Neighbor {
    pub(super) config: NeighborConfig,
    pub(super) session: SessionConfig,
    pub(super) fsm: Fsm,
    pub(super) conn: Option<ConnId>,
    /// A second connection racing the first (RFC 4271 §6.8).
    pub(super) rival: Option<(Fsm, ConnId)>,
    /// Terms of the established session.
    pub(super) up: Option<Negotiated>,
    /// Adj-RIB-Out: prefixes to (re)consider sending.
    pub(super) pending: HashSet<VpnPrefix>,
    /// Prefixes this peer has from us (so withdrawals go only where needed).
    pub(super) sent: HashSet<VpnPrefix>,
    /// When pending changes go out: as soon as the MRAI since the last
    /// burst allows (RFC 4271 §9.2.1.1).
    pub(super) next_flush: Option<Instant>,
    /// When the last UPDATE burst went out.
    pub(super) last_flush: Option<Instant>,
    /// Families that still owe End-of-RIB after the initial dump.
    pub(super) eor_due: Vec<Family>,
    /// Stale routes wait for End-of-RIB or this deadline (RFC 4724 §4.2).
    pub(super) stale_until: Option<Instant>,
    /// Families whose stale routes await End-of-RIB.
    pub(super) stale_families: Vec<Family>,
    /// Families the peer sent End-of-RIB for in this session.
    pub(super) eor_received: Vec<Family>,
    /// Its BGP Identifier, once a session came up.
    pub(super) router_id: Option<Ipv4Addr>,
}

/// Framing state of one connection.
pub(super) struct Connection {
    pub(super) peer: NeighborId,
    /// Bytes of an incomplete message.
    pub(super) partial: Vec<u8>,
}

impl Speaker {
    /// The driver's connection to `peer` is up (`outgoing`: we opened it).
    pub fn connected(&mut self, peer: NeighborId, conn: ConnId, outgoing: bool, now: Instant) {
        let i = usize::from(peer.0);
        if i >= self.peers.len() {
            self.outputs.push_back(Output::Close { conn });
            return;
        }
        self.conns.insert(
            conn,
            Connection {
                peer,
                partial: Vec::new(),
            },
        );
        let state = self.peers[i].fsm.state();
        let has_rival = self.peers[i].rival.is_some();
        let gr_up = self.peers[i]
            .up
            .as_ref()
            .is_some_and(|n| n.graceful_restart);
        match state {
            State::Idle | State::Connect | State::Active => {
                if let Some(old) = self.peers[i].conn.replace(conn) {
                    if old != conn {
                        self.drop_conn(old);
                    }
                }
                let p = &mut self.peers[i];
                if state == State::Idle {
                    // Accept even while backing off: the peer is ready now.
                    let mut passive = p.session.clone();
                    passive.passive = true;
                    p.fsm
                        .handle(Event::ManualStart, now, &passive, &mut Vec::new());
                }
                self.fsm_event(peer, Some(conn), Event::TcpConnectionUp { outgoing }, now);
            }
            State::OpenSent | State::OpenConfirm if !has_rival => {
                let p = &mut self.peers[i];
                let mut fsm = Fsm::new(&p.session);
                let mut passive = p.session.clone();
                passive.passive = true;
                fsm.handle(Event::ManualStart, now, &passive, &mut Vec::new());
                p.rival = Some((fsm, conn));
                self.fsm_event(peer, Some(conn), Event::TcpConnectionUp { outgoing }, now);
            }
            State::Established if !outgoing && gr_up => {
                // RFC 4724 §4.2: a new connection from a restarting peer ends
                // the old session as if its TCP connection had failed.
                let old = self.peers[i].conn;
                self.fsm_event(peer, old, Event::TcpConnectionFails, now);
                if let Some(old) = old {
                    self.drop_conn(old);
                }
                self.connected(peer, conn, outgoing, now);
            }
            _ => self.drop_conn(conn),
        }
    }

    /// The driver could not connect to `peer`.
    pub fn connect_failed(&mut self, peer: NeighborId, now: Instant) {
        if let Some(p) = self.peers.get(usize::from(peer.0)) {
            if p.conn.is_none() {
                self.fsm_event(peer, None, Event::TcpConnectionFails, now);
            }
        }
    }

    /// The connection closed or failed.
    pub fn closed(&mut self, conn: ConnId, now: Instant) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        self.fsm_event(c.peer, Some(conn), Event::TcpConnectionFails, now);
    }

    /// Bytes arrived on a connection: any number of whole or partial messages.
    pub fn received(&mut self, conn: ConnId, bytes: &[u8], now: Instant) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let peer = c.peer;
        let mut buf = std::mem::take(&mut c.partial);
        let data: &[u8] = if buf.is_empty() {
            bytes
        } else {
            buf.extend_from_slice(bytes);
            &buf
        };
        let mut at = 0;
        let mut failed = false;
        while at < data.len() {
            let rest = &data[at..];
            match frame_len(rest) {
                Ok(Some(len)) if len <= rest.len() => {
                    let ctx = self.context_of(peer, conn);
                    let event = match Message::decode(&rest[..len], &ctx) {
                        Ok(m) => {
                            if let Message::Update(u) = &m {
                                self.report_malformed(peer, u, &rest[..len]);
                            }
                            message_event(m)
                        }
                        Err(e) => {
                            failed = true;
                            Event::MessageError(e)
                        }
                    };
                    at += len;
                    self.fsm_event(peer, Some(conn), event, now);
                }
                Ok(_) => break,
                Err(e) => {
                    failed = true;
                    self.fsm_event(peer, Some(conn), Event::MessageError(e), now);
                }
            }
            if failed || !self.conns.contains_key(&conn) {
                return;
            }
        }
        let tail = data[at..].to_vec();
        if let Some(c) = self.conns.get_mut(&conn) {
            c.partial = tail;
        }
        self.flush_due(now);
    }

    pub(super) fn context_of(&self, peer: NeighborId, conn: ConnId) -> SessionContext {
        let p = &self.peers[usize::from(peer.0)];
        let fsm = match &p.rival {
            Some((f, c)) if *c == conn => f,
            _ => &p.fsm,
        };
        fsm.negotiated().map(|n| n.context).unwrap_or_default()
    }

    pub(super) fn drop_conn(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
        self.outputs.push_back(Output::Close { conn });
    }

    /// Feeds an event to the session owning `conn` (the main one when None)
    /// and carries out its actions.
    pub(super) fn fsm_event(
        &mut self,
        peer: NeighborId,
        conn: Option<ConnId>,
        event: Event,
        now: Instant,
    ) {
        let i = usize::from(peer.0);
        let mut actions = Vec::new();
        let is_rival = conn.is_some()
            && self.peers[i]
                .rival
                .as_ref()
                .is_some_and(|r| Some(r.1) == conn);
        let before = self.peers[i].fsm.state();
        {
            let p = &mut self.peers[i];
            if is_rival {
                if let Some((fsm, _)) = p.rival.as_mut() {
                    fsm.handle(event, now, &p.session, &mut actions);
                }
            } else {
                if conn.is_some() && conn != p.conn {
                    // An event for a connection this peer no longer uses.
                    return;
                }
                p.fsm.handle(event, now, &p.session, &mut actions);
            }
        }
        let target = if is_rival { conn } else { self.peers[i].conn };
        for action in actions {
            self.carry_out(peer, target, action, now);
        }
        if is_rival
            && self.peers[i]
                .rival
                .as_ref()
                .is_some_and(|r| r.0.state() == State::Idle)
        {
            self.peers[i].rival = None;
        }
        if !is_rival {
            let p = &mut self.peers[i];
            if p.fsm.state() == State::Idle {
                if let Some(c) = p.conn.take() {
                    self.conns.remove(&c);
                }
                // A surviving rival takes over the peer.
                if let Some((fsm, c)) = self.peers[i].rival.take() {
                    self.peers[i].fsm = fsm;
                    self.peers[i].conn = Some(c);
                }
            }
        }
        self.resolve_collision(peer, now);
        let after = self.peers[i].fsm.state();
        if after != before {
            self.outputs
                .push_back(Output::SessionState { peer, state: after });
        }
    }

    /// RFC 4271 §6.8: when two connections to one peer both know the peer's
    /// BGP Identifier, keep the one opened by the side with the higher id.
    pub(super) fn resolve_collision(&mut self, peer: NeighborId, now: Instant) {
        let i = usize::from(peer.0);
        let p = &self.peers[i];
        let Some((rival, rival_conn)) = &p.rival else {
            return;
        };
        let remote_id = p
            .fsm
            .negotiated()
            .or(rival.negotiated())
            .map(|n| n.remote_id);
        let Some(remote_id) = remote_id else { return };
        if p.fsm.state() == State::Established {
            let c = *rival_conn;
            self.fsm_event(peer, Some(c), Event::OpenCollisionDump, now);
            return;
        }
        // Keep the connection the higher identifier opened.
        let keep_outgoing = self.config.router_id > remote_id;
        let (main_conn, rival_conn) = (p.conn, *rival_conn);
        if p.fsm.is_outgoing() == keep_outgoing {
            self.fsm_event(peer, Some(rival_conn), Event::OpenCollisionDump, now);
        } else {
            self.fsm_event(peer, main_conn, Event::OpenCollisionDump, now);
        }
    }

    pub(super) fn carry_out(
        &mut self,
        peer: NeighborId,
        conn: Option<ConnId>,
        action: Action,
        now: Instant,
    ) {
        let i = usize::from(peer.0);
        match action {
            Action::Send(m) => {
                if let Some(conn) = conn {
                    let ctx = self.context_of(peer, conn);
                    let mut bytes = Vec::new();
                    m.encode(&ctx, &mut bytes);
                    self.send(peer, conn, bytes, now);
                }
            }
            Action::Connect => {
                let address = self.peers[i].config.address;
                self.outputs.push_back(Output::Connect { peer, address });
            }
            Action::Disconnect => {
                if let Some(conn) = conn {
                    self.drop_conn(conn);
                }
            }
            Action::Established(n) => self.session_up(peer, n, now),
            Action::Down(reason) => self.session_down(peer, reason, now),
            Action::Update(u) => self.apply_update(peer, u, now),
            Action::RouteRefresh(family) => {
                let p = &mut self.peers[i];
                if p.up.as_ref().is_some_and(|n| n.families.contains(&family)) {
                    for (prefix, _) in self.rib.iter_best() {
                        if prefix.family() == family {
                            p.pending.insert(*prefix);
                            // Forget it was sent so it is sent again.
                            p.sent.remove(prefix);
                        }
                    }
                    p.next_flush.get_or_insert(now);
                }
            }
        }
    }

    pub(super) fn send(&mut self, peer: NeighborId, conn: ConnId, bytes: Vec<u8>, now: Instant) {
        let p = &mut self.peers[usize::from(peer.0)];
        if p.conn == Some(conn) {
            p.fsm.message_sent(now);
        }
        self.outputs.push_back(Output::Send { conn, bytes });
    }

    pub(super) fn session_up(&mut self, peer: NeighborId, n: Negotiated, now: Instant) {
        let i = usize::from(peer.0);
        let source = source_of(peer);
        let p = &mut self.peers[i];
        p.router_id = Some(n.remote_id);
        // Stale routes of families the peer no longer preserves go now
        // (RFC 4724 §4.2); the others wait for its End-of-RIB.
        if p.stale_until.is_some() {
            let (keep, drop) = families_kept_stale(&n, &p.stale_families);
            p.stale_families = keep;
            p.stale_until =
                (!p.stale_families.is_empty()).then(|| now + self.config.stale_routes_time);
            for f in drop {
                let changes = self.rib.remove_stale(source, Some(f), &self.source_info());
                for c in changes {
                    self.best_changed(c, now);
                }
            }
        }
        let p = &mut self.peers[i];
        p.eor_due = n.families.clone();
        p.eor_received.clear();
        p.sent.clear();
        p.pending.clear();
        let families = n.families.clone();
        p.up = Some(n);
        // Initial dump: everything we would send this peer.
        let prefixes: Vec<VpnPrefix> = self
            .rib
            .iter_best()
            .filter(|(pfx, _)| families.contains(&pfx.family()))
            .map(|(pfx, _)| *pfx)
            .collect();
        let p = &mut self.peers[i];
        p.pending.extend(prefixes);
        p.next_flush = Some(now);
        // The Restart State bit is for the first session after our restart
        // (RFC 4724 §4.1); later OPENs to this peer go without it.
        if let Some(gr) = p.session.graceful_restart.as_mut() {
            gr.restarting = false;
        }
        // A peer without graceful restart sends no End-of-RIB to wait for.
        self.check_deferral(now);
    }

    pub(super) fn session_down(&mut self, peer: NeighborId, reason: DownReason, now: Instant) {
        let i = usize::from(peer.0);
        let source = source_of(peer);
        let p = &mut self.peers[i];
        let up = p.up.take();
        p.pending.clear();
        p.sent.clear();
        p.next_flush = None;
        p.last_flush = None;
        p.eor_due.clear();
        let helper = up
            .as_ref()
            .and_then(|n| n.graceful_restart.then_some(n))
            .and_then(|n| {
                n.peer_graceful_restart
                    .as_ref()
                    .map(|gr| (gr.restart_time, n.families.clone()))
            });
        match helper {
            Some((restart_time, families)) if reason.keeps_routes() => {
                // RFC 4724 §4.2: keep the routes, marked stale, for the
                // peer's restart time.
                self.rib.mark_stale(source);
                p.stale_families = families;
                p.stale_until = Some(now + Duration::from_secs(u64::from(restart_time)));
            }
            _ => {
                p.stale_until = None;
                p.stale_families.clear();
                let changes = self.rib.remove_source(source, &self.source_info());
                for c in changes {
                    self.best_changed(c, now);
                }
            }
        }
    }
}

fn message_event(m: Message) -> Event {
    match m {
        Message::Open(o) => Event::BgpOpen(o),
        Message::Update(u) => Event::UpdateMsg(u),
        Message::Notification(n) => Event::NotifMsg(n),
        Message::Keepalive => Event::KeepAliveMsg,
        Message::RouteRefresh(r) => Event::RouteRefreshMsg(r),
    }
}
