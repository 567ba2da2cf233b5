//! The CNI plugin's test of record: pods run through containerd's CRI, the
//! path kubelet takes (`RunPodSandbox` -> containerd's CRI plugin -> libcni
//! -> `pisek-cni` -> the gateway's agent), on the two-gateway lab.
//!
//! Each gateway gets its own containerd (`pisek_lab::containerd`) whose CNI
//! network is `pisek-cni` chained with the reference `portmap`, and a test
//! CRI client calls it as kubelet does. Pods in the Kubernetes namespaces
//! `team-city` and `team-conference` land in those tenants, and one pod of
//! `team-city` carries the annotation `pisek.dev/tenant: conference`, which
//! wins. Proves: same-tenant pods ping each other from gw1 to gw2 over the
//! overlay and reach their tenant's datacenter service on the edge; nothing
//! crosses tenants although their prefixes overlap; after StopPodSandbox and
//! RemovePodSandbox nothing is left on the gateways (lease, host veth,
//! policy rule, route, the pod's netns file).

mod cri;

use cri::{Cri, PodSpec, sandbox_config};
use pisek_api::{ApiClient, Attachment, Request};
use pisek_lab::containerd::{CniNetwork, Containerd, SandboxImage, build_sandbox_image};
use pisek_lab::{Lab, TempDir, poll, require, unique_tag, workspace_binary};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The lab's gateways: (name, node index).
const GATEWAYS: [(&str, usize); 2] = [("gw1", 1), ("gw2", 2)];

/// The annotation that names a pod's tenant (docs/cni.md).
const TENANT_ANNOTATION: &str = "pisek.dev/tenant";

/// A running pod.
struct Pod {
    name: &'static str,
    tenant: &'static str,
    gateway: usize,
    id: String,
    address: Ipv4Addr,
    address_v6: Ipv6Addr,
    netns: PathBuf,
    /// The host end of its veth, from the agent's record.
    host_ifname: String,
}

/// The gateway's CNI network: the conflist of docs/cni.md with this
/// gateway's agent socket, `portmap` chained after Pisek.
fn pisek_network(agent_socket: &Path) -> CniNetwork {
    let plugin = workspace_binary("pisek-cni");
    assert!(
        plugin.is_file(),
        "{} is missing: cargo build -p pisek-cni",
        plugin.display()
    );
    let conflist = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "pisek",
        "plugins": [
            {
                "type": "pisek-cni",
                "agentSocket": agent_socket,
                "defaultTenant": "city",
                "namespaceTenants": {"team-city": "city", "team-conference": "conference"},
                "capabilities": {"io.kubernetes.cri.pod-annotations": true},
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ],
    });
    let mut plugins = vec![plugin];
    // loopback: containerd's CRI brings up every pod's lo with it.
    for reference in ["portmap", "bandwidth", "tuning", "loopback"] {
        plugins.push(Path::new("/usr/lib/cni").join(reference));
    }
    CniNetwork { conflist, plugins }
}

/// Starts containerd in each gateway's namespace and waits until its CRI
/// reports the runtime and the network ready.
fn start_runtimes(lab: &Lab, image: &SandboxImage) -> Vec<(Containerd, Cri)> {
    GATEWAYS
        .iter()
        .map(|&(name, i)| {
            let network = pisek_network(&lab.nodes[i].socket);
            let containerd = Containerd::start(&lab.nodes[i].netns, &network, image)
                .unwrap_or_else(|e| panic!("containerd on {name}: {e:#}"));
            let mut cri = Cri::connect(&containerd.socket);
            poll(
                "the CRI's RuntimeReady and NetworkReady",
                Duration::from_secs(20),
                || Ok(cri.ready().unwrap_or(false).then_some(())),
            )
            .unwrap_or_else(|e| panic!("{name}: {e:#}\n{}", containerd.log_tail(30)));
            (containerd, cri)
        })
        .collect()
}

/// The agent's endpoints on node `i`.
fn endpoints(lab: &Lab, i: usize) -> Vec<Attachment> {
    ApiClient::connect(&lab.nodes[i].socket)
        .expect("connect to the agent's API")
        .call(&Request::Endpoints)
        .expect("endpoints")
}

/// Runs `program args` in the network namespace at `netns` (a pod's, which
/// the CRI names by path, not by `ip netns` name).
fn in_pod(netns: &Path, program: &str, args: &[&str]) -> std::process::Output {
    Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .arg(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("nsenter {program}: {e}"))
}

/// `ping -c count` from a pod: whether every reply came, and the summary.
fn ping(netns: &Path, to: IpAddr, count: u32) -> (bool, String) {
    let count = count.to_string();
    let to = to.to_string();
    let out = in_pod(netns, "ping", &["-c", &count, "-i", "0.2", "-W", "1", &to]);
    let text = String::from_utf8_lossy(&out.stdout);
    let summary = text
        .lines()
        .filter(|l| l.contains("packets transmitted"))
        .collect::<Vec<_>>()
        .join("; ");
    (out.status.success(), summary)
}

/// ICMP echo requests the pod's namespace received (`InEchos` of
/// /proc/net/snmp, which is per network namespace): whether pings arrived,
/// whatever the pod answered.
fn echo_requests_received(netns: &Path) -> u64 {
    let out = in_pod(netns, "cat", &["/proc/net/snmp"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut icmp = text.lines().filter(|l| l.starts_with("Icmp:"));
    let (names, values) = (
        icmp.next().expect("Icmp names"),
        icmp.next().expect("values"),
    );
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "InEchos")
        .and_then(|(_, v)| v.parse().ok())
        .expect("InEchos")
}

/// `ip ARGS` in gateway `netns`: its stdout.
fn ip_in(netns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["-n", netns])
        .args(args)
        .output()
        .expect("run ip");
    assert!(out.status.success(), "ip {args:?} in {netns}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The nat table of gateway `netns` (where portmap puts a pod's host ports).
fn nat_rules(netns: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", netns, "iptables", "-w", "-t", "nat", "-S"])
        .output()
        .expect("run iptables");
    assert!(out.status.success(), "iptables -t nat -S in {netns}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a pod and reads back what it got: addresses and netns from the CRI,
/// the tenant and host veth from the gateway's agent.
fn run_pod(lab: &Lab, runtime: &mut (Containerd, Cri), spec: &PodSpec, logs: &Path) -> Pod {
    let started = Instant::now();
    let (containerd, cri) = runtime;
    let id = cri
        .run_pod(sandbox_config(spec, logs, containerd.cgroup_parent()))
        .unwrap_or_else(|e| panic!("RunPodSandbox {}: {e}", spec.name));
    let (addresses, netns, cni_result) = cri.pod_network(&id);
    println!(
        "{} on gw{}: {addresses:?} in {} ({:?})",
        spec.name,
        spec.gateway,
        netns.display(),
        started.elapsed()
    );
    let address = addresses.iter().find_map(|a| match a {
        IpAddr::V4(v4) => Some(*v4),
        IpAddr::V6(_) => None,
    });
    let address_v6 = addresses.iter().find_map(|a| match a {
        IpAddr::V6(v6) => Some(*v6),
        IpAddr::V4(_) => None,
    });
    let endpoint = endpoints(lab, spec.gateway)
        .into_iter()
        .find(|e| e.container_id == id)
        .unwrap_or_else(|| panic!("{}: the agent has no endpoint for {id}", spec.name));
    assert_eq!(endpoint.tenant, spec.tenant, "{}'s tenant", spec.name);
    assert_eq!(
        endpoint.netns, netns,
        "{}: the agent's netns is the CRI's",
        spec.name
    );
    assert_eq!(
        endpoint.owner.as_deref(),
        Some("cni:pisek"),
        "{}",
        spec.name
    );
    assert_cni_result(
        spec.name,
        &cni_result,
        &addresses,
        &netns,
        &endpoint.host_ifname,
    );
    let routes = String::from_utf8_lossy(&in_pod(&netns, "ip", &["route"]).stdout).into_owned();
    assert!(
        routes.contains("default via 169.254.1.1 dev eth0"),
        "{}'s routes: {routes}",
        spec.name
    );
    Pod {
        name: spec.name,
        tenant: spec.tenant,
        gateway: spec.gateway,
        id,
        address: address.unwrap_or_else(|| panic!("{} has no IPv4 address", spec.name)),
        address_v6: address_v6.unwrap_or_else(|| panic!("{} has no IPv6 address", spec.name)),
        netns,
        host_ifname: endpoint.host_ifname,
    }
}

/// What containerd made of the chain's ADD result: `eth0` in the pod's
/// netns with the pod's addresses and the link-local gateways, the host
/// veth outside it, default routes of both families.
fn assert_cni_result(
    pod: &str,
    result: &serde_json::Value,
    addresses: &[IpAddr],
    netns: &Path,
    host_ifname: &str,
) {
    let eth0 = &result["Interfaces"]["eth0"];
    assert_eq!(
        eth0["Sandbox"],
        netns.display().to_string(),
        "{pod}: {result}"
    );
    let configs: Vec<(String, String)> = eth0["IPConfigs"]
        .as_array()
        .unwrap_or_else(|| panic!("{pod}: eth0 has no IPConfigs: {result}"))
        .iter()
        .map(|c| {
            (
                c["IP"].as_str().unwrap_or("").into(),
                c["Gateway"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = addresses
        .iter()
        .map(|a| {
            let gateway = if a.is_ipv4() {
                "169.254.1.1"
            } else {
                "fe80::1"
            };
            (a.to_string(), gateway.to_string())
        })
        .collect();
    assert_eq!(configs, expected, "{pod}: eth0's addresses and gateways");
    let host = &result["Interfaces"][host_ifname];
    assert!(
        host.is_object() && host["Sandbox"] == "",
        "{pod}: the host veth {host_ifname} in {result}"
    );
    let routes = result["Routes"].to_string();
    for route in [
        r#"{"dst":"0.0.0.0/0","gw":"169.254.1.1"}"#,
        r#"{"dst":"::/0","gw":"fe80::1"}"#,
    ] {
        assert!(
            routes.contains(route),
            "{pod}: no route {route} in {routes}"
        );
    }
}

/// Pings in parallel (they are independent); every one must get its replies.
fn all_answer(pings: &[(String, &Pod, IpAddr)]) {
    std::thread::scope(|s| {
        let running: Vec<_> = pings
            .iter()
            .map(|(what, from, to)| s.spawn(move || (what, ping(&from.netns, *to, 3))))
            .collect();
        for handle in running {
            let (what, (ok, summary)) = handle.join().expect("ping thread");
            assert!(ok, "{what}: {summary}");
        }
    });
}

#[test]
fn pods_through_containerd_cri_join_their_tenants_and_leave_nothing() {
    if !require(
        "cni_cri",
        &[
            "containerd",
            "runc",
            "ctr",
            "ip",
            "ping",
            "nsenter",
            "iptables",
        ],
    ) {
        return;
    }
    let started = Instant::now();
    let scratch = TempDir::new("cri");
    let image = build_sandbox_image(&scratch.path, "pisek.local/sandbox:busybox")
        .expect("the sandbox image");
    let lab = Lab::start(&unique_tag("cr"), pisek_lab::lab_binaries()).expect("the lab starts");
    // Dropped before the lab: pods and containerds go before the namespaces.
    let mut runtimes = start_runtimes(&lab, &image);
    lab.wait_until_ready(Duration::from_secs(30))
        .expect("peers, sessions and routes come up");
    println!("lab and runtimes ready after {:?}", started.elapsed());

    let specs = [
        PodSpec {
            name: "meter-reader",
            namespace: "team-city",
            gateway: 1,
            annotations: &[],
            host_port: None,
            tenant: "city",
        },
        PodSpec {
            name: "badge-scanner",
            namespace: "team-conference",
            gateway: 1,
            annotations: &[],
            host_port: None,
            tenant: "conference",
        },
        PodSpec {
            name: "traffic-light",
            namespace: "team-city",
            gateway: 2,
            annotations: &[],
            host_port: Some(18080),
            tenant: "city",
        },
        PodSpec {
            name: "co2-sensor",
            namespace: "team-conference",
            gateway: 2,
            annotations: &[],
            host_port: None,
            tenant: "conference",
        },
        // In team-city, but its annotation names conference, which wins.
        PodSpec {
            name: "room-display",
            namespace: "team-city",
            gateway: 2,
            annotations: &[(TENANT_ANNOTATION, "conference")],
            host_port: None,
            tenant: "conference",
        },
    ];
    let logs = scratch.path.join("pod-logs");
    let pods: Vec<Pod> = specs
        .iter()
        .map(|spec| run_pod(&lab, &mut runtimes[spec.gateway - 1], spec, &logs))
        .collect();
    let pod = |name: &str| pods.iter().find(|p| p.name == name).expect("a pod");
    println!("pods running after {:?}", started.elapsed());
    // portmap ran after pisek-cni (prevResult chaining): the host port's
    // DNAT to the pod is in gw2's nat table.
    let dnat = nat_rules(&lab.nodes[2].netns);
    let traffic_light = pod("traffic-light");
    assert!(
        dnat.lines().any(|l| l.contains("--dport 18080")
            && l.contains(&format!("{}:8080", traffic_light.address))),
        "gw2's nat table has no DNAT of port 18080 to traffic-light:\n{dnat}"
    );

    // Same tenant: gw1 -> gw2 over the overlay (both ways, both families),
    // and every pod to its tenant's datacenter service on the edge.
    let (city1, city2) = (pod("meter-reader"), pod("traffic-light"));
    let (conf1, conf2, annotated) = (pod("badge-scanner"), pod("co2-sensor"), pod("room-display"));
    let mut pings: Vec<(String, &Pod, IpAddr)> = vec![
        ("city gw1 -> gw2".into(), city1, city2.address.into()),
        ("city gw2 -> gw1".into(), city2, city1.address.into()),
        (
            "city gw1 -> gw2 IPv6".into(),
            city1,
            city2.address_v6.into(),
        ),
        ("conference gw1 -> gw2".into(), conf1, conf2.address.into()),
        (
            "conference gw2 -> gw1 IPv6".into(),
            conf2,
            conf1.address_v6.into(),
        ),
        (
            "conference gw1 -> annotated pod".into(),
            conf1,
            annotated.address.into(),
        ),
        (
            "annotated pod -> conference gw1".into(),
            annotated,
            conf1.address.into(),
        ),
    ];
    for p in &pods {
        let dc = lab.workload("edge", p.tenant, 1);
        pings.push((
            format!("{} -> {} datacenter service", p.name, p.tenant),
            p,
            dc.address.into(),
        ));
        pings.push((
            format!("{} -> {} datacenter service IPv6", p.name, p.tenant),
            p,
            dc.address_v6.into(),
        ));
    }
    all_answer(&pings);
    println!("same-tenant pings answered after {:?}", started.elapsed());

    // Across tenants nothing arrives. The annotated pod's address exists
    // only in conference on gw2: from city it gets no reply and the pod
    // sees no request. And where the tenants overlap (the first pods of
    // each on gw2 may share an address), city's ping is answered by city's
    // pod while conference's twin sees nothing.
    let (before_annotated, before_conf2) = (
        echo_requests_received(&annotated.netns),
        echo_requests_received(&conf2.netns),
    );
    let (ok, summary) = ping(&city1.netns, annotated.address.into(), 3);
    assert!(!ok, "city reached conference's annotated pod: {summary}");
    let (ok, summary) = ping(&city1.netns, city2.address.into(), 3);
    assert!(ok, "city gw1 -> gw2 again: {summary}");
    assert_eq!(
        echo_requests_received(&annotated.netns),
        before_annotated,
        "a city ping arrived in conference's annotated pod"
    );
    assert_eq!(
        echo_requests_received(&conf2.netns),
        before_conf2,
        "a city ping arrived in conference's pod (address {}, city's twin {})",
        conf2.address,
        city2.address
    );

    // kubelet's teardown: StopPodSandbox then RemovePodSandbox, every pod.
    let teardown = Instant::now();
    for p in &pods {
        let (_, cri) = &mut runtimes[p.gateway - 1];
        let one = Instant::now();
        cri.stop_and_remove(&p.id);
        println!("{} stopped and removed in {:?}", p.name, one.elapsed());
    }
    println!("teardown took {:?}", teardown.elapsed());
    for (_, cri) in &mut runtimes {
        assert_eq!(cri.pod_count(), 0, "the CRI lists no pod");
    }
    assert_nothing_left(&lab, &pods);
    let dnat = nat_rules(&lab.nodes[2].netns);
    assert!(
        !dnat.contains("18080"),
        "portmap's DNAT for traffic-light is left in gw2:\n{dnat}"
    );
    println!("the test took {:?}", started.elapsed());
}

/// After teardown, on each gateway: no lease (the agent's endpoints), no
/// host veth, no `iif` rule, no route to the pods' addresses in any table,
/// and no pod netns file. The veth pairs (with their rules and routes) go
/// just after the DELs' answers, so this waits up to 5 s for them.
fn assert_nothing_left(lab: &Lab, pods: &[Pod]) {
    let mut last = String::new();
    let clean = poll("nothing left of the pods", Duration::from_secs(5), || {
        Ok(match left_of(lab, pods) {
            Some(what) => {
                last = what;
                None
            }
            None => Some(()),
        })
    });
    assert!(clean.is_ok(), "{last}");
}

/// The first thing `pods` left on a gateway, if any.
fn left_of(lab: &Lab, pods: &[Pod]) -> Option<String> {
    for &(name, i) in &GATEWAYS {
        let netns = &lab.nodes[i].netns;
        let on_gateway: Vec<&Pod> = pods.iter().filter(|p| p.gateway == i).collect();
        let left: Vec<String> = endpoints(lab, i)
            .into_iter()
            .filter(|e| {
                on_gateway
                    .iter()
                    .any(|p| p.id == e.container_id || p.netns == e.netns)
            })
            .map(|e| format!("{} {:?}", e.container_id, e.addresses))
            .collect();
        if !left.is_empty() {
            return Some(format!("{name}: the agent still has leases {left:?}"));
        }
        let links = ip_in(netns, &["-o", "link", "show"]);
        let rules = ip_in(netns, &["rule", "show"]) + &ip_in(netns, &["-6", "rule", "show"]);
        let routes = ip_in(netns, &["route", "show", "table", "all"])
            + &ip_in(netns, &["-6", "route", "show", "table", "all"]);
        for p in &on_gateway {
            let veth = &p.host_ifname;
            if links.contains(&format!(": {veth}@")) || links.contains(&format!(": {veth}:")) {
                return Some(format!(
                    "{name}: {}'s host veth {veth} is still there:\n{links}",
                    p.name
                ));
            }
            if rules.contains(&format!("iif {veth} ")) {
                return Some(format!(
                    "{name}: a rule for {}'s veth {veth} is left:\n{rules}",
                    p.name
                ));
            }
            for address in [p.address.to_string(), p.address_v6.to_string()] {
                let stale = routes.lines().find(|l| {
                    l.starts_with(&format!("{address} ")) || l.contains(&format!("dev {veth} "))
                });
                if let Some(stale) = stale {
                    return Some(format!("{name}: a route to {} is left: {stale}", p.name));
                }
            }
            if p.netns.exists() {
                return Some(format!(
                    "{}'s netns file {} is left",
                    p.name,
                    p.netns.display()
                ));
            }
        }
    }
    None
}

/// Processes whose command line names `socket` (containerd's shims do).
fn processes_naming(socket: &Path) -> Vec<String> {
    let needle = socket.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(&needle).then_some(cmdline)
        })
        .collect()
}

/// The rig's own cleanup, on the reference `bridge` + `host-local`: a
/// containerd dropped with a pod still running (a test that panicked)
/// takes its shim, the pod, the pod's netns file, its mounts, its cgroup
/// and its directory with it.
#[test]
fn dropping_containerd_with_a_running_pod_leaves_nothing() {
    if !require(
        "dropping_containerd_with_a_running_pod_leaves_nothing",
        &["containerd", "runc", "ctr", "ip", "ping", "nsenter"],
    ) {
        return;
    }
    let scratch = TempDir::new("crd");
    let image = build_sandbox_image(&scratch.path, "pisek.local/sandbox:busybox")
        .expect("the sandbox image");
    let gateway = pisek_lab::Netns::new("crd");
    let bridge = format!("pkb{}", unique_tag(""));
    let conflist = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "reference",
        "plugins": [{
            "type": "bridge",
            "bridge": bridge,
            "isGateway": true,
            "ipam": {
                "type": "host-local",
                "subnet": "10.99.0.0/24",
                "dataDir": scratch.path.join("ipam"),
            },
        }],
    });
    let plugins = ["bridge", "host-local", "loopback"]
        .iter()
        .map(|p| Path::new("/usr/lib/cni").join(p))
        .collect();
    let containerd = Containerd::start(&gateway.name, &CniNetwork { conflist, plugins }, &image)
        .unwrap_or_else(|e| panic!("containerd: {e:#}"));
    let mut cri = Cri::connect(&containerd.socket);
    poll("the CRI's readiness", Duration::from_secs(20), || {
        Ok(cri.ready().unwrap_or(false).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", containerd.log_tail(30)));
    let spec = PodSpec {
        name: "left-running",
        namespace: "default",
        gateway: 0,
        annotations: &[],
        host_port: None,
        tenant: "",
    };
    let config = sandbox_config(
        &spec,
        &scratch.path.join("logs"),
        containerd.cgroup_parent(),
    );
    let id = cri.run_pod(config).expect("RunPodSandbox");
    let (addresses, netns, _) = cri.pod_network(&id);
    assert!(
        ping(&netns, "10.99.0.1".parse().expect("an address"), 1).0,
        "the pod {addresses:?} reaches the bridge"
    );
    let (socket, dir) = (containerd.socket.clone(), containerd.dir.clone());
    assert!(!processes_naming(&socket).is_empty(), "a shim runs");
    let cgroup =
        Path::new("/sys/fs/cgroup/pids").join(containerd.cgroup_parent().trim_start_matches('/'));
    drop(cri);
    drop(containerd);

    assert!(
        !netns.exists(),
        "the pod's netns file {} is left",
        netns.display()
    );
    let left = processes_naming(&socket);
    assert!(left.is_empty(), "processes left: {left:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let prefix = dir.to_string_lossy().into_owned();
    assert!(
        !mounts.contains(&prefix),
        "mounts left under {prefix}:\n{mounts}"
    );
    assert!(!dir.exists(), "{} is left", dir.display());
    assert!(!cgroup.exists(), "the cgroup {} is left", cgroup.display());
}
