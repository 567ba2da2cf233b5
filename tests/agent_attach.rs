//! The agent's attach API against the real kernel: a `pisek-agent` runs in a
//! namespace the test makes to play the host, and attaches other namespaces
//! (the workloads) through its Unix socket, as the CNI plugin and `pisekctl
//! attach` do. What is checked is what an operator would check: `ip addr`,
//! `ip route`, `ip rule` in the namespaces, pings between workloads, packet
//! counters, and the state file.
//!
//! Needs root and iproute2; the agent and pisekctl binaries come from the
//! workspace build (`cargo test --workspace` builds them).
use pisek_agent::config::Role;
use pisek_agent::config::fixture::{AgentToml, TenantToml, write_test_key};
use pisek_api::{ApiClient, Attachment, ClientError, Request};
use pisek_lab::{Netns, TempDir, poll_until, require, workspace_binary};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

/// Tenants of the test agent: `city` dual stack, `conference` and `plaza`
/// (IPv4 only) overlapping `city`'s IPv4 prefix, and `tiny` with room for two
/// workloads.
fn tenants() -> [TenantToml; 4] {
    [
        TenantToml::new("city", 1).prefixes(["10.1.1.0/24", "fd00:1:1::/64"]),
        TenantToml::new("conference", 2).prefixes(["10.1.1.0/24"]),
        TenantToml::new("plaza", 4).prefixes(["10.1.1.0/24"]),
        TenantToml::new("tiny", 3).prefixes(["10.9.9.0/30"]),
    ]
}

const CITY_TABLE: &str = "100001";

/// A pisek-agent in its own "host" namespace, with its config and state in a
/// temp dir. Dropping it kills the agent and removes the namespace, and with
/// it every host-side veth, route and rule.
struct Agent {
    host: Netns,
    dir: TempDir,
    child: Option<Child>,
    /// The state directory is a tiny tmpfs in the agent's own mount namespace.
    tiny_state_fs: bool,
}

impl Agent {
    fn start(tag: &str) -> Agent {
        Agent::start_with(tag, false)
    }

    /// An agent whose state directory is a 16 KiB tmpfs, mounted in a mount
    /// namespace of its own (so the machine's mounts are untouched and the
    /// mount goes away with the agent): a disk that fills up. Propagation is
    /// `slave` so the namespaces the test adds later (bind mounts under
    /// /run/netns) still show up for the agent.
    fn start_with_full_disk(tag: &str) -> Agent {
        Agent::start_with(tag, true)
    }

    fn start_with(tag: &str, tiny_state_fs: bool) -> Agent {
        let host = Netns::new(tag);
        let dir = TempDir::new(tag);
        let key = dir.path.join("wg.key");
        write_test_key(&key).expect("key");
        let config = tenants().into_iter().fold(
            AgentToml::new(format!("test-{tag}"), Role::Edge, "10.255.0.1", &key)
                .api_socket(dir.path.join("agent.sock"))
                .state_dir(dir.path.join("state")),
            AgentToml::tenant,
        );
        config.write(&dir.path.join("agent.toml")).expect("config");
        let mut agent = Agent {
            host,
            dir,
            child: None,
            tiny_state_fs,
        };
        agent.run();
        agent
    }

    /// Starts (or restarts) the agent process and waits for its socket.
    fn run(&mut self) {
        let binary = agent_binary("pisek-agent");
        let config = self.dir.path.join("agent.toml");
        let mut command = if self.tiny_state_fs {
            let state = self.dir.path.join("state");
            std::fs::create_dir_all(&state).expect("state dir");
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "slave", "sh", "-c"])
                .arg(r#"mount -t tmpfs -o size=16k,mode=0700 pisek-test "$0" && exec ip netns exec "$1" "$2" --config "$3""#)
                .arg(&state)
                .arg(&self.host.name)
                .arg(&binary)
                .arg(&config);
            c
        } else {
            let mut c = self.host.command(&binary);
            c.arg("--config").arg(&config);
            c
        };
        let child = command
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("start pisek-agent");
        self.child = Some(child);
        let socket = self.socket();
        poll_until("the agent's API socket", Duration::from_secs(10), || {
            ApiClient::connect(&socket).ok().map(|_| ())
        });
    }

    /// Stops the agent with SIGTERM and waits for it to exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let status = child.wait().expect("wait for the agent");
            assert!(status.success(), "agent exited with {status}");
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path.join("agent.sock")
    }

    fn state_file(&self) -> PathBuf {
        self.dir
            .path
            .join("state")
            .join("run")
            .join("attachments.json")
    }

    fn client(&self) -> ApiClient {
        ApiClient::connect(&self.socket()).expect("connect to the agent")
    }

    fn attach_as(
        &self,
        container_id: &str,
        ns: &Path,
        tenant: &str,
    ) -> Result<Attachment, ClientError> {
        self.attach_requesting(container_id, ns, tenant, &[])
    }

    /// Attach with requested addresses.
    fn attach_requesting(
        &self,
        container_id: &str,
        ns: &Path,
        tenant: &str,
        addresses: &[&str],
    ) -> Result<Attachment, ClientError> {
        self.client().call(&Request::Attach {
            container_id: container_id.into(),
            netns: ns.to_path_buf(),
            ifname: "eth0".into(),
            tenant: tenant.into(),
            addresses: addresses
                .iter()
                .map(|a| a.parse().expect("address"))
                .collect(),
            mtu: None,
            owner: None,
        })
    }

    fn attach(&self, ns: &Netns, tenant: &str) -> Attachment {
        self.attach_as(&ns.name, &ns.path(), tenant)
            .unwrap_or_else(|e| panic!("attach {} to {tenant}: {e}", ns.name))
    }

    fn detach(&self, ns: &Netns) {
        let _: serde_json::Value = self
            .client()
            .call(&Request::Detach {
                container_id: ns.name.clone(),
                ifname: "eth0".into(),
            })
            .unwrap_or_else(|e| panic!("detach {}: {e}", ns.name));
    }

    /// `ip ARGS` in the host namespace, stdout as text.
    fn ip(&self, args: &[&str]) -> String {
        text(&self.host.ip(args).stdout)
    }

    /// The host-side workload interfaces (`pk...`).
    fn host_veths(&self) -> Vec<String> {
        self.ip(&["-o", "link", "show"])
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .filter(|n| n.starts_with("pk"))
            .collect()
    }

    /// The `iif` rules of both families that attachments made (the data
    /// plane's own `iif pisek-t<N>` rules of the tenant TUNs stay).
    fn iif_rules(&self) -> Vec<String> {
        let mut rules = self.ip(&["rule", "show"]);
        rules.push_str(&self.ip(&["-6", "rule", "show"]));
        rules
            .lines()
            .filter(|l| l.contains("iif") && !l.contains("iif pisek-t"))
            .map(str::to_string)
            .collect()
    }

    fn state(&self) -> serde_json::Value {
        let text = if self.tiny_state_fs {
            // Only visible in the agent's mount namespace.
            let pid = self.child.as_ref().expect("agent running").id().to_string();
            let out = Command::new("nsenter")
                .args(["-t", &pid, "-m", "cat"])
                .arg(self.state_file())
                .output()
                .expect("nsenter");
            assert!(
                out.status.success(),
                "cannot read the state: {}",
                text(&out.stderr)
            );
            text(&out.stdout)
        } else {
            std::fs::read_to_string(self.state_file()).expect("state file")
        };
        serde_json::from_str(&text).expect("state file is JSON")
    }

    fn leases(&self) -> Vec<String> {
        self.state()["leases"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Runs pisekctl against this agent.
    fn pisekctl(&self, args: &[&str]) -> String {
        let out = Command::new(agent_binary("pisekctl"))
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .output()
            .expect("run pisekctl");
        assert!(
            out.status.success(),
            "pisekctl {args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn agent_binary(name: &str) -> PathBuf {
    let path = workspace_binary(name);
    assert!(
        path.is_file(),
        "{} is missing: build it first (cargo test --workspace or cargo build -p pisek-agent)",
        path.display()
    );
    path
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A workload namespace with IPv6 off, so nothing but the test's own traffic
/// shows in its packet counters.
fn quiet_workload(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.exec("sysctl", ["-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
    ns.exec("sysctl", ["-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
    ns
}

/// Packets received on a workload's interface.
fn rx_packets(ns: &Netns) -> u64 {
    let out = ns.exec("cat", ["/sys/class/net/eth0/statistics/rx_packets"]);
    text(&out.stdout).trim().parse().expect("counter")
}

#[test]
fn attached_workloads_of_one_tenant_talk_through_the_kernel() {
    if !require(
        "attached_workloads_of_one_tenant_talk_through_the_kernel",
        &["ip", "ping"],
    ) {
        return;
    }
    let agent = Agent::start("at");
    let a = Netns::new("wa");
    let b = Netns::new("wb");
    let att_a = agent.attach(&a, "city");
    let att_b = agent.attach(&b, "city");
    assert_eq!(att_a.addresses, ["10.1.1.1/32", "fd00:1:1::1/128"]);
    assert_eq!(att_b.addresses, ["10.1.1.2/32", "fd00:1:1::2/128"]);
    assert_eq!(att_a.mtu, 1408, "1500 - WireGuard 60 - MPLSoUDP 32");

    // Inside the workload: the /32, the MTU, the link-local gateway.
    let addr = text(&a.ip(["addr", "show", "dev", "eth0"]).stdout);
    assert!(addr.contains("inet 10.1.1.1/32"), "{addr}");
    assert!(addr.contains("inet6 fd00:1:1::1/128"), "{addr}");
    assert!(addr.contains("mtu 1408"), "{addr}");
    let route = text(&a.ip(["route", "show"]).stdout);
    assert!(
        route.contains("default via 169.254.1.1 dev eth0"),
        "{route}"
    );
    assert!(route.contains("onlink"), "{route}");
    let route6 = text(&a.ip(["-6", "route", "show", "default"]).stdout);
    assert!(route6.contains("default via fe80::1 dev eth0"), "{route6}");
    let neigh = text(&a.ip(["neigh", "show", "169.254.1.1"]).stdout);
    assert!(neigh.contains("ee:ee:ee:ee:ee:ee PERMANENT"), "{neigh}");

    // On the host: the rule per family and the /32 in the tenant's table.
    let host_if = &att_a.host_ifname;
    let rules = agent.iif_rules();
    assert_eq!(
        rules
            .iter()
            .filter(|r| r.contains(&format!("iif {host_if} lookup {CITY_TABLE}")))
            .count(),
        2,
        "{rules:?}"
    );
    let table = agent.ip(&["route", "show", "table", CITY_TABLE]);
    assert!(
        table.contains(&format!("10.1.1.1 dev {host_if}")),
        "{table}"
    );
    assert!(table.contains("unreachable default"), "{table}");
    let main = agent.ip(&["route", "show"]);
    assert!(
        !main.contains("10.1.1."),
        "the main table stays untouched: {main}"
    );

    // Same node, same tenant: the kernel forwards between the veths.
    assert!(a.ping_once("10.1.1.2"), "IPv4 ping a -> b");
    assert!(b.ping_once("10.1.1.1"), "IPv4 ping b -> a");
    assert!(a.ping_once("fd00:1:1::2"), "IPv6 ping a -> b");

    // pisekctl sees both, in a table and as JSON.
    let table = agent.pisekctl(&["endpoints"]);
    let header = table.lines().next().unwrap_or_default();
    assert!(header.starts_with("CONTAINER"), "{table}");
    let column = header.find("ADDRESSES").expect("ADDRESSES column");
    for line in table.lines().skip(1) {
        assert_eq!(line.find("10.1.1."), Some(column), "aligned: {table}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&agent.pisekctl(&["endpoints", "--json"])).expect("json");
    assert_eq!(json.as_array().map(Vec::len), Some(2));
    let check = agent.pisekctl(&["check", "--container-id", &a.name]);
    assert!(check.contains(": ok"), "{check}");
    let routes = agent.pisekctl(&["routes", "--tenant", "city"]);
    let local = routes.lines().find(|l| l.contains("10.1.1.1/32"));
    assert!(
        local.is_some_and(|l| l.contains("local") && l.contains(host_if.as_str())),
        "{routes}"
    );
    // Every listing answers, as a table with a header and as JSON.
    for (command, header) in [
        ("status", "NODE"),
        ("vrfs", "TENANT"),
        ("routes", "TENANT"),
        ("peers", "PEER"),
        ("bgp", "NEIGHBOR"),
        ("drops", "REASON"),
    ] {
        let table = agent.pisekctl(&[command]);
        assert!(table.starts_with(header), "pisekctl {command}: {table}");
        let json = agent.pisekctl(&[command, "--json"]);
        serde_json::from_str::<serde_json::Value>(&json)
            .unwrap_or_else(|e| panic!("pisekctl {command} --json: {e}: {json}"));
    }

    // Detach leaves nothing behind: no veth, rule, route, lease or record.
    agent.detach(&a);
    agent.detach(&b);
    agent.detach(&b);
    // The veth pairs go just after the answer (the kernel's unregistering
    // takes tens of ms), and their records with them.
    poll_until(
        "the detached veth pairs deleted",
        Duration::from_secs(5),
        || {
            (agent.host_veths().is_empty() && agent.state()["endpoints"] == serde_json::json!({}))
                .then_some(())
        },
    );
    assert_eq!(agent.iif_rules(), Vec::<String>::new());
    // Only the tenant's own last-resort route, the data plane's default
    // into the tenant TUN and the node prefix's blackhole stay in its table.
    let table = agent.ip(&["route", "show", "table", CITY_TABLE]);
    assert_eq!(
        table.trim(),
        "default dev pisek-t1 proto static scope link \nunreachable default proto static metric 4278198272 \nblackhole 10.1.1.0/24 proto static",
        "{table}"
    );
    assert!(!text(&a.ip(["link", "show"]).stdout).contains("eth0"));
    assert_eq!(agent.leases(), Vec::<String>::new());
    assert_eq!(agent.state()["endpoints"], serde_json::json!({}));
}

#[test]
fn tenants_with_overlapping_addresses_exchange_no_packet() {
    if !require(
        "tenants_with_overlapping_addresses_exchange_no_packet",
        &["ip", "ping", "sysctl"],
    ) {
        return;
    }
    let agent = Agent::start("iso");
    // Quiet host: no IPv6 on the host veths, so counters only see test traffic.
    agent
        .host
        .exec("sysctl", ["-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
    let plaza: Vec<Netns> = (0..3).map(|_| quiet_workload("pl")).collect();
    let conf: Vec<Netns> = (0..2).map(|_| quiet_workload("co")).collect();
    for ns in &plaza {
        agent.attach(ns, "plaza");
    }
    for ns in &conf {
        let att = agent.attach(ns, "conference");
        assert!(att.addresses[0].starts_with("10.1.1."), "{att:?}");
    }
    // plaza: .1 .2 .3; conference: .1 .2 -- the same addresses.
    let before: Vec<u64> = plaza.iter().chain(&conf).map(rx_packets).collect();
    // Within each tenant the overlapping address reaches the own tenant's workload.
    assert!(
        conf[0].ping_once("10.1.1.2"),
        "conference .1 -> conference .2"
    );
    assert!(plaza[0].ping_once("10.1.1.2"), "plaza .1 -> plaza .2");
    // Across tenants nothing arrives: conference has no 10.1.1.3, plaza has.
    let out = conf[0]
        .command("ping")
        .args(["-c", "3", "-i", "0.2", "-w", "1", "10.1.1.3"])
        .output()
        .expect("ping");
    assert!(!out.status.success(), "conference reached plaza's .3");
    let after: Vec<u64> = plaza.iter().chain(&conf).map(rx_packets).collect();
    // plaza[1] (.2) and conf[1] (.2) each got exactly one ping from their own
    // tenant; plaza[2] (.3) got nothing from conference's three pings.
    assert_eq!(
        after[2], before[2],
        "plaza .3 received a packet from conference"
    );
    assert_eq!(after[1] - before[1], 1, "plaza .2 got only plaza's ping");
    assert_eq!(
        after[4] - before[4],
        1,
        "conference .2 got only conference's ping"
    );
}

#[test]
fn bad_requests_leave_no_interface_or_lease_behind() {
    if !require("bad_requests_leave_no_interface_or_lease_behind", &["ip"]) {
        return;
    }
    let agent = Agent::start("bad");

    // A malformed request: a clear JSON error, and the connection still works.
    let mut client = agent.client();
    let answer = client
        .send_line(b"{\"op\": \"attach\", \"netns\": 7}\n")
        .expect("answer");
    let error = answer.error.expect("an error");
    assert_eq!(error.code, "malformed_request");
    assert!(error.message.contains("invalid type"), "{error:?}");
    let answer = client.send_line(b"garbage\n").expect("answer");
    assert_eq!(answer.error.expect("an error").code, "malformed_request");

    // A namespace that does not exist.
    let missing = Path::new("/run/netns/pk-no-such-namespace");
    let err = agent
        .attach_as("ghost", missing, "city")
        .expect_err("no netns");
    assert!(
        matches!(&err, ClientError::Api(e) if e.code == "netns_not_found"),
        "{err}"
    );
    assert!(err.to_string().contains("pk-no-such-namespace"), "{err}");
    assert_eq!(agent.host_veths(), Vec::<String>::new());
    assert!(!agent.state_file().exists() || agent.leases().is_empty());

    // The same container id twice: the same result, one interface.
    let a = Netns::new("ba");
    let first = agent.attach(&a, "tiny");
    let again = agent.attach(&a, "tiny");
    assert_eq!(first, again);
    assert_eq!(agent.host_veths().len(), 1);
    // ... but not into another tenant or namespace.
    let err = agent
        .attach_as(&a.name, &a.path(), "city")
        .expect_err("other tenant");
    assert!(
        matches!(&err, ClientError::Api(e) if e.code == "already_attached"),
        "{err}"
    );

    // A full range: tiny has two addresses.
    let b = Netns::new("bb");
    agent.attach(&b, "tiny");
    let c = Netns::new("bc");
    let err = agent
        .attach_as(&c.name, &c.path(), "tiny")
        .expect_err("full");
    assert!(
        matches!(&err, ClientError::Api(e) if e.code == "ipam_exhausted"),
        "{err}"
    );
    assert!(err.to_string().contains("10.9.9.0/30"), "{err}");
    assert_eq!(agent.host_veths().len(), 2);
    assert!(!text(&c.ip(["link", "show"]).stdout).contains("eth0"));
    assert_eq!(agent.leases().len(), 2, "{:?}", agent.leases());

    // A failure half-way (the namespace already has an eth0): rolled back.
    let d = Netns::new("bd");
    d.ip([
        "link", "add", "eth0", "type", "veth", "peer", "name", "other0",
    ]);
    let err = agent
        .attach_as(&d.name, &d.path(), "city")
        .expect_err("eth0 taken");
    assert!(
        matches!(&err, ClientError::Api(e) if e.code == "interface_exists"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("already has an interface named eth0"),
        "{err}"
    );
    assert_eq!(agent.host_veths().len(), 2, "no half-made veth");
    let d_links = text(&d.ip(["-o", "link", "show"]).stdout);
    assert_eq!(
        d_links.lines().count(),
        3,
        "only lo and its own pair: {d_links}"
    );
    assert_eq!(agent.leases().len(), 2, "no lease for the failed attach");
    assert_eq!(
        agent.iif_rules().len(),
        2,
        "tiny's two rules only: {:?}",
        agent.iif_rules()
    );
}

#[test]
fn agent_restart_keeps_interfaces_and_addresses() {
    if !require(
        "agent_restart_keeps_interfaces_and_addresses",
        &["ip", "ping"],
    ) {
        return;
    }
    let mut agent = Agent::start("rs");
    let a = Netns::new("ra");
    let b = Netns::new("rb");
    let att_a = agent.attach(&a, "city");
    agent.attach(&b, "city");
    agent.stop();
    // With the agent gone, the kernel keeps forwarding.
    assert!(a.ping_once("10.1.1.2"), "ping while the agent is down");
    agent.run();
    let endpoints: Vec<Attachment> = agent.client().call(&Request::Endpoints).expect("endpoints");
    assert_eq!(endpoints.len(), 2);
    assert_eq!(
        agent.attach(&a, "city"),
        att_a,
        "same addresses and interface after restart"
    );
    let check = agent.pisekctl(&["check", "--container-id", &b.name]);
    assert!(check.contains(": ok"), "{check}");
    // The VRF labels were allocated once and survive the restart.
    let vrfs = agent.pisekctl(&["vrfs", "--json"]);
    let vrfs: serde_json::Value = serde_json::from_str(&vrfs).expect("json");
    assert_eq!(vrfs[0]["label"], 16);
    assert_eq!(vrfs[1]["label"], 17);
}

#[test]
fn gc_detaches_what_the_runtime_no_longer_has() {
    if !require("gc_detaches_what_the_runtime_no_longer_has", &["ip"]) {
        return;
    }
    let agent = Agent::start("gc");
    let keep = Netns::new("gk");
    let gone = Netns::new("gg");
    let kept = agent.attach(&keep, "city");
    let dropped = agent.attach(&gone, "city");
    let released: serde_json::Value = agent
        .client()
        .call(&Request::Gc {
            valid_attachments: vec![pisek_agent::ipam::WorkloadKey::new(
                keep.name.clone(),
                "eth0",
            )],
            owner: None,
        })
        .expect("gc");
    assert_eq!(released["released"][0]["container_id"], gone.name.as_str());
    assert_eq!(agent.host_veths(), vec![kept.host_ifname.clone()]);
    assert!(!agent.host_veths().contains(&dropped.host_ifname));
    assert_eq!(agent.leases(), vec![format!("{}/eth0", keep.name)]);
}

#[test]
fn attachments_interrupted_by_a_crash_are_removed_on_start() {
    if !require(
        "attachments_interrupted_by_a_crash_are_removed_on_start",
        &["ip"],
    ) {
        return;
    }
    let mut agent = Agent::start("cr");
    let a = Netns::new("ca");
    let b = Netns::new("cb");
    let c = Netns::new("cc");
    let d = Netns::new("cd");
    let att_a = agent.attach(&a, "city");
    let att_b = agent.attach(&b, "city");
    let att_c = agent.attach(&c, "city");
    let att_d = agent.attach(&d, "city");
    agent.stop();
    // Make the state look as if the agent died in the middle of attaching b
    // (record in phase `attaching`, as older agents wrote before the
    // objects), after answering the detach of c (lease released, record
    // `detaching`, rules and veth not yet deleted), and while attaching d
    // (objects made, its one write not done: no record, no lease).
    let mut state = agent.state();
    let key = |ns: &Netns| format!("{}/eth0", ns.name);
    state["endpoints"][&key(&b)]["phase"] = "attaching".into();
    state["endpoints"][&key(&c)]["phase"] = "detaching".into();
    if let Some(endpoints) = state["endpoints"].as_object_mut() {
        endpoints.remove(&key(&d));
    }
    if let Some(leases) = state["leases"].as_object_mut() {
        leases.remove(&key(&c));
        leases.remove(&key(&d));
    }
    std::fs::write(agent.state_file(), state.to_string()).expect("write state");
    agent.run();
    // b, c and d are gone entirely; a is adopted untouched.
    assert_eq!(agent.host_veths(), vec![att_a.host_ifname.clone()]);
    for gone in [&att_b, &att_c, &att_d] {
        assert!(
            !agent
                .iif_rules()
                .iter()
                .any(|r| r.contains(&gone.host_ifname)),
            "{:?}",
            agent.iif_rules()
        );
    }
    assert_eq!(agent.leases(), vec![key(&a)]);
    assert_eq!(
        agent.state()["endpoints"]
            .as_object()
            .map(|e| e.keys().cloned().collect::<Vec<_>>()),
        Some(vec![key(&a)])
    );
    assert!(!text(&b.ip(["link", "show"]).stdout).contains("eth0"));
    assert!(!text(&c.ip(["link", "show"]).stdout).contains("eth0"));
    assert!(!text(&d.ip(["link", "show"]).stdout).contains("eth0"));
    let check = agent.pisekctl(&["check", "--container-id", &a.name]);
    assert!(check.contains(": ok"), "{check}");
    // b attaches again cleanly and gets the released address back.
    assert_eq!(agent.attach(&b, "city").addresses, att_b.addresses);
}

#[test]
fn full_disk_loses_no_allocation_and_leaks_nothing() {
    if !require(
        "full_disk_loses_no_allocation_and_leaks_nothing",
        &["ip", "unshare", "nsenter", "mount"],
    ) {
        return;
    }
    let agent = Agent::start_with_full_disk("fd");
    let mut workloads = Vec::new();
    // Attach until the state no longer fits (16 KiB: the state file and its
    // temporary copy need pages of their own).
    let refused = loop {
        let ns = Netns::new("fw");
        match agent.attach_as(&ns.name, &ns.path(), "city") {
            Ok(_) => workloads.push(ns),
            Err(e) => break (ns, e),
        }
        assert!(workloads.len() < 200, "the state never filled the disk");
    };
    let (ns, err) = refused;
    assert!(
        matches!(&err, ClientError::Api(e) if e.code == "state"),
        "{err}"
    );
    assert!(err.to_string().contains("No space left on device"), "{err}");
    // Every earlier attachment is still recorded; the refused one left nothing.
    let leases = agent.leases();
    assert_eq!(leases.len(), workloads.len(), "{leases:?}");
    assert!(!leases.contains(&format!("{}/eth0", ns.name)));
    assert_eq!(agent.host_veths().len(), workloads.len());
    assert!(!text(&ns.ip(["link", "show"]).stdout).contains("eth0"));
    // The agent still answers, and the attached workloads still work.
    let endpoints: Vec<Attachment> = agent.client().call(&Request::Endpoints).expect("endpoints");
    assert_eq!(endpoints.len(), workloads.len());
    assert!(workloads[0].ping_once("10.1.1.2"));
}

/// The API error code of a failed call.
fn code(err: &ClientError) -> &str {
    match err {
        ClientError::Api(e) => &e.code,
        _ => "",
    }
}

#[test]
fn requested_addresses_are_leased_exactly_or_refused_leaving_nothing_behind() {
    if !require(
        "requested_addresses_are_leased_exactly_or_refused_leaving_nothing_behind",
        &["ip", "ping"],
    ) {
        return;
    }
    let agent = Agent::start("rq");
    let a = Netns::new("qa");
    let b = Netns::new("qb");
    let c = Netns::new("qc");

    // Inside city's prefix: exactly that IPv4 address; IPv6 still allocated.
    let att_a = agent
        .attach_requesting(&a.name, &a.path(), "city", &["10.1.1.50"])
        .expect("attach a");
    assert_eq!(att_a.addresses, ["10.1.1.50/32", "fd00:1:1::1/128"]);
    let addr = text(&a.ip(["addr", "show", "dev", "eth0"]).stdout);
    assert!(addr.contains("inet 10.1.1.50/32"), "{addr}");

    // Taken, reserved, two of a family, a family city routes nowhere:
    // each refused with its code, nothing made, nothing leased.
    for (tenant, addresses, expected) in [
        ("city", &["10.1.1.50"][..], "address_in_use"),
        ("city", &["10.1.1.0"], "address_reserved"),
        ("city", &["169.254.1.1"], "address_reserved"),
        ("city", &["10.1.9.5", "10.1.9.6"], "invalid_request"),
        ("tiny", &["fd00:9::5"], "ipam"),
    ] {
        let err = agent
            .attach_requesting(&b.name, &b.path(), tenant, addresses)
            .expect_err("refused");
        assert_eq!(code(&err), expected, "{addresses:?}: {err}");
    }
    assert_eq!(agent.host_veths(), vec![att_a.host_ifname.clone()]);
    assert_eq!(agent.leases(), vec![format!("{}/eth0", a.name)]);
    assert!(!text(&b.ip(["link", "show"]).stdout).contains("eth0"));
    // Another tenant has its own addresses: the same one is free there.
    let att_b = agent
        .attach_requesting(&b.name, &b.path(), "conference", &["10.1.1.50"])
        .expect("the same address in conference");
    assert_eq!(att_b.addresses, ["10.1.1.50/32"]);

    // A stray address: the host route to the veth in city's table; the
    // kernel delivers between it and a's address on this node.
    let att_c = agent
        .attach_requesting(&c.name, &c.path(), "city", &["10.1.9.5"])
        .expect("attach stray");
    assert_eq!(att_c.addresses, ["10.1.9.5/32", "fd00:1:1::2/128"]);
    let table = agent.ip(&["route", "show", "table", CITY_TABLE]);
    assert!(
        table.contains(&format!("10.1.9.5 dev {}", att_c.host_ifname)),
        "{table}"
    );
    assert!(a.ping_once("10.1.9.5"), "a -> stray c");
    // Idempotent with the same request; another address is a conflict.
    assert_eq!(
        agent
            .attach_requesting(&c.name, &c.path(), "city", &["10.1.9.5"])
            .expect("again"),
        att_c
    );
    let err = agent
        .attach_requesting(&c.name, &c.path(), "city", &["10.1.9.6"])
        .expect_err("other address");
    assert_eq!(code(&err), "already_attached", "{err}");
    let check = agent.pisekctl(&["check", "--container-id", &c.name]);
    assert!(check.contains(": ok"), "{check}");

    // Detach releases the stray lease at once; its host route goes with
    // the veth pair, just after the answer (teardown.rs).
    agent.detach(&c);
    assert!(!agent.leases().contains(&format!("{}/eth0", c.name)));
    poll_until(
        "the stray's host route gone from city's table",
        Duration::from_secs(5),
        || {
            (!agent
                .ip(&["route", "show", "table", CITY_TABLE])
                .contains("10.1.9.5"))
            .then_some(())
        },
    );
}

#[test]
fn an_attach_right_after_a_detach_of_the_same_interface_gets_a_working_one() {
    if !require(
        "an_attach_right_after_a_detach_of_the_same_interface_gets_a_working_one",
        &["ip"],
    ) {
        return;
    }
    let agent = Agent::start("re");
    let ns = Netns::new("wr");
    let first = agent.attach(&ns, "city");
    let index = |name: &str| agent.ip(&["-o", "link", "show", name]);
    let first_link = index(&first.host_ifname);
    // The detach answers before the kernel has deleted the veth pair; the
    // attach that follows at once must wait for it, not adopt the dying
    // pair (same host name), and end with a new, working pair.
    agent.detach(&ns);
    let second = agent.attach(&ns, "city");
    assert_eq!(second.host_ifname, first.host_ifname);
    let ifindex = |line: &str| line.split(':').next().unwrap_or_default().to_string();
    assert_ne!(
        ifindex(&index(&second.host_ifname)),
        ifindex(&first_link),
        "a new pair, not the one being deleted"
    );
    let addr = text(&ns.ip(["addr", "show", "dev", "eth0"]).stdout);
    let v4 = second.addresses[0].trim_end_matches("/32");
    assert!(addr.contains(&format!("inet {v4}/32")), "{addr}");
    assert!(
        agent.host_veths().contains(&second.host_ifname),
        "{:?}",
        agent.host_veths()
    );
    agent.detach(&ns);
    poll_until("the veth pair deleted", Duration::from_secs(5), || {
        (agent.host_veths().is_empty() && agent.leases().is_empty()).then_some(())
    });
}
