//! Two forwarding workers per agent (`dataplane.workers = 2`): the tenant
//! TUNs are multi-queue, the kernel spreads the flows over the queues, and
//! each worker forwards its queue.
//!
//! Proves: sixteen UDP flows sent at once from a workload on gw1 to one on
//! gw2 arrive with every flow's datagrams in the order they were sent, and
//! the second worker on gw1 did forward (its thread ran while they passed);
//! then eight TCP connections (whose replies the first worker writes, so
//! the kernel steers them by the queue the agent picks) each deliver their
//! bytes intact and in order, with the second worker forwarding again.
//! Also: the tenant TUNs have the configured queue length.

use pisek_lab::{Lab, LabOptions, ReadyScript};
use std::time::{Duration, Instant};

/// Flows (source ports) and datagrams per flow.
const FLOWS: usize = 16;
const PER_FLOW: usize = 3000;

/// Every tenant TUN (`pisek-t<id>`) in `netns` has the queue length
/// `len` (`dataplane.tun_queue_len`, its default here).
fn assert_tenant_queue_len(netns: &str, len: u64) {
    let out = std::process::Command::new("ip")
        .args(["-n", netns, "-j", "link", "show"])
        .output()
        .expect("ip runs");
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j prints JSON");
    let tenants: Vec<(String, u64)> = links
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| Some((l["ifname"].as_str()?.to_string(), l["txqlen"].as_u64()?)))
        .filter(|(name, _)| name.starts_with("pisek-t"))
        .collect();
    assert!(!tenants.is_empty(), "no tenant TUN in {netns}");
    for (name, qlen) in tenants {
        assert_eq!(qlen, len, "{name}'s queue length in {netns}");
    }
}

/// Nanoseconds on a CPU of the thread named `name` of process `pid`
/// (`/proc/<pid>/task/<tid>/schedstat`, first field).
fn thread_runtime_ns(pid: u32, name: &str) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            return stat.split_whitespace().next()?.parse().ok();
        }
    }
    None
}

#[test]
fn two_workers_keep_every_flow_in_order() {
    if !pisek_lab::require(
        "two_workers_keep_every_flow_in_order",
        &["ip", "python3", "sysctl"],
    ) {
        return;
    }
    let tag = pisek_lab::unique_tag("dw");
    let options = LabOptions {
        workers: 2,
        ..LabOptions::default()
    };
    let lab = Lab::start_opts(&tag, pisek_lab::lab_binaries(), options).expect("the lab starts");
    lab.wait_until_ready(Duration::from_secs(30))
        .expect("peers, sessions and routes come up");
    let from = lab.workload("gw1", "city", 1).clone();
    let to = lab.workload("gw2", "city", 1).clone();
    let gw1 = lab.nodes.iter().find(|n| n.name == "gw1").expect("gw1");
    let pid = gw1.agent_pid().expect("gw1's agent runs");
    let before = thread_runtime_ns(pid, "pisek-fwd-1").expect("gw1 runs a second worker");
    assert_tenant_queue_len(&gw1.netns, 1000);

    // The receiver counts, per flow, datagrams whose sequence number is
    // not above the last one seen (a reordering), until 2 s of silence.
    let receiver = format!(
        "import socket,json\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF,1<<24)\n\
         s.bind(('{to}',6000)); print('ready',flush=True); s.settimeout(10)\n\
         last={{}}; got=0; late=0\n\
         while True:\n\
         \x20 try: b=s.recv(2048)\n\
         \x20 except socket.timeout: break\n\
         \x20 s.settimeout(2); f=int.from_bytes(b[0:4],'big'); q=int.from_bytes(b[4:8],'big')\n\
         \x20 got+=1\n\
         \x20 if q<=last.get(f,-1): late+=1\n\
         \x20 last[f]=max(q,last.get(f,-1))\n\
         print(json.dumps({{'got':got,'late':late,'flows':len(last)}}))",
        to = to.address
    );
    let mut server = ReadyScript::start(&to.netns, &receiver);

    // Flows interleaved datagram by datagram, so both queues are busy at
    // once; 64-byte payloads, flow number and sequence number in front.
    let sender = format!(
        "import socket,time\n\
         ss=[socket.socket(socket.AF_INET,socket.SOCK_DGRAM) for _ in range({FLOWS})]\n\
         pad=bytes(56)\n\
         for q in range({PER_FLOW}):\n\
         \x20 for f,s in enumerate(ss):\n\
         \x20   s.sendto(f.to_bytes(4,'big')+q.to_bytes(4,'big')+pad,('{to}',6000))\n\
         \x20 if q%100==99: time.sleep(0.002)\n",
        to = to.address
    );
    let started = Instant::now();
    lab.python(&from.netns, &sender);
    let result = server.line();
    server.wait();
    let result: serde_json::Value = serde_json::from_str(&result).expect("receiver JSON");
    eprintln!("{result} in {:?}", started.elapsed());
    let got = result["got"].as_u64().unwrap_or(0);
    assert_eq!(
        result["late"].as_u64(),
        Some(0),
        "a flow was reordered: {result}"
    );
    assert_eq!(
        result["flows"].as_u64(),
        Some(FLOWS as u64),
        "every flow arrived: {result}"
    );
    assert!(
        got >= (FLOWS * PER_FLOW / 2) as u64,
        "most datagrams arrived: {result}"
    );
    let before = second_worker_forwarded(pid, before, "UDP");

    let (sent, received) = tcp_connections(&lab, &from.netns, &to.netns, &to.address.to_string());
    assert_eq!(sent.len(), TCP_CONNECTIONS, "{sent:?}");
    assert_eq!(
        sent, received,
        "every connection's bytes arrive intact and in order"
    );
    second_worker_forwarded(pid, before, "TCP");
}

/// Asserts gw1's second worker (`pisek-fwd-1`) spent more than 2 ms on a
/// CPU since `before` (its CPU time then), and returns its CPU time now.
/// Idle, the worker wakes every 100 ms for microseconds; forwarding its
/// share of the test's traffic takes milliseconds.
fn second_worker_forwarded(pid: u32, before: u64, what: &str) -> u64 {
    let after = thread_runtime_ns(pid, "pisek-fwd-1").expect("the second worker still runs");
    eprintln!(
        "gw1's second worker during {what}: {} ms on a CPU",
        (after - before) / 1_000_000
    );
    assert!(
        after - before > 2_000_000,
        "the second worker forwarded no {what} ({} ns on a CPU)",
        after - before
    );
    after
}

/// TCP connections, one after the other.
const TCP_CONNECTIONS: usize = 8;

/// Sends 2 MB of pseudo-random bytes over each of [`TCP_CONNECTIONS`]
/// connections from `from` to `to` (netns) at `to_addr`; the SHA-256 of
/// each as sent and as received.
fn tcp_connections(lab: &Lab, from: &str, to: &str, to_addr: &str) -> (Vec<String>, Vec<String>) {
    let server = format!(
        "import socket,hashlib\n\
         s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('{to_addr}',5002)); s.listen(8); print('ready',flush=True)\n\
         for _ in range({TCP_CONNECTIONS}):\n\
         \x20 c,_=s.accept(); h=hashlib.sha256()\n\
         \x20 while True:\n\
         \x20   b=c.recv(65536)\n\
         \x20   if not b: break\n\
         \x20   h.update(b)\n\
         \x20 print(h.hexdigest(),flush=True)"
    );
    let mut receiver = ReadyScript::start(to, &server);
    let client = format!(
        "import socket,hashlib,random\n\
         for i in range({TCP_CONNECTIONS}):\n\
         \x20 data=random.Random(i).randbytes(2000000)\n\
         \x20 c=socket.create_connection(('{to_addr}',5002),timeout=10); c.sendall(data); c.close()\n\
         \x20 print(hashlib.sha256(data).hexdigest())"
    );
    let sent = lab.python(from, &client);
    let mut received = Vec::new();
    for _ in 0..TCP_CONNECTIONS {
        received.push(receiver.line());
    }
    receiver.wait();
    (sent.lines().map(str::to_string).collect(), received)
}
