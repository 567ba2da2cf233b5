//! The agent end to end: an edge and two gateways, each a real
//! `pisek-agent` in its own namespace behind its own WAN subnet, tenants
//! `city` and `conference` with overlapping prefixes, two workloads per
//! tenant per gateway attached through the API (`pisek_lab::lab`).
//!
//! Proves: workloads on two gateways in one tenant talk through the edge
//! (ping over IPv4 and IPv6, and a TCP transfer whose SHA-256 matches; a
//! bulk TCP stream arrives whole with no packet dropped for want of room), and
//! so do gateway workloads and the datacenter service attached on the edge;
//! nothing crosses from one tenant to the other although their addresses are
//! the same (in both families); a workload that spoofs its source is dropped
//! and counted by the agent; `pisekctl` shows the endpoints, the learned
//! routes and the drops. The same overlay comes up with gobgpd as the route
//! reflector and the edge agent as its client.

use pisek_lab::lab::longest_ping_gap;
use pisek_lab::{Lab, ReadyScript, Reflector, Workload};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Sends `bytes` pseudo-random bytes over TCP from one workload to another
/// and returns the SHA-256 each side computed.
fn tcp_transfer(lab: &Lab, from: &str, to: &str, to_addr: &str, bytes: usize) -> (String, String) {
    let server = format!(
        "import socket,hashlib\n\
         s=socket.socket(socket.AF_INET6 if ':' in '{to_addr}' else socket.AF_INET)\n\
         s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('{to_addr}',5001)); s.listen(1); print('ready',flush=True)\n\
         c,_=s.accept(); h=hashlib.sha256()\n\
         while True:\n  b=c.recv(65536)\n  if not b: break\n  h.update(b)\n\
         print(h.hexdigest())"
    );
    let mut receiver = ReadyScript::start(to, &server);
    let client = format!(
        "import socket,hashlib,random\n\
         r=random.Random(7); data=bytes(r.getrandbits(8) for _ in range({bytes}))\n\
         c=socket.create_connection(('{to_addr}',5001),timeout=10); c.sendall(data); c.close()\n\
         print(hashlib.sha256(data).hexdigest())"
    );
    let sent = lab.python(from, &client);
    let received = receiver.line();
    receiver.wait();
    (sent.trim().to_string(), received)
}

/// gw1's routes learned over BGP in each tenant: the edge's and gw2's
/// prefixes, IPv4 and IPv6, with their next hops and VRF labels.
fn learned_routes_on_gw1(lab: &Lab) {
    for (tenant, _) in pisek_lab::TENANTS {
        let routes = lab
            .json(1, &["routes", "--tenant", tenant, "--json"])
            .expect("routes");
        let mut remote: Vec<(String, String)> = routes
            .as_array()
            .expect("a list")
            .iter()
            .filter(|r| r["source"] == "bgp")
            .inspect(|r| assert!(r["label"].as_u64().is_some_and(|l| l >= 16), "{r}"))
            .map(|r| (r["prefix"].to_string(), r["next_hop"].to_string()))
            .collect();
        remote.sort();
        let route =
            |prefix: &str, next_hop: &str| (format!("\"{prefix}\""), format!("\"{next_hop}\""));
        assert_eq!(
            remote,
            [
                route("10.1.0.0/24", "10.255.0.1"),
                route("10.1.2.0/24", "10.255.0.12"),
                route("fd00:10:1:2::/64", "10.255.0.12"),
                route("fd00:10:1::/64", "10.255.0.1"),
            ],
            "{tenant}: the edge's and gw2's prefixes with their next hops: {routes}"
        );
    }
}

/// Ping both ways in each tenant (IPv4 and IPv6), between the gateways and
/// to the datacenter service, checksummed TCP transfers, and isolation of
/// the overlapping tenants in both families. The checks are independent, so
/// each group runs at once (threads), which keeps the test short.
fn ping_tcp_and_isolation<'a>(lab: &'a Lab) {
    // Same tenant: two gateways through the edge, and each gateway to the
    // datacenter service attached on the edge; both ways between the
    // gateways, both families everywhere.
    let mut pings: Vec<(String, &Workload, IpAddr)> = Vec::new();
    for (tenant, _) in pisek_lab::TENANTS {
        let a = lab.workload("gw1", tenant, 1);
        let b = lab.workload("gw2", tenant, 2);
        let dc = lab.workload("edge", tenant, 1);
        for (from, to, what) in [
            (a, b, "gw1 -> gw2"),
            (b, a, "gw2 -> gw1"),
            (a, dc, "gw1 -> datacenter service"),
            (b, dc, "gw2 -> datacenter service"),
        ] {
            pings.push((format!("{tenant}: {what}"), from, to.address.into()));
            pings.push((
                format!("{tenant}: {what} over IPv6"),
                from,
                to.address_v6.into(),
            ));
        }
    }
    std::thread::scope(|s| {
        let running: Vec<_> = pings
            .iter()
            .map(|(what, from, to)| s.spawn(move || (what, lab.ping(from, *to, 3))))
            .collect();
        for ping in running {
            let (what, result) = ping.join().expect("ping thread");
            let (ok, line) = result.expect("ping");
            assert!(ok, "{what}: {line}");
        }
    });

    // TCP transfers arrive intact: gateway to gateway in both families, and
    // to the datacenter service in each tenant.
    let transfer = |what: &str, from: &'a Workload, to: &'a Workload, address: IpAddr| {
        (what.to_string(), from, to, address)
    };
    let mut transfers = Vec::new();
    for (tenant, _) in pisek_lab::TENANTS {
        let dc = lab.workload("edge", tenant, 1);
        transfers.push(transfer(
            &format!("{tenant}: gw2 -> datacenter service"),
            lab.workload("gw2", tenant, 2),
            dc,
            dc.address.into(),
        ));
    }
    let (a, b) = (
        lab.workload("gw1", "city", 2),
        lab.workload("gw2", "city", 1),
    );
    transfers.push(transfer("city: gw1 -> gw2", a, b, b.address.into()));
    let (a, b) = (
        lab.workload("gw1", "conference", 2),
        lab.workload("gw2", "conference", 1),
    );
    transfers.push(transfer(
        "conference: gw1 -> gw2 over IPv6",
        a,
        b,
        b.address_v6.into(),
    ));
    std::thread::scope(|s| {
        let running: Vec<_> = transfers
            .iter()
            .map(|(what, from, to, address)| {
                s.spawn(move || {
                    let digests =
                        tcp_transfer(lab, &from.netns, &to.netns, &address.to_string(), 1_000_000);
                    (what, digests)
                })
            })
            .collect();
        for transfer in running {
            let (what, (sent, received)) = transfer.join().expect("transfer thread");
            assert_eq!(sent.len(), 64, "{what}: sender digest {sent:?}");
            assert_eq!(
                sent, received,
                "{what}: the bytes that arrived are the bytes sent"
            );
        }
    });

    // Isolation with overlapping prefixes: city's and conference's first
    // workloads on gw2 have the same addresses. City pings them: city's
    // workload answers, conference's sees nothing, in either family.
    let city_src = lab.workload("gw1", "city", 1);
    let city_dst = lab.workload("gw2", "city", 1);
    let twin = lab.workload("gw2", "conference", 1);
    assert_eq!(
        (city_dst.address, city_dst.address_v6),
        (twin.address, twin.address_v6),
        "the lab overlaps the tenants"
    );
    type EchoCounter = fn(&Lab, &Workload) -> anyhow::Result<u64>;
    let families: [(&str, IpAddr, EchoCounter); 2] = [
        ("IPv4", city_dst.address.into(), Lab::echo_requests_received),
        (
            "IPv6",
            city_dst.address_v6.into(),
            Lab::echo6_requests_received,
        ),
    ];
    std::thread::scope(|s| {
        for (family, to, echoes) in families {
            s.spawn(move || {
                let (city_before, twin_before) = (
                    echoes(lab, city_dst).expect("rx"),
                    echoes(lab, twin).expect("rx"),
                );
                let (ok, line) = lab.ping(city_src, to, 5).expect("ping");
                assert!(ok, "{family}: {line}");
                assert!(echoes(lab, city_dst).expect("rx") >= city_before + 5);
                assert_eq!(
                    echoes(lab, twin).expect("rx"),
                    twin_before,
                    "{family}: conference's workload got none of city's packets"
                );
            });
        }
    });
}

#[test]
fn gobgpd_as_route_reflector_gives_the_same_overlay() {
    if !pisek_lab::require(
        "gobgpd_as_route_reflector_gives_the_same_overlay",
        &["ip", "ping", "python3", "gobgpd"],
    ) {
        return;
    }
    let tag = pisek_lab::unique_tag("tb");
    let lab = Lab::start_with(&tag, pisek_lab::lab_binaries(), Reflector::Gobgpd)
        .expect("the lab starts");
    lab.wait_until_ready(Duration::from_secs(20))
        .expect("peers, sessions (to gobgpd) and routes come up");
    // The edge agent is a client of gobgpd on its own tunnel address.
    let sessions = lab.json(0, &["bgp", "--json"]).expect("bgp");
    let sessions: Vec<(String, String)> = sessions
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| (s["neighbor"].to_string(), s["state"].to_string()))
        .collect();
    assert_eq!(
        sessions,
        [("\"10.255.0.1\"".into(), "\"Established\"".into())],
        "the edge agent's one session, to gobgpd"
    );
    // gobgpd sees its three clients.
    let out = lab
        .exec(
            &lab.nodes[0].netns,
            "gobgp",
            &["-u", "127.0.0.1", "-p", "50051", "neighbor", "-j"],
        )
        .expect("gobgp neighbor");
    let neighbors: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("gobgp neighbor -j is JSON");
    let mut established: Vec<String> = neighbors
        .as_array()
        .expect("a list")
        .iter()
        .filter(|n| n["state"]["session_state"] == 6)
        .filter_map(|n| n["state"]["neighbor_address"].as_str().map(String::from))
        .collect();
    established.sort();
    assert_eq!(
        established,
        ["10.255.0.1", "10.255.0.11", "10.255.0.12"],
        "gobgpd's established clients: {neighbors}"
    );
    pisekctl_shows_the_endpoints(&lab);
    learned_routes_on_gw1(&lab);
    ping_tcp_and_isolation(&lab);
    a_spoofed_source_is_dropped_and_counted(&lab);
}

#[test]
fn workloads_on_two_gateways_talk_through_the_edge_and_tenants_stay_apart() {
    if !pisek_lab::require(
        "workloads_on_two_gateways_talk_through_the_edge_and_tenants_stay_apart",
        &["ip", "ping", "python3", "sysctl"],
    ) {
        return;
    }
    let started = Instant::now();
    let tag = pisek_lab::unique_tag("tg");
    let lab = Lab::start(&tag, pisek_lab::lab_binaries()).expect("the lab starts");
    lab.wait_until_ready(Duration::from_secs(20))
        .expect("peers, sessions and routes come up");
    eprintln!("lab ready in {:?}", started.elapsed());

    pisekctl_shows_the_endpoints(&lab);
    learned_routes_on_gw1(&lab);
    ping_tcp_and_isolation(&lab);
    a_bulk_tcp_stream_loses_nothing_on_the_way(&lab);
    a_spoofed_source_is_dropped_and_counted(&lab);
    eprintln!("test done in {:?}", started.elapsed());
}

/// A bulk TCP stream from gw1 to gw2 arrives whole, and no node drops a
/// packet for want of room (`queue-full`): the kernel hands gw1 64 KiB TSO
/// super-packets, each cut into about 45 datagrams, several per read, and
/// all of a read must find room in the worker's output (TCP would recover
/// from such drops, at a fraction of its rate).
fn a_bulk_tcp_stream_loses_nothing_on_the_way(lab: &Lab) {
    const MIB: usize = 48;
    let from = lab.workload("gw1", "city", 1);
    let to = lab.workload("gw2", "city", 2);
    let queue_full = |i| lab.drops(i, None, "queue-full").expect("drops");
    let before: Vec<u64> = (0..3).map(queue_full).collect();
    let server = format!(
        "import socket\n\
         s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('{addr}',5002)); s.listen(1); print('ready',flush=True)\n\
         c,_=s.accept(); n=0\n\
         while True:\n  b=c.recv(1<<20)\n  if not b: break\n  n+=len(b)\n\
         print(n)",
        addr = to.address
    );
    let mut receiver = ReadyScript::start(&to.netns, &server);
    let client = format!(
        "import socket\n\
         c=socket.create_connection(('{addr}',5002),timeout=20); chunk=bytes(1<<20)\n\
         for _ in range({MIB}): c.sendall(chunk)\n\
         c.close()",
        addr = to.address
    );
    lab.python(&from.netns, &client);
    let received = receiver.line();
    receiver.wait();
    assert_eq!(received, (MIB << 20).to_string(), "bytes that arrived");
    let after: Vec<u64> = (0..3).map(queue_full).collect();
    assert_eq!(after, before, "queue-full drops on the edge, gw1, gw2");
}

/// `pisekctl endpoints` on gw1 lists its workloads with both addresses.
fn pisekctl_shows_the_endpoints(lab: &Lab) {
    let endpoints = lab.pisekctl(1, &["endpoints"]).expect("endpoints");
    for w in lab.workloads.iter().filter(|w| w.gateway == "gw1") {
        assert!(endpoints.contains(&w.address.to_string()), "{endpoints}");
        assert!(endpoints.contains(&w.address_v6.to_string()), "{endpoints}");
    }
}

/// A workload that sends from an address not its own is dropped and
/// counted by gw1's agent (`pisekctl drops` and the Prometheus page), and
/// nothing arrives.
fn a_spoofed_source_is_dropped_and_counted(lab: &Lab) {
    let city_src = lab.workload("gw1", "city", 1);
    let city_dst = lab.workload("gw2", "city", 1);

    // Anti-spoofing. The kernel's strict rp_filter on the workload's veth
    // is the first line; with it off, the agent must still drop and count
    // a source that is not the workload's.
    let gw1 = &lab.nodes[1];
    let attached = lab.json(1, &["endpoints", "--json"]).expect("endpoints");
    let host_if = attached
        .as_array()
        .expect("a list")
        .iter()
        .find(|e| {
            e["netns"]
                .as_str()
                .is_some_and(|n| n.ends_with(&city_src.netns))
        })
        .and_then(|e| e["host_ifname"].as_str())
        .expect("the workload's host interface")
        .to_string();
    for key in ["all", host_if.as_str()] {
        let out = lab
            .exec(
                &gw1.netns,
                "sysctl",
                &["-qw", &format!("net.ipv4.conf.{key}.rp_filter=0")],
            )
            .expect("sysctl");
        assert!(out.status.success());
    }
    // IPv6 has no rp_filter: there the agent is the only line.
    let spoofed_before = lab.drops(1, None, "spoofed-source").expect("drops");
    let spoofs: [(&str, IpAddr, &[&str]); 2] = [
        ("10.1.1.99", city_dst.address.into(), &[]),
        ("fd00:10:1:1::99", city_dst.address_v6.into(), &["nodad"]),
    ];
    for (source, _, flags) in spoofs {
        let mut args = vec!["addr", "add", source, "dev", "eth0"];
        args.extend_from_slice(flags);
        let out = lab.exec(&city_src.netns, "ip", &args).expect("ip addr");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let before = (
        lab.echo_requests_received(city_dst).expect("rx"),
        lab.echo6_requests_received(city_dst).expect("rx"),
    );
    std::thread::scope(|s| {
        for (source, to, _) in spoofs {
            s.spawn(move || {
                let to = to.to_string();
                let args = ["-c", "3", "-i", "0.2", "-W", "1", "-I", source, &to];
                let spoof = lab.exec(&city_src.netns, "ping", &args).expect("ping");
                assert!(!spoof.status.success(), "a ping from {source} got a reply");
            });
        }
    });
    pisek_lab::poll_until(
        "spoofed-source drops counted (IPv4 and IPv6)",
        Duration::from_secs(3),
        || {
            (lab.drops(1, None, "spoofed-source").expect("drops") >= spoofed_before + 6)
                .then_some(())
        },
    );
    assert_eq!(
        (
            lab.echo_requests_received(city_dst).expect("rx"),
            lab.echo6_requests_received(city_dst).expect("rx"),
        ),
        before,
        "a spoofed packet arrived"
    );
    let table = lab.pisekctl(1, &["drops"]).expect("drops");
    assert!(table.contains("spoofed-source"), "{table}");

    // The same figures on the Prometheus endpoint (loopback of gw1).
    let page = lab
        .exec(
            &gw1.netns,
            "python3",
            &[
                "-c",
                "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9469/metrics').read().decode())",
            ],
        )
        .expect("metrics");
    let page = String::from_utf8_lossy(&page.stdout);
    assert!(
        page.contains("pisek_drops_total{reason=\"spoofed-source\"}"),
        "{page}"
    );
    assert!(
        page.lines().any(|l| l
            .starts_with("pisek_bgp_session_established{neighbor=\"10.255.0.1\",")
            && l.ends_with("} 1")),
        "{page}"
    );
    assert!(
        page.contains("pisek_tenant_packets_total{tenant=\"city\",direction=\"out\"}"),
        "{page}"
    );
}

/// Restarts gw1's agent (SIGTERM, `between` while it is down, start, then
/// `after`) while a paced TCP stream runs gw1 -> gw2 in `city` and a 50 ms
/// ping runs beside it. Asserts that the stream survives intact and that
/// gw1's workloads keep their addresses; returns the longest run of lost
/// pings.
fn restart_gw1_under_traffic(
    lab: &mut Lab,
    between: impl FnOnce(&Lab),
    after: impl FnOnce(&Lab),
) -> Duration {
    let endpoints_before = lab.json(1, &["endpoints", "--json"]).expect("endpoints");
    // A TCP stream gw1 -> gw2 (about 6 s, paced) and a fast ping beside it.
    let a = lab.workload("gw1", "city", 1).clone();
    let b = lab.workload("gw2", "city", 1).clone();
    let server = format!(
        "import socket,hashlib\n\
         s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('{b}',5002)); s.listen(1); print('ready',flush=True)\n\
         c,_=s.accept(); h=hashlib.sha256()\n\
         while True:\n  x=c.recv(65536)\n  if not x: break\n  h.update(x)\n\
         print(h.hexdigest())",
        b = b.address
    );
    let mut receiver = std::process::Command::new("ip")
        .args(["netns", "exec", &b.netns, "python3", "-c", &server])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the receiver");
    let mut out = std::io::BufReader::new(receiver.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).expect("receiver ready");
    let client = format!(
        "import socket,hashlib,random,time\n\
         r=random.Random(9); h=hashlib.sha256()\n\
         c=socket.create_connection(('{b}',5002),timeout=20)\n\
         for i in range(300):\n  d=bytes(r.getrandbits(8) for _ in range(4096)); c.sendall(d); h.update(d); time.sleep(0.02)\n\
         c.close(); print(h.hexdigest())",
        b = b.address
    );
    let sender = std::process::Command::new("ip")
        .args(["netns", "exec", &a.netns, "python3", "-c", &client])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the sender");
    let echoes_before = lab.echo_requests_received(&b).expect("echo counter");
    let ping = lab.spawn_ping(&a, &b, 120).expect("start ping");

    // The restart must fall inside the traffic: wait until the stream's
    // connection is up (established on the receiver) and pings arrive.
    pisek_lab::poll_until(
        "the TCP stream and the pings flowing",
        Duration::from_secs(10),
        || {
            let pinged = lab.echo_requests_received(&b).ok()? >= echoes_before + 3;
            let out = lab
                .exec(
                    &b.netns,
                    "ss",
                    &["-Htn", "state", "established", "( sport = :5002 )"],
                )
                .ok()?;
            let streaming = !String::from_utf8_lossy(&out.stdout).trim().is_empty();
            (pinged && streaming).then_some(())
        },
    );
    let restart = Instant::now();
    lab.stop_agent(1).expect("SIGTERM stops the agent cleanly");
    between(lab);
    lab.start_agent(1).expect("the agent starts again");
    eprintln!("agent restarted in {:?}", restart.elapsed());
    after(lab);

    let sent = sender.wait_with_output().expect("sender");
    assert!(
        sent.status.success(),
        "the stream broke: {}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let mut received = String::new();
    std::io::BufRead::read_line(&mut out, &mut received).expect("receiver digest");
    let _ = receiver.wait();
    assert_eq!(
        String::from_utf8_lossy(&sent.stdout).trim(),
        received.trim(),
        "every byte of the stream arrived"
    );
    let ping = ping.wait_with_output().expect("ping");
    assert_eq!(
        lab.json(1, &["endpoints", "--json"]).expect("endpoints"),
        endpoints_before,
        "workloads keep their addresses and interfaces"
    );
    // The restarted forwarder knew the running workloads from its first
    // packet (the stream ran seconds past the restart, so these counters
    // are from after it).
    assert_eq!(
        lab.drops(1, None, "spoofed-source").expect("drops"),
        0,
        "the workloads' packets across the restart counted as spoofed"
    );
    longest_ping_gap(
        &String::from_utf8_lossy(&ping.stdout),
        Duration::from_millis(50),
    )
}

#[test]
fn a_gateway_agent_restart_keeps_tcp_streams_and_addresses() {
    if !pisek_lab::require(
        "a_gateway_agent_restart_keeps_tcp_streams_and_addresses",
        &["ip", "ss", "ping", "python3"],
    ) {
        return;
    }
    let tag = pisek_lab::unique_tag("tr");
    let mut lab = Lab::start(&tag, pisek_lab::lab_binaries()).expect("the lab starts");
    lab.wait_until_ready(Duration::from_secs(20))
        .expect("peers, sessions and routes come up");
    let outage = restart_gw1_under_traffic(&mut lab, |_| {}, |_| {});
    eprintln!("outage seen by a 50 ms ping across the restart: {outage:?}");
    assert!(outage < OUTAGE_TARGET, "outage {outage:?}");
}

/// The target for the data-path outage of an agent restart.
const OUTAGE_TARGET: Duration = Duration::from_secs(1);

/// A host route of gw2 that goes away while gw1's agent is down.
const GW2_STRAY: &str = "10.1.9.7";

/// gw1's BGP route for `prefix` in `city`, if it has one.
fn gw1_route(lab: &Lab, prefix: &str) -> Option<String> {
    let routes = lab
        .json(1, &["routes", "--tenant", "city", "--json"])
        .ok()?;
    routes.as_array()?.iter().find_map(|r| {
        (r["prefix"] == prefix && r["source"] == "bgp")
            .then(|| r["next_hop"].as_str().unwrap_or_default().to_string())
    })
}

/// With gobgpd as reflector, a restarted gateway agent waits 5 s for its
/// session (gobgpd's fixed idle hold), so only the routes it kept from its
/// previous run carry its traffic meanwhile (RFC 4724 §4.1, Forwarding
/// State). A host route withdrawn while it was down goes once gobgpd has
/// resent everything (End-of-RIB).
#[test]
fn a_gateway_agent_restart_behind_gobgpd_keeps_forwarding_and_sweeps_what_went_away() {
    if !pisek_lab::require(
        "a_gateway_agent_restart_behind_gobgpd_keeps_forwarding_and_sweeps_what_went_away",
        &["ip", "ss", "ping", "python3", "gobgpd"],
    ) {
        return;
    }
    let tag = pisek_lab::unique_tag("tq");
    let mut lab = Lab::start_with(&tag, pisek_lab::lab_binaries(), Reflector::Gobgpd)
        .expect("the lab starts");
    lab.wait_until_ready(Duration::from_secs(20))
        .expect("peers, sessions (to gobgpd) and routes come up");
    // gw2 attaches a workload with a stray address: gw1 learns its /32.
    let stray = pisek_lab::Netns::new(&format!("{tag}s"));
    let stray_path = stray.path().display().to_string();
    lab.pisekctl(
        2,
        &[
            "attach",
            "--netns",
            &stray_path,
            "--tenant",
            "city",
            "--address",
            GW2_STRAY,
        ],
    )
    .expect("attach the stray address on gw2");
    let host_route = format!("{GW2_STRAY}/32");
    let next_hop = pisek_lab::poll_until(
        "gw1 learns gw2's stray /32",
        Duration::from_secs(10),
        || gw1_route(&lab, &host_route),
    );
    assert_eq!(next_hop, "10.255.0.12");

    let outage = restart_gw1_under_traffic(
        &mut lab,
        |lab| {
            // Gone while gw1's agent is down: gw1 does not hear the withdrawal.
            lab.pisekctl(2, &["detach", "--netns", &stray_path])
                .expect("detach on gw2");
        },
        |lab| {
            // The restarted agent forwards with what it kept, the /32
            // included, while gobgpd still refuses its session.
            pisek_lab::poll_until(
                "gw1's kept routes in its VRF right after the start",
                Duration::from_secs(3),
                || gw1_route(lab, &host_route).map(|_| ()),
            );
            let sessions = lab.json(1, &["bgp", "--json"]).expect("bgp");
            eprintln!("gw1's session right after the start: {sessions}");
        },
    );
    eprintln!("outage seen by a 50 ms ping across the restart behind gobgpd: {outage:?}");
    assert!(
        outage < OUTAGE_TARGET,
        "outage {outage:?}: the kept routes must carry the traffic until gobgpd takes the session back"
    );
    // Once gobgpd accepted the session again and sent End-of-RIB, the kept
    // /32 nobody resent is gone, and gw2's prefix is fresh.
    pisek_lab::poll_until(
        "gw1 sweeps the /32 gw2 withdrew while gw1's agent was down",
        Duration::from_secs(20),
        || gw1_route(&lab, &host_route).is_none().then_some(()),
    );
    assert_eq!(
        gw1_route(&lab, "10.1.2.0/24").as_deref(),
        Some("10.255.0.12"),
        "gw2's prefix stays"
    );
    learned_routes_on_gw1(&lab);
}
