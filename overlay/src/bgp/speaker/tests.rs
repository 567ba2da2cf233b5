//! Speakers wired to each other in memory: no sockets, no sleeps; time
//! moves only when a test advances it.

use super::*;
use crate::bgp::packet::RouteTarget;
use crate::bgp::packet::{Update, VpnNlri};
use crate::bgp::policy::VrfConfig;

struct Lab {
    speakers: Vec<Speaker>,
    /// (speaker, conn) -> (other speaker, its conn).
    links: HashMap<(usize, ConnId), (usize, ConnId)>,
    next_conn: u64,
    now: Instant,
    events: Vec<Vec<RouteEvent>>,
    /// Connections each side has seen established messages on.
    sent_bytes: Vec<usize>,
    /// End-of-RIB markers each speaker received: (from peer, family).
    eors: Vec<Vec<(NeighborId, Family)>>,
    /// Speakers no connection can reach (a host still down).
    cut: HashSet<usize>,
}

fn addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8 + 1))
}

fn config(i: usize) -> SpeakerConfig {
    SpeakerConfig {
        local_as: 65000,
        router_id: Ipv4Addr::new(10, 0, 0, i as u8 + 1),
        next_hop: addr(i),
        hold_time: 9,
        connect_retry: Duration::from_secs(1),
        connect_retry_max: Duration::from_secs(4),
        mrai: Duration::ZERO,
        graceful_restart: Some(GracefulRestartConfig {
            restart_time: 60,
            restarting: false,
        }),
        stale_routes_time: Duration::from_secs(30),
        selection_deferral_time: Duration::from_secs(20),
        cluster_id: None,
        families: vec![Family::VPNV4, Family::VPNV6],
    }
}

fn tenant_vrf(i: usize) -> VrfConfig {
    let rt: RouteTarget = "65000:100".parse().unwrap();
    VrfConfig {
        tenant: TenantId(1),
        rd: super::super::packet::RouteDistinguisher::from_ipv4(
            Ipv4Addr::new(10, 0, 0, i as u8 + 1),
            1,
        ),
        import: vec![rt],
        export: vec![rt],
    }
}

impl Lab {
    /// Two speakers in one session: 0 connects, 1 waits (passive).
    fn pair() -> Lab {
        Lab::new(
            vec![config(0), config(1)],
            &[&[(1, false, false)], &[(0, false, true)]],
        )
    }

    /// Speakers with the given configs; `peers[i]` lists (j, rr_client, passive).
    fn new(configs: Vec<SpeakerConfig>, peers: &[&[(usize, bool, bool)]]) -> Lab {
        let now = Instant::now();
        let mut speakers: Vec<Speaker> = configs.into_iter().map(Speaker::new).collect();
        for (i, s) in speakers.iter_mut().enumerate() {
            s.set_vrf(tenant_vrf(i));
            for &(j, rr_client, passive) in peers[i] {
                s.add_peer(
                    NeighborConfig {
                        address: addr(j),
                        rr_client,
                        passive,
                        remote_as: None,
                    },
                    now,
                )
                .unwrap();
            }
        }
        let n = speakers.len();
        let mut lab = Lab {
            speakers,
            links: HashMap::new(),
            next_conn: 1,
            now,
            events: vec![Vec::new(); n],
            sent_bytes: vec![0; n],
            eors: vec![Vec::new(); n],
            cut: HashSet::new(),
        };
        lab.run();
        lab
    }

    fn run(&mut self) {
        loop {
            let mut progress = false;
            for i in 0..self.speakers.len() {
                while let Some(o) = self.speakers[i].poll_output() {
                    progress = true;
                    self.deliver(i, o);
                }
            }
            if !progress {
                return;
            }
        }
    }

    fn deliver(&mut self, i: usize, o: Output) {
        let now = self.now;
        match o {
            Output::Connect { peer, address } => {
                let Some(j) = (0..self.speakers.len()).find(|j| addr(*j) == address) else {
                    return;
                };
                let back = self.speakers[j].peer_by_address(addr(i));
                let Some(back) = back.filter(|_| !self.cut.contains(&i) && !self.cut.contains(&j))
                else {
                    self.speakers[i].connect_failed(peer, now);
                    return;
                };
                let (ci, cj) = (ConnId(self.next_conn), ConnId(self.next_conn + 1));
                self.next_conn += 2;
                self.links.insert((i, ci), (j, cj));
                self.links.insert((j, cj), (i, ci));
                self.speakers[j].connected(back, cj, false, now);
                self.speakers[i].connected(peer, ci, true, now);
            }
            Output::Send { conn, bytes } => {
                self.sent_bytes[i] += bytes.len();
                if let Some(&(j, cj)) = self.links.get(&(i, conn)) {
                    self.speakers[j].received(cj, &bytes, now);
                }
            }
            Output::Close { conn } => {
                if let Some((j, cj)) = self.links.remove(&(i, conn)) {
                    self.links.remove(&(j, cj));
                    self.speakers[j].closed(cj, now);
                }
            }
            Output::Route(e) => self.events[i].push(e),
            Output::EndOfRib { peer, family } => self.eors[i].push((peer, family)),
            Output::SessionState { .. } | Output::MalformedUpdate { .. } => {}
        }
    }

    /// Advances time a second at a time so keepalives keep sessions up.
    fn advance_secs(&mut self, secs: u64) {
        for _ in 0..secs {
            self.advance(Duration::from_secs(1));
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        for s in &mut self.speakers {
            s.poll_timers(self.now);
        }
        self.run();
    }

    fn established(&self, i: usize) -> bool {
        self.speakers[i]
            .peer_status()
            .iter()
            .all(|p| p.state == State::Established)
    }

    fn advertise(&mut self, i: usize, prefix: &str, label: u32) {
        let now = self.now;
        self.speakers[i]
            .advertise(
                TenantId(1),
                prefix.parse().unwrap(),
                Label::new(label).unwrap(),
                now,
            )
            .unwrap();
        self.run();
    }

    /// Cuts every connection of speaker `i` as a crash would (no NOTIFICATION).
    fn crash(&mut self, i: usize) {
        let conns: Vec<(usize, ConnId)> = self
            .links
            .keys()
            .filter(|(s, _)| *s == i)
            .copied()
            .collect();
        for (s, c) in conns {
            if let Some((j, cj)) = self.links.remove(&(s, c)) {
                self.links.remove(&(j, cj));
                self.speakers[j].closed(cj, self.now);
            }
        }
        self.run();
    }

    fn take_events(&mut self, i: usize) -> Vec<RouteEvent> {
        std::mem::take(&mut self.events[i])
    }

    /// The one event speaker `i` saw since the last look, which must be
    /// a withdrawal.
    fn take_withdrawal(&mut self, i: usize) -> RouteEvent {
        let mut events = self.take_events(i);
        assert_eq!(events.len(), 1, "{events:?}");
        let event = events.remove(0);
        assert_eq!(event.route, None, "a withdrawal");
        event
    }
}

#[test]
fn two_speakers_exchange_vpn_routes_in_memory() {
    let mut lab = Lab::pair();
    assert!(lab.established(0) && lab.established(1));
    lab.advertise(0, "10.1.0.0/24", 100);
    lab.advertise(0, "fd00:1::/64", 101);
    let events = lab.take_events(1);
    assert_eq!(events.len(), 2);
    let v4 = events
        .iter()
        .find(|e| e.prefix.family() == Family::VPNV4)
        .unwrap();
    assert_eq!(v4.prefix.to_string(), "10.0.0.1:1:10.1.0.0/24");
    let route = v4.route.as_ref().unwrap();
    assert_eq!((route.label.value(), route.next_hop), (100, addr(0)));
    // A VPNv6 route over IPv4 carries the IPv4 next hop through.
    let v6 = events
        .iter()
        .find(|e| e.prefix.family() == Family::VPNV6)
        .unwrap();
    assert_eq!(v6.route.as_ref().unwrap().next_hop, addr(0));

    lab.speakers[0]
        .withdraw(TenantId(1), "10.1.0.0/24".parse().unwrap(), lab.now)
        .unwrap();
    lab.run();
    lab.take_withdrawal(1);
}

#[test]
fn collision_keeps_one_session_on_both_sides() {
    // Both sides connect at once: RFC 4271 §6.8 keeps the connection
    // opened by the higher BGP Identifier (10.0.0.2).
    let mut lab = Lab::new(
        vec![config(0), config(1)],
        &[&[(1, false, false)], &[(0, false, false)]],
    );
    assert!(lab.established(0) && lab.established(1));
    assert_eq!(
        lab.links.len(),
        2,
        "one connection left, seen from both ends"
    );
    lab.advertise(1, "10.2.0.0/24", 200);
    assert_eq!(lab.take_events(0).len(), 1);
}

#[test]
fn reflector_sets_originator_id_and_cluster_list() {
    let mut rr = config(0);
    rr.cluster_id = Some(Ipv4Addr::new(10, 255, 0, 1));
    let clients: &[(usize, bool, bool)] = &[(1, true, true), (2, true, true)];
    let mut lab = Lab::new(
        vec![rr, config(1), config(2)],
        &[clients, &[(0, false, false)], &[(0, false, false)]],
    );
    assert!(lab.established(0));
    lab.advertise(1, "10.1.0.0/24", 100);
    let events = lab.take_events(2);
    assert_eq!(events.len(), 1);
    let attrs = &events[0].route.as_ref().unwrap().attributes;
    assert_eq!(attrs.originator_id, Some(Ipv4Addr::new(10, 0, 0, 2)));
    assert_eq!(attrs.cluster_list, vec![Ipv4Addr::new(10, 255, 0, 1)]);
    assert_eq!(
        events[0].route.as_ref().unwrap().next_hop,
        addr(1),
        "next hop unchanged"
    );
    // The originator does not get its own route back.
    assert!(lab.take_events(1).is_empty());
}

#[test]
fn routes_from_non_clients_reach_only_clients() {
    let mut rr = config(0);
    rr.cluster_id = Some(Ipv4Addr::new(10, 0, 0, 1));
    // 1 is a client; 2 and 3 are not.
    let at_rr: &[(usize, bool, bool)] = &[(1, true, true), (2, false, true), (3, false, true)];
    let to_rr: &[(usize, bool, bool)] = &[(0, false, false)];
    let mut lab = Lab::new(
        vec![rr, config(1), config(2), config(3)],
        &[at_rr, to_rr, to_rr, to_rr],
    );
    lab.advertise(2, "10.2.0.0/24", 200);
    assert_eq!(lab.take_events(1).len(), 1, "client gets it");
    assert!(
        lab.take_events(3).is_empty(),
        "non-client does not (RFC 4456 §6)"
    );
    lab.advertise(1, "10.1.0.0/24", 100);
    assert_eq!(
        lab.take_events(3).len(),
        1,
        "a client's route goes to non-clients"
    );
}

/// Speaker 0 (tenant 0's VRF) with an established session to speaker 1's
/// address, set up by hand so a test can hand it any UPDATE.
fn speaker_with_a_peer_up() -> (Speaker, NeighborId, Instant) {
    let mut s = Speaker::new(config(0));
    s.set_vrf(tenant_vrf(0));
    let now = Instant::now();
    let peer = s
        .add_peer(
            NeighborConfig {
                address: addr(1),
                rr_client: false,
                passive: true,
                remote_as: None,
            },
            now,
        )
        .unwrap();
    s.peers[0].up = Some(
        crate::bgp::fsm::negotiate(&s.peers[0].session.clone(), &{
            let mut c = s.peers[0].session.clone();
            c.router_id = Ipv4Addr::new(10, 0, 0, 2);
            c.open()
        })
        .unwrap(),
    );
    (s, peer, now)
}

/// A route of tenant 1's RD with `attributes`.
fn one_route(attributes: PathAttributes) -> Update {
    Update {
        announced: vec![VpnNlri {
            prefix: VpnPrefix::new(tenant_vrf(1).rd, "10.1.0.0/24".parse().unwrap()),
            label: Label::new(100).unwrap(),
        }],
        attributes,
        ..Default::default()
    }
}

#[test]
fn reflected_route_that_loops_back_is_ignored() {
    let (mut s, peer, now) = speaker_with_a_peer_up();
    let update = Update {
        announced: vec![VpnNlri {
            prefix: VpnPrefix::new(tenant_vrf(1).rd, "10.1.0.0/24".parse().unwrap()),
            label: Label::new(100).unwrap(),
        }],
        attributes: PathAttributes {
            next_hop: Some(addr(1)),
            originator_id: Some(Ipv4Addr::new(10, 0, 0, 1)),
            ext_communities: vec!["65000:100".parse::<RouteTarget>().unwrap().0],
            ..Default::default()
        },
        ..Default::default()
    };
    s.apply_update(peer, Box::new(update), now);
    assert!(
        s.rib().is_empty(),
        "ORIGINATOR_ID is ours: RFC 4456 §8 loop"
    );
}

#[test]
fn a_route_with_our_own_next_hop_is_ignored() {
    // RFC 4271 §6.3: semantically wrong next hop, no NOTIFICATION.
    let (mut s, peer, now) = speaker_with_a_peer_up();
    let update = one_route(PathAttributes {
        next_hop: Some(addr(0)),
        ext_communities: vec!["65000:100".parse::<RouteTarget>().unwrap().0],
        ..Default::default()
    });
    s.apply_update(peer, Box::new(update), now);
    assert!(s.rib().is_empty());
    s.apply_update(
        peer,
        Box::new(one_route(PathAttributes {
            next_hop: Some(addr(1)),
            ..Default::default()
        })),
        now,
    );
    assert_eq!(
        s.rib().len(),
        1,
        "the same route with the peer's next hop is taken"
    );
}

#[test]
fn an_update_handled_by_rfc_7606_is_reported_with_its_routes_and_bytes() {
    let mut lab = Lab::pair();
    let conn = lab
        .links
        .keys()
        .find(|(i, _)| *i == 1)
        .map(|(_, c)| *c)
        .unwrap();
    let attrs = PathAttributes {
        next_hop: Some(addr(0)),
        ext_communities: vec!["65000:100".parse::<RouteTarget>().unwrap().0],
        ..Default::default()
    };
    let route = one_route(PathAttributes::default()).announced[0];
    let mut bytes = Vec::new();
    let mut enc = crate::bgp::packet::UpdateEncoder::new(crate::bgp::packet::SessionContext {
        four_octet_as: true,
        external: false,
    });
    enc.announce(&attrs, addr(0), &route, &mut bytes);
    enc.flush(&mut bytes);
    let origin_at = bytes.windows(3).position(|w| w == [0x40, 1, 1]).unwrap() + 3;
    bytes[origin_at] = 7;
    let now = lab.now;
    lab.speakers[1].received(conn, &bytes, now);
    let reports: Vec<Output> = std::iter::from_fn(|| lab.speakers[1].poll_output())
        .filter(|o| matches!(o, Output::MalformedUpdate { .. }))
        .collect();
    assert_eq!(
        reports,
        [Output::MalformedUpdate {
            peer: NeighborId(0),
            reason: crate::bgp::packet::DecodeError::InvalidOrigin(7),
            action: crate::bgp::packet::ErrorAction::TreatAsWithdraw,
            routes: vec![route.prefix],
            message: bytes,
        }]
    );
}

#[test]
fn helper_keeps_routes_stale_until_end_of_rib() {
    let mut lab = Lab::pair();
    lab.advertise(0, "10.1.0.0/24", 100);
    lab.advertise(0, "10.1.1.0/24", 101);
    assert_eq!(lab.take_events(1).len(), 2);

    // Speaker 0 dies without a NOTIFICATION: 1 keeps both routes, stale.
    lab.crash(0);
    assert!(
        lab.take_events(1).is_empty(),
        "no route removed while the peer restarts"
    );
    assert!(lab.speakers[1].peer_status()[0].stale);
    assert_eq!(lab.speakers[1].rib().len(), 2);

    // It comes back restarting with forwarding preserved and only one route.
    let mut restarted = config(0);
    restarted.graceful_restart = Some(GracefulRestartConfig {
        restart_time: 60,
        restarting: true,
    });
    let mut s = Speaker::new(restarted);
    s.set_vrf(tenant_vrf(0));
    s.advertise(
        TenantId(1),
        "10.1.0.0/24".parse().unwrap(),
        Label::new(100).unwrap(),
        lab.now,
    )
    .unwrap();
    s.add_peer(
        NeighborConfig {
            address: addr(1),
            rr_client: false,
            passive: false,
            remote_as: None,
        },
        lab.now,
    )
    .unwrap();
    lab.speakers[0] = s;
    lab.run();
    assert!(lab.established(1));
    // End-of-RIB removed the route that was not re-advertised, and only it.
    let gone = lab.take_withdrawal(1);
    assert_eq!(gone.prefix.prefix.to_string(), "10.1.1.0/24");
    assert!(!lab.speakers[1].peer_status()[0].stale);
}

#[test]
fn helper_drops_stale_routes_when_the_restart_time_runs_out() {
    let mut lab = Lab::pair();
    lab.advertise(0, "10.1.0.0/24", 100);
    lab.take_events(1);
    lab.crash(0);
    // Keep speaker 0 from coming back: it forgets its peer.
    lab.speakers[0] = Speaker::new(config(0));
    lab.advance(Duration::from_secs(59));
    assert!(lab.take_events(1).is_empty());
    lab.advance(Duration::from_secs(2));
    lab.take_withdrawal(1);
}

#[test]
fn notification_ends_the_session_without_keeping_routes() {
    let mut lab = Lab::pair();
    lab.advertise(0, "10.1.0.0/24", 100);
    lab.take_events(1);
    let now = lab.now;
    lab.speakers[0].shutdown(now);
    lab.run();
    // A Cease is not a restart (RFC 4724 §4.2): the route goes at once.
    lab.take_withdrawal(1);
}

#[test]
fn mrai_holds_later_changes_back() {
    let mut c0 = config(0);
    c0.mrai = Duration::from_secs(5);
    let mut lab = Lab::new(
        vec![c0, config(1)],
        &[&[(1, false, false)], &[(0, false, true)]],
    );
    // The initial dump (End-of-RIB) was the last burst; after an MRAI of
    // quiet, a change goes at once.
    lab.advance(Duration::from_secs(5));
    lab.advertise(0, "10.1.0.0/24", 100);
    assert_eq!(
        lab.take_events(1).len(),
        1,
        "a change after quiet goes at once"
    );
    lab.advertise(0, "10.1.1.0/24", 101);
    lab.advertise(0, "10.1.2.0/24", 102);
    assert!(
        lab.take_events(1).is_empty(),
        "within the MRAI nothing goes"
    );
    lab.advance(Duration::from_secs(5));
    assert_eq!(
        lab.take_events(1).len(),
        2,
        "both changes go together when it expires"
    );
}

#[test]
fn route_refresh_resends_everything() {
    let mut lab = Lab::pair();
    lab.advertise(0, "10.1.0.0/24", 100);
    lab.take_events(1);
    let before = lab.sent_bytes[0];
    let now = lab.now;
    lab.speakers[1].request_refresh(NeighborId(0), now);
    lab.run();
    assert!(
        lab.sent_bytes[0] > before,
        "speaker 0 answered the ROUTE-REFRESH"
    );
    assert!(lab.take_events(1).is_empty(), "same route, no change");
}

#[test]
fn a_new_vrf_reports_routes_it_imports() {
    let mut lab = Lab::pair();
    lab.advertise(0, "10.1.0.0/24", 100);
    lab.take_events(1);
    let mut vrf = tenant_vrf(1);
    vrf.tenant = TenantId(7);
    lab.speakers[1].set_vrf(vrf);
    lab.run();
    let events = lab.take_events(1);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].tenant, 7);
}

/// A reflector (0) with clients 1 and 2 that exchanged routes through
/// it; then the reflector crashes and comes back restarting, with its
/// own route, while client 2 is still unreachable.
fn restarted_reflector_with_one_client_back() -> Lab {
    let reflector = |restarting: bool| {
        let mut c = config(0);
        c.cluster_id = Some(Ipv4Addr::new(10, 0, 0, 1));
        c.graceful_restart = Some(GracefulRestartConfig {
            restart_time: 60,
            restarting,
        });
        c
    };
    let clients: &[(usize, bool, bool)] = &[(1, true, false), (2, true, false)];
    let to_rr: &[(usize, bool, bool)] = &[(0, false, false)];
    let mut lab = Lab::new(
        vec![reflector(false), config(1), config(2)],
        &[clients, to_rr, to_rr],
    );
    lab.advertise(1, "10.1.0.0/24", 100);
    lab.advertise(2, "10.2.0.0/24", 200);
    assert_eq!(lab.take_events(1).len(), 1, "client 1 has client 2's route");
    lab.take_events(2);

    lab.crash(0);
    lab.cut.insert(2);
    for e in &mut lab.eors {
        e.clear();
    }
    let mut rr = Speaker::new(reflector(true));
    rr.set_vrf(tenant_vrf(0));
    rr.advertise(
        TenantId(1),
        "10.0.0.0/24".parse().unwrap(),
        Label::new(50).unwrap(),
        lab.now,
    )
    .unwrap();
    for &(j, rr_client, passive) in clients {
        rr.add_peer(
            NeighborConfig {
                address: addr(j),
                rr_client,
                passive,
                remote_as: None,
            },
            lab.now,
        )
        .unwrap();
    }
    lab.speakers[0] = rr;
    lab.run();
    assert_eq!(
        lab.speakers[0].peer_status()[0].state,
        State::Established,
        "client 1 is back"
    );
    assert_eq!(lab.speakers[0].peer_status()[1].state, State::Active);
    lab
}

#[test]
fn restarting_reflector_defers_updates_until_every_client_sent_end_of_rib() {
    let mut lab = restarted_reflector_with_one_client_back();
    assert_eq!(
        lab.eors[0].len(),
        2,
        "client 1 sent its table and End-of-RIB for both families"
    );
    assert!(lab.speakers[0].deferring());
    assert!(
        lab.eors[1].is_empty(),
        "no End-of-RIB for client 1 while client 2 is away"
    );
    assert!(
        lab.take_events(1).is_empty(),
        "no partial table: client 1 neither learns the reflector's route nor sweeps client 2's"
    );
    assert_eq!(lab.speakers[1].rib().len(), 2, "own route and client 2's");
    assert!(lab.speakers[1].peer_status()[0].stale);

    // Client 2 comes back and sends its End-of-RIB: selection is complete.
    lab.cut.remove(&2);
    lab.advance_secs(4);
    assert!(!lab.speakers[0].deferring());
    let mut families: Vec<Family> = lab.eors[1].iter().map(|(_, f)| *f).collect();
    families.sort_by_key(|f| format!("{f:?}"));
    let mut both = vec![Family::VPNV4, Family::VPNV6];
    both.sort_by_key(|f| format!("{f:?}"));
    assert_eq!(families, both, "client 1 got End-of-RIB once per family");
    let events = lab.take_events(1);
    assert!(
        events.iter().all(|e| e.route.is_some()),
        "client 2's route was never withdrawn from client 1: {events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.prefix.prefix.to_string() == "10.0.0.0/24"),
        "the reflector's own route arrived"
    );
    assert_eq!(lab.speakers[1].rib().len(), 3);
    assert!(!lab.speakers[1].peer_status()[0].stale);
}

#[test]
fn selection_deferral_timer_releases_updates_when_a_client_never_returns() {
    let mut lab = restarted_reflector_with_one_client_back();
    lab.advance_secs(19);
    assert!(lab.eors[1].is_empty(), "still deferring before the timer");
    assert!(lab.take_events(1).is_empty());
    lab.advance_secs(2);
    assert!(!lab.speakers[0].deferring());
    assert_eq!(lab.eors[1].len(), 2, "End-of-RIB once the timer ran out");
    let events = lab.take_events(1);
    let withdrawn: Vec<String> = events
        .iter()
        .filter(|e| e.route.is_none())
        .map(|e| e.prefix.prefix.to_string())
        .collect();
    assert_eq!(
        withdrawn,
        vec!["10.2.0.0/24"],
        "only then does client 1 sweep the absent client's route"
    );
}

#[test]
fn a_speaker_that_is_not_restarting_sends_its_table_at_once() {
    let lab = Lab::pair();
    assert!(!lab.speakers[0].deferring());
    assert_eq!(lab.eors[1].len(), 2, "End-of-RIB right after the dump");
}
