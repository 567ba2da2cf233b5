//! Pisek's WireGuard (boringtun, `examples/wg_peer`) against the real
//! `wireguard-go` + `wg`, in two network namespaces joined by a veth.
//!
//! ```text
//!  ns "pisek": wg_peer, TUN pwg0 10.9.0.1/24     ns "wggo": wireguard-go wgg… 10.9.0.2/24
//!            veth 10.99.0.1/24  ──────────────────  veth 10.99.0.2/24
//! ```
//! Each test builds its own pair of namespaces and takes a few seconds.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use pisek_lab::{Netns, TempDir, poll_until, require, veth_pair, workspace_binary};

const PISEK_UNDERLAY: &str = "10.99.0.1";
const WGGO_UNDERLAY: &str = "10.99.0.2";
const PISEK_TUNNEL: &str = "10.9.0.1";
const WGGO_TUNNEL: &str = "10.9.0.2";
const PORT: &str = "51820";
const TIMEOUT: Duration = Duration::from_secs(10);

/// Who knows whose underlay endpoint at the start.
#[derive(Clone, Copy, PartialEq)]
enum Initiator {
    /// Pisek knows wireguard-go's endpoint; wireguard-go waits.
    Pisek,
    /// wireguard-go knows Pisek's endpoint; Pisek learns it.
    WireguardGo,
}

struct Lab {
    pisek_ns: Netns,
    wggo_ns: Netns,
    pisek: Child,
    pisek_stdin: ChildStdin,
    pisek_lines: mpsc::Receiver<String>,
    wggo: Child,
    /// wireguard-go's interface: unique, because its control socket
    /// (/var/run/wireguard/<name>.sock) is shared by all namespaces.
    wggo_if: String,
    pisek_pub: String,
    dir: TempDir,
}

fn wg_genkey(dir: &Path, name: &str) -> (String, String) {
    let out = Command::new("wg")
        .arg("genkey")
        .output()
        .expect("wg genkey");
    let private = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut pubkey = Command::new("wg")
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("wg pubkey");
    pubkey
        .stdin
        .take()
        .expect("stdin")
        .write_all(private.as_bytes())
        .expect("write key");
    let public = String::from_utf8_lossy(&pubkey.wait_with_output().expect("wg pubkey").stdout)
        .trim()
        .to_string();
    let path = dir.join(name);
    std::fs::write(&path, format!("{private}\n")).expect("write key file");
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod key");
    (path.to_string_lossy().into_owned(), public)
}

impl Lab {
    /// Starts both sides. With `wggo_uses_wrong_key`, wireguard-go runs with
    /// a key Pisek does not know (and Pisek expects another).
    fn start(initiator: Initiator, wggo_uses_wrong_key: bool) -> Lab {
        let dir = TempDir::new("wg");
        let pisek_ns = Netns::new("wgp");
        let wggo_ns = Netns::new("wgg");
        veth_pair(
            &pisek_ns,
            "veth0",
            &format!("{PISEK_UNDERLAY}/24"),
            &wggo_ns,
            "veth0",
            &format!("{WGGO_UNDERLAY}/24"),
        );
        let (pisek_key, pisek_pub) = wg_genkey(&dir.path, "pisek.key");
        let (wggo_key, wggo_pub) = wg_genkey(&dir.path, "wggo.key");
        let (wrong_key, _) = wg_genkey(&dir.path, "wrong.key");

        // wireguard-go in its namespace, configured with wg.
        let wggo_if = pisek_lab::unique_tag("wgg");
        let wggo = start_wireguard_go(&wggo_ns, &wggo_if);
        let mut set = vec![
            "set".to_string(),
            wggo_if.clone(),
            "private-key".into(),
            if wggo_uses_wrong_key {
                wrong_key
            } else {
                wggo_key
            },
            "listen-port".into(),
            PORT.into(),
            "peer".into(),
            pisek_pub.clone(),
            "allowed-ips".into(),
            format!("{PISEK_TUNNEL}/32"),
        ];
        if initiator == Initiator::WireguardGo {
            set.extend(["endpoint".into(), format!("{PISEK_UNDERLAY}:{PORT}")]);
        }
        wggo_ns.exec("wg", &set);
        wggo_ns.ip(["addr", "add", &format!("{WGGO_TUNNEL}/24"), "dev", &wggo_if]);
        wggo_ns.ip(["link", "set", &wggo_if, "mtu", "1420", "up"]);

        // Pisek's example in the other namespace.
        let mut cmd = pisek_ns.command(workspace_binary("examples/wg_peer"));
        cmd.args([
            "--key-file",
            &pisek_key,
            "--listen",
            &format!("0.0.0.0:{PORT}"),
            "--tun",
            "pwg0",
            "--address",
            &format!("{PISEK_TUNNEL}/24"),
            "--peer",
            &wggo_pub,
            "--allowed-ips",
            &format!("{WGGO_TUNNEL}/32"),
        ]);
        if initiator == Initiator::Pisek {
            cmd.args(["--peer-endpoint", &format!("{WGGO_UNDERLAY}:{PORT}")]);
        }
        let mut pisek = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start wg_peer");
        let pisek_stdin = pisek.stdin.take().expect("stdin");
        let pisek_lines = read_lines(pisek.stdout.take().expect("stdout"));
        let lab = Lab {
            pisek_ns,
            wggo_ns,
            pisek,
            pisek_stdin,
            pisek_lines,
            wggo,
            wggo_if,
            pisek_pub,
            dir,
        };
        lab.wait_line("ready", TIMEOUT);
        lab
    }

    /// The next stdout line of wg_peer that starts with `prefix`.
    fn wait_line(&self, prefix: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.pisek_lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(_) => panic!("wg_peer printed no line starting with {prefix:?} in {timeout:?}"),
            }
        }
    }

    /// wg_peer's `status`: (the peer line, the interface line).
    fn status(&mut self) -> (String, String) {
        let (mut peers, interface) = status_of(&mut self.pisek_stdin, &self.pisek_lines);
        (peers.remove(0), interface)
    }

    fn pisek_pings_wggo(&self) -> bool {
        self.pisek_ns.ping_once(WGGO_TUNNEL)
    }

    fn wggo_pings_pisek(&self) -> bool {
        self.wggo_ns.ping_once(PISEK_TUNNEL)
    }

    /// Pings until one answer arrives (the first may wait for a handshake).
    fn ping_until_answered(&self, from_pisek: bool) {
        poll_until("a ping through the tunnel", TIMEOUT, || {
            let ok = if from_pisek {
                self.pisek_pings_wggo()
            } else {
                self.wggo_pings_pisek()
            };
            ok.then_some(())
        });
    }

    /// Sends `bytes` over TCP from one namespace to a listener in the other
    /// and returns what the listener received.
    fn tcp_transfer(&self, from_pisek: bool, bytes: &[u8]) -> Vec<u8> {
        let (client_ns, server_ns, server_ip) = if from_pisek {
            (&self.pisek_ns, &self.wggo_ns, WGGO_TUNNEL)
        } else {
            (&self.wggo_ns, &self.pisek_ns, PISEK_TUNNEL)
        };
        let tag = if from_pisek { "p2g" } else { "g2p" };
        let input = self.dir.path.join(format!("{tag}.in"));
        let output = self.dir.path.join(format!("{tag}.out"));
        std::fs::write(&input, bytes).expect("write input");
        let server = format!(
            "import socket\n\
             s = socket.socket()\n\
             s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('{server_ip}', 5201))\n\
             s.listen(1)\n\
             c, _ = s.accept()\n\
             with open('{}', 'wb') as f:\n\
             \x20   while True:\n\
             \x20       b = c.recv(65536)\n\
             \x20       if not b: break\n\
             \x20       f.write(b)\n",
            output.display()
        );
        let client = format!(
            "import socket, time\n\
             for _ in range(100):\n\
             \x20   try:\n\
             \x20       c = socket.create_connection(('{server_ip}', 5201), timeout=5)\n\
             \x20       break\n\
             \x20   except OSError:\n\
             \x20       time.sleep(0.05)\n\
             c.sendall(open('{}', 'rb').read())\n\
             c.close()\n",
            input.display()
        );
        let mut server = server_ns
            .command("python3")
            .args(["-c", &server])
            .spawn()
            .expect("start TCP server");
        let client = client_ns
            .command("python3")
            .args(["-c", &client])
            .status()
            .expect("run TCP client");
        assert!(client.success(), "TCP client failed");
        let done = poll_until("the TCP server to finish", TIMEOUT, || {
            server.try_wait().ok().flatten()
        });
        assert!(done.success(), "TCP server failed");
        std::fs::read(&output).expect("read received bytes")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.pisek.kill();
        let _ = self.pisek.wait();
        // SIGTERM lets wireguard-go remove its control socket; the namespace's
        // drop kills whatever is left.
        let _ = Command::new("kill")
            .arg(self.wggo.id().to_string())
            .status();
        let _ = poll_until_exit(&mut self.wggo);
        let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", self.wggo_if));
    }
}

/// Asks a running wg_peer for its status: (one line per peer, the
/// interface line).
fn status_of(stdin: &mut ChildStdin, lines: &mpsc::Receiver<String>) -> (Vec<String>, String) {
    writeln!(stdin, "status").expect("write to wg_peer");
    let mut peers = Vec::new();
    loop {
        let line = lines
            .recv_timeout(TIMEOUT)
            .expect("a status line from wg_peer");
        if line.starts_with("peer ") {
            peers.push(line);
        } else if line.starts_with("interface ") {
            return (peers, line);
        }
    }
}

/// Waits up to two seconds for `child` to exit.
fn poll_until_exit(child: &mut Child) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().is_ok()
}

/// Deterministic, incompressible-looking test data.
fn test_bytes(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
}

#[test]
fn pisek_as_initiator_carries_ping_and_exact_tcp_both_ways() {
    if !require("wg_interop", &["wireguard-go", "wg", "ping", "python3"]) {
        return;
    }
    let lab = Lab::start(Initiator::Pisek, false);
    lab.ping_until_answered(true);
    assert!(lab.wggo_pings_pisek());
    let up = test_bytes(3 << 20, 7);
    assert!(
        lab.tcp_transfer(true, &up) == up,
        "bytes differ Pisek -> wireguard-go"
    );
    let down = test_bytes(3 << 20, 11);
    assert!(
        lab.tcp_transfer(false, &down) == down,
        "bytes differ wireguard-go -> Pisek"
    );
}

#[test]
fn pisek_as_responder_learns_the_endpoint_and_answers() {
    if !require("wg_interop", &["wireguard-go", "wg", "ping", "python3"]) {
        return;
    }
    let mut lab = Lab::start(Initiator::WireguardGo, false);
    // Pisek has no endpoint yet: its own packets cannot go anywhere.
    assert!(!lab.pisek_pings_wggo());
    lab.ping_until_answered(false);
    assert!(lab.pisek_pings_wggo());
    let data = test_bytes(1 << 20, 3);
    assert!(lab.tcp_transfer(true, &data) == data);
    let (peer, _) = lab.status();
    assert_eq!(field(&peer, "endpoint"), format!("{WGGO_UNDERLAY}:{PORT}"));
    assert_eq!(field(&peer, "health"), "Up");
}

#[test]
fn a_forced_session_expiry_is_followed_by_a_rekey_and_traffic_resumes() {
    if !require("wg_interop", &["wireguard-go", "wg", "ping"]) {
        return;
    }
    let mut lab = Lab::start(Initiator::Pisek, false);
    lab.ping_until_answered(true);
    let (before, _) = lab.status();
    assert_eq!(field(&before, "handshakes"), "1");
    writeln!(lab.pisek_stdin, "rekey").expect("write to wg_peer");
    lab.wait_line("ok rekey", TIMEOUT);
    lab.ping_until_answered(true);
    let (after, _) = lab.status();
    assert_eq!(field(&after, "handshakes"), "2", "{after}");
    // And wireguard-go still reaches Pisek over the new session.
    assert!(lab.wggo_pings_pisek());
}

#[test]
fn an_endpoint_change_is_recovered_without_restart() {
    if !require("wg_interop", &["wireguard-go", "wg", "ping"]) {
        return;
    }
    let mut lab = Lab::start(Initiator::WireguardGo, false);
    lab.ping_until_answered(false);
    // wireguard-go's side "roams": its underlay address changes (NAT
    // rebinding, a new LTE lease). Its next packet comes from the new one.
    let moved = "10.99.0.3";
    lab.wggo_ns.ip([
        "addr",
        "del",
        &format!("{WGGO_UNDERLAY}/24"),
        "dev",
        "veth0",
    ]);
    lab.wggo_ns
        .ip(["addr", "add", &format!("{moved}/24"), "dev", "veth0"]);
    // wireguard-go 0.0.20220316 keeps sending from its cached ("sticky")
    // source address after that address is gone; setting its endpoint again
    // clears the cache. Nothing changes on Pisek's side.
    lab.wggo_ns.exec(
        "wg",
        [
            "set",
            &lab.wggo_if,
            "peer",
            &lab.pisek_pub,
            "endpoint",
            &format!("{PISEK_UNDERLAY}:{PORT}"),
        ],
    );
    lab.ping_until_answered(false);
    assert!(lab.pisek_pings_wggo(), "Pisek answers at the new endpoint");
    let (peer, _) = lab.status();
    assert_eq!(field(&peer, "endpoint"), format!("{moved}:{PORT}"));
    assert_eq!(field(&peer, "endpoint_changes"), "1");

    // Now Pisek's side moves; wireguard-go learns it from Pisek's packets.
    lab.pisek_ns.ip([
        "addr",
        "del",
        &format!("{PISEK_UNDERLAY}/24"),
        "dev",
        "veth0",
    ]);
    lab.pisek_ns
        .ip(["addr", "add", "10.99.0.4/24", "dev", "veth0"]);
    lab.ping_until_answered(true);
    let shown = lab.wggo_ns.exec("wg", ["show", &lab.wggo_if, "endpoints"]);
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains(&format!("10.99.0.4:{PORT}")),
        "wireguard-go learned Pisek's new endpoint"
    );
}

#[test]
fn a_peer_with_the_wrong_key_gets_nothing_through() {
    if !require("wg_interop", &["wireguard-go", "wg", "ping"]) {
        return;
    }
    let mut lab = Lab::start(Initiator::WireguardGo, true);
    // wireguard-go initiates with a key Pisek does not know: dropped and
    // counted, never answered.
    poll_until("Pisek to count the stranger's handshakes", TIMEOUT, || {
        let _ = lab.wggo_pings_pisek();
        let (_, interface) = lab.status();
        interface.contains("unknown_peer=").then_some(())
    });
    assert!(!lab.wggo_pings_pisek());
    let (peer, _) = lab.status();
    assert_eq!(field(&peer, "rx_packets"), "0");
    assert_eq!(field(&peer, "handshakes"), "0");
    assert!(
        !lab.pisek_pings_wggo(),
        "nothing back either: no endpoint, no session"
    );
}

#[test]
fn a_replayed_data_packet_is_dropped() {
    if !require(
        "wg_interop",
        &["wireguard-go", "wg", "ping", "python3", "tshark"],
    ) {
        return;
    }
    let mut lab = Lab::start(Initiator::Pisek, false);
    lab.ping_until_answered(true);
    // Capture one data message (type 4) that wireguard-go sends to Pisek.
    let capture = lab
        .pisek_ns
        .command("tshark")
        .args([
            "-i",
            "veth0",
            "-c",
            "1",
            "-f",
            &format!("udp and src host {WGGO_UNDERLAY} and udp[8] = 4 and greater 100"),
            "-T",
            "fields",
            "-e",
            "udp.payload",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tshark");
    // Keep traffic flowing until tshark has its packet.
    let out = {
        let mut capture = capture;
        poll_until("tshark to capture a data message", TIMEOUT, || {
            let _ = lab.wggo_pings_pisek();
            capture.try_wait().ok().flatten().map(|_| ())
        });
        capture.wait_with_output().expect("tshark output")
    };
    let hex: String = String::from_utf8_lossy(&out.stdout).trim().replace(':', "");
    assert!(hex.starts_with("04000000"), "a data message: {hex}");
    let (before, _) = lab.status();
    let replay = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.sendto(bytes.fromhex('{hex}'), ('{PISEK_UNDERLAY}', {PORT}))\n"
    );
    lab.wggo_ns.exec("python3", ["-c", &replay]);
    let after = poll_until("Pisek to count the replay", TIMEOUT, || {
        let (peer, _) = lab.status();
        peer.contains("replay=1").then_some(peer)
    });
    assert_eq!(
        field(&after, "rx_packets"),
        field(&before, "rx_packets"),
        "the replayed packet was not delivered"
    );
    assert_eq!(
        field(&after, "endpoint"),
        format!("{WGGO_UNDERLAY}:{PORT}"),
        "a replay does not move the endpoint"
    );
}

#[test]
fn traffic_fails_over_to_the_backup_edge_and_back() {
    if !require("wg_interop", &["wireguard-go", "wg", "ping"]) {
        return;
    }
    // One gateway (Pisek), two edges (wireguard-go) that both serve the
    // datacenter address 10.9.0.2, each on its own link.
    let dir = TempDir::new("wgf");
    let gw = Netns::new("wfg");
    let edges = [Netns::new("wf1"), Netns::new("wf2")];
    veth_pair(
        &gw,
        "veth1",
        "10.99.1.1/24",
        &edges[0],
        "veth0",
        "10.99.1.2/24",
    );
    veth_pair(
        &gw,
        "veth2",
        "10.99.2.1/24",
        &edges[1],
        "veth0",
        "10.99.2.2/24",
    );
    let (gw_key, gw_pub) = wg_genkey(&dir.path, "gw.key");
    let mut edge_pubs = Vec::new();
    let mut edge_procs = Vec::new();
    for (i, ns) in edges.iter().enumerate() {
        let (key, public) = wg_genkey(&dir.path, &format!("edge{i}.key"));
        edge_pubs.push(public);
        let ifname = pisek_lab::unique_tag("wgf");
        let child = start_wireguard_go(ns, &ifname);
        ns.exec(
            "wg",
            [
                "set",
                &ifname,
                "private-key",
                &key,
                "listen-port",
                PORT,
                "peer",
                &gw_pub,
                "allowed-ips",
                "10.9.0.1/32",
            ],
        );
        ns.ip(["addr", "add", "10.9.0.2/24", "dev", &ifname]);
        ns.ip(["link", "set", &ifname, "mtu", "1420", "up"]);
        edge_procs.push(WireguardGo { child, ifname });
    }
    let mut pisek = gw
        .command(workspace_binary("examples/wg_peer"))
        .args([
            "--key-file",
            &gw_key,
            "--listen",
            &format!("0.0.0.0:{PORT}"),
            "--tun",
            "pwg0",
            "--address",
            "10.9.0.1/24",
            "--peer",
            &edge_pubs[0],
            "--peer-endpoint",
            &format!("10.99.1.2:{PORT}"),
            "--backup-peer",
            &edge_pubs[1],
            "--backup-endpoint",
            &format!("10.99.2.2:{PORT}"),
            "--allowed-ips",
            "10.9.0.2/32",
            "--failover-after-ms",
            "1000",
            "--probe-interval-ms",
            "500",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start wg_peer");
    let mut stdin = pisek.stdin.take().expect("stdin");
    let lines = read_lines(pisek.stdout.take().expect("stdout"));
    let _pisek = KillOnDrop(pisek);
    let ping = || {
        poll_until("a ping to the datacenter", TIMEOUT, || {
            gw.ping_once("10.9.0.2").then_some(())
        })
    };
    let peer_line = |peers: &[String], i: usize| -> String {
        peers
            .iter()
            .find(|l| l.contains(edge_pubs[i].as_str()))
            .cloned()
            .expect("a status line for the edge")
    };

    // Both edges up: traffic goes to the preferred one.
    ping();
    let (peers, _) = status_of(&mut stdin, &lines);
    assert_ne!(field(&peer_line(&peers, 0), "tx_packets"), "0");
    assert_eq!(field(&peer_line(&peers, 1), "tx_packets"), "0");

    // Edge 1 stops answering; once our handshake to it goes unanswered
    // (forced right away with `rekey` instead of waiting 15 s for
    // WireGuard's own "no reply" rule), traffic moves to edge 2.
    edges[0].ip(["link", "set", "veth0", "down"]);
    writeln!(stdin, "rekey").expect("write to wg_peer");
    ping();
    let (peers, _) = status_of(&mut stdin, &lines);
    assert_eq!(field(&peer_line(&peers, 0), "health"), "Down");
    assert_ne!(field(&peer_line(&peers, 1), "rx_packets"), "0");

    // Edge 1 returns and answers a probe: traffic goes back to it.
    edges[0].ip(["link", "set", "veth0", "up"]);
    poll_until("edge 1 to answer a probe", TIMEOUT, || {
        let (peers, _) = status_of(&mut stdin, &lines);
        (field(&peer_line(&peers, 0), "health") == "Up").then_some(())
    });
    let (peers, _) = status_of(&mut stdin, &lines);
    let before: u64 = field(&peer_line(&peers, 0), "tx_packets").parse().unwrap();
    ping();
    let (peers, _) = status_of(&mut stdin, &lines);
    let after: u64 = field(&peer_line(&peers, 0), "tx_packets").parse().unwrap();
    assert!(after > before, "traffic is back on edge 1");
    drop(edge_procs);
}

/// Starts wireguard-go in `ns` on interface `ifname` and waits for the
/// interface to appear.
fn start_wireguard_go(ns: &Netns, ifname: &str) -> Child {
    let child = ns
        .command("wireguard-go")
        .arg(ifname)
        .env("WG_PROCESS_FOREGROUND", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start wireguard-go");
    poll_until("wireguard-go's interface", TIMEOUT, || {
        ns.command("ip")
            .args(["link", "show", ifname])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()
            .filter(|s| s.success())
    });
    child
}

/// The lines of `stdout`, read on a thread of their own.
fn read_lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    lines
}

/// A wireguard-go process, stopped with SIGTERM (so it removes its control
/// socket) when dropped.
struct WireguardGo {
    child: Child,
    ifname: String,
}

impl Drop for WireguardGo {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = poll_until_exit(&mut self.child);
        let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", self.ifname));
    }
}

/// A child process killed when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
