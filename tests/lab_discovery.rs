//! The lab's shape and discovery (issue 16): a lab of any number of
//! gateways converges, `lab.json` says where every node's namespace,
//! socket, config, log and agent are and every workload's addresses, and
//! nothing of it is left on the machine after it stops.
use pisek_lab::{Lab, LabOptions, Reflector};
use std::time::Duration;

fn namespaces_with(prefix: &str) -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_lab_of_three_gateways_and_tenants_says_where_everything_is_and_leaves_nothing() {
    if !pisek_lab::require(
        "a_lab_of_three_gateways_and_tenants_says_where_everything_is_and_leaves_nothing",
        &["ip"],
    ) {
        return;
    }
    let tag = pisek_lab::unique_tag("ld");
    let options = LabOptions {
        gateways: 3,
        tenants: 3,
        reflector: Reflector::Agent,
        ..LabOptions::default()
    };
    let lab = Lab::start_opts(&tag, pisek_lab::lab_binaries(), options).expect("the lab starts");
    lab.wait_until_ready(Duration::from_secs(30))
        .expect("every gateway has every other node's routes");
    let text = std::fs::read_to_string(lab.dir.join("lab.json")).expect("lab.json");
    let description: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let nodes = description["nodes"].as_array().expect("nodes");
    let names: Vec<&str> = nodes.iter().filter_map(|n| n["name"].as_str()).collect();
    assert_eq!(names, ["edge", "gw1", "gw2", "gw3"]);
    for node in nodes {
        let pid = node["agent_pid"].as_u64().expect("a pid");
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "{node}"
        );
        for file in ["socket", "config", "log"] {
            let path = node[file].as_str().expect("a path");
            assert!(std::path::Path::new(path).exists(), "{file}: {node}");
        }
        let netns = node["netns"].as_str().expect("netns");
        assert!(netns.starts_with(&tag), "{node}");
    }
    // Two workloads per tenant per gateway, one per tenant on the edge;
    // the third tenant overlaps the first two.
    let workloads = description["workloads"].as_array().expect("workloads");
    assert_eq!(workloads.len(), 3 * 3 * 2 + 3);
    let t3 = lab.workload("gw2", "t3", 1).clone();
    let t3_far = lab.workload("gw3", "t3", 2).clone();
    let (ok, line) = lab.ping(&t3, t3_far.address, 3).expect("ping");
    assert!(ok, "t3 gw2 reaches t3 gw3: {line}");
    let gw3 = lab.workload("gw3", "city", 1).clone();
    let gw1 = lab.workload("gw1", "city", 1).clone();
    let (ok, line) = lab.ping(&gw3, gw1.address, 3).expect("ping");
    assert!(ok, "gw3 reaches gw1 through the edge: {line}");
    assert!(!namespaces_with(&tag).is_empty());
    drop(lab);
    assert_eq!(
        namespaces_with(&tag),
        Vec::<String>::new(),
        "namespaces left"
    );
}

#[test]
fn with_bird_as_route_reflector_the_lab_converges_and_tenants_stay_apart() {
    if !pisek_lab::require(
        "with_bird_as_route_reflector_the_lab_converges_and_tenants_stay_apart",
        &["ip", "ping", "bird", "birdc"],
    ) {
        return;
    }
    let tag = pisek_lab::unique_tag("lb");
    let options = LabOptions {
        reflector: Reflector::Bird,
        ..LabOptions::default()
    };
    let lab = Lab::start_opts(&tag, pisek_lab::lab_binaries(), options).expect("the lab starts");
    lab.wait_until_ready(Duration::from_secs(30))
        .expect("every node learns every other node's routes through BIRD");
    let description = lab.describe();
    assert_eq!(description["reflector"], "bird");
    for tenant in ["city", "conference"] {
        let a = lab.workload("gw1", tenant, 1).clone();
        let b = lab.workload("gw2", tenant, 1).clone();
        let (ok, line) = lab.ping(&a, b.address, 3).expect("ping");
        assert!(
            ok,
            "{tenant}: gw1 reaches gw2 through BIRD's reflection: {line}"
        );
    }
    // The overlapping twin in the other tenant hears nothing.
    let city = lab.workload("gw1", "city", 1).clone();
    let twin = lab.workload("gw2", "conference", 1).clone();
    let before = lab.echo_requests_received(&twin).expect("counter");
    let _ = lab.ping(&city, twin.address, 3).expect("ping");
    assert_eq!(lab.echo_requests_received(&twin).expect("counter"), before);
}
