use super::*;
use std::io::Write;

use fixture::{AgentToml, BgpNeighborToml, TEST_PEER_PUBLIC_KEY, TenantToml, WireguardPeerToml};

const KEY: &str = fixture::TEST_PRIVATE_KEY;

/// A complete gateway config, with `key` as its key file.
fn gateway_config(key: &std::path::Path) -> AgentToml {
    AgentToml::new("gw-1", Role::Gateway, "10.255.0.2", key)
        .peer(
            WireguardPeerToml::new("edge-1", TEST_PEER_PUBLIC_KEY, "10.255.0.1")
                .endpoint("192.0.2.1:51820"),
        )
        .neighbor(BgpNeighborToml::new("10.255.0.1"))
        .tenant(
            TenantToml::new("city", 1)
                .route_target("65000:1")
                .prefixes(["10.1.1.0/24", "fd00:1:1::/64"])
                .namespaces(["city"]),
        )
        .tenant(TenantToml::new("conference", 2).prefixes(["10.1.1.0/24"]))
}

struct KeyFile(std::path::PathBuf);

impl KeyFile {
    fn new(content: &str) -> KeyFile {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("pisek-config-test-{}-{n}.key", std::process::id()));
        let mut f = std::fs::File::create(&path).expect("create key file");
        f.write_all(content.as_bytes()).expect("write key file");
        KeyFile(path)
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn gateway(key: &KeyFile) -> String {
    gateway_config(&key.0).render()
}

#[test]
fn complete_gateway_config_is_valid_and_fills_defaults() {
    let key = KeyFile::new(KEY);
    let config = Config::parse(&gateway(&key), "agent.toml").expect("parses");
    assert_eq!(config.validate(), vec![]);
    assert_eq!(config.underlay.mtu, 1500);
    assert_eq!(
        config.api.socket,
        std::path::Path::new("/run/pisek/agent.sock")
    );
    assert_eq!(config.state.dir, std::path::Path::new("/var/lib/pisek"));
    assert!(config.metrics.listen.ip().is_loopback());
    assert!(!config.bgp.is_route_reflector(config.node.role));
    assert!(config.bgp.is_route_reflector(Role::Edge));
    // Tenants may overlap in address space: both use 10.1.1.0/24.
    assert_eq!(config.tenants.len(), 2);
    assert_eq!(config.tenant_for_namespace("city").map(|t| t.id), Some(1));
}

#[test]
fn tenant_kernel_ids_derive_from_the_tenant_id() {
    let key = KeyFile::new(KEY);
    let config = Config::parse(&gateway(&key), "agent.toml").expect("parses");
    let city = config.tenant("city").expect("city");
    assert_eq!(city.table_id(), 100_001);
    assert_eq!(city.rule_priority(), 10_001);
    assert_eq!(city.tun_name(), "pisek-t1");
}

#[test]
fn unknown_field_is_rejected_with_its_line() {
    let key = KeyFile::new(KEY);
    let text = gateway(&key).replace("asn = 65000", "asn = 65000\nrouter_idd = \"1.2.3.4\"");
    let err = Config::parse(&text, "agent.toml").expect_err("unknown field");
    let line = text
        .lines()
        .position(|l| l.starts_with("router_idd"))
        .expect("line")
        + 1;
    match &err {
        ConfigError::Syntax {
            line: l, message, ..
        } => {
            assert_eq!(*l, line);
            assert!(message.contains("router_idd"), "{message}");
        }
        other => panic!("expected a syntax error, got {other}"),
    }
    assert!(err.to_string().starts_with(&format!("agent.toml:{line}:")));
}

#[test]
fn wrong_type_names_the_line() {
    let key = KeyFile::new(KEY);
    let text = gateway(&key).replace("id = 2", "id = \"two\"");
    let err = Config::parse(&text, "agent.toml").expect_err("wrong type");
    let line = text
        .lines()
        .position(|l| l == "id = \"two\"")
        .expect("line")
        + 1;
    assert!(
        matches!(err, ConfigError::Syntax { line: l, .. } if l == line),
        "{err}"
    );
}

#[test]
fn every_problem_is_reported_once_per_line() {
    let key = KeyFile::new("not a key");
    let text = gateway(&key)
        .replace("address = \"10.255.0.2\"", "address = \"10.9.0.2\"")
        .replace("id = 2", "id = 1")
        .replace("\"10.1.1.0/24\", \"fd00", "\"10.1.1.5/24\", \"fd00")
        .replace("[\"65000:1\"]\nimport", "[\"nonsense\"]\nimport");
    let config = Config::parse(&text, "agent.toml").expect("parses");
    let problems: Vec<String> = config.validate().iter().map(|p| p.to_string()).collect();
    let expect = [
        "tunnel.address: 10.9.0.2 is not inside",
        "wireguard.private_key_file:",
        "tenant[1].id: 1 is also the id of tenant[0]",
        "tenant[0].prefixes[0]: 10.1.1.5/24 has host bits set",
        "tenant[0].export_route_targets[0]: `nonsense` is not a route target",
    ];
    for e in expect {
        assert!(
            problems.iter().any(|p| p.starts_with(e)),
            "missing `{e}` in {problems:#?}"
        );
    }
    assert_eq!(problems.len(), expect.len(), "{problems:#?}");
}

#[test]
fn load_reports_problems_with_the_file_name() {
    let key = KeyFile::new(KEY);
    let text = gateway(&key).replace("id = 2", "id = 10000");
    let file = KeyFile::new(&text);
    let err = Config::load(&file.0).expect_err("invalid");
    let lines = err.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("tenant[1].id: 10000 is outside 1..=9999"),
        "{lines:?}"
    );
    assert!(lines[0].starts_with(&file.0.display().to_string()));
}

#[test]
fn gateway_peer_without_endpoint_is_a_problem() {
    let key = KeyFile::new(KEY);
    let text = gateway(&key).replace("endpoint = \"192.0.2.1:51820\"\n", "");
    let config = Config::parse(&text, "agent.toml").expect("parses");
    let problems = config.validate();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].field, "wireguard.peer[0].endpoint");
}

#[test]
fn edge_is_reflector_without_neighbors() {
    let key = KeyFile::new(KEY);
    let text = gateway(&key)
        .replace("role = \"gateway\"", "role = \"edge\"")
        .replace("[[bgp.neighbor]]\naddress = \"10.255.0.1\"\n", "");
    let config = Config::parse(&text, "agent.toml").expect("parses");
    assert_eq!(config.validate(), vec![]);
    assert!(config.bgp.is_route_reflector(config.node.role));
}

#[test]
fn wireguard_key_shape() {
    assert!(validate::looks_like_wireguard_key(KEY));
    assert!(validate::looks_like_wireguard_key(&format!("{KEY}\n")));
    assert!(!validate::looks_like_wireguard_key(&KEY[1..]));
    assert!(!validate::looks_like_wireguard_key(""));
}

/// The edge agent as a client of a reflector daemon (GoBGP, BIRD, FRR) that
/// owns port 179 of the edge's own tunnel address.
fn edge_client_of_a_local_reflector(key: &KeyFile) -> String {
    gateway(key)
        .replace("role = \"gateway\"", "role = \"edge\"")
        .replace(
            "asn = 65000\n",
            "asn = 65000\nlisten = false\nroute_reflector = false\n",
        )
        .replace(
            "[[bgp.neighbor]]\naddress = \"10.255.0.1\"",
            "[[bgp.neighbor]]\naddress = \"10.255.0.2\"",
        )
}

#[test]
fn the_speaker_listens_by_default() {
    let key = KeyFile::new(KEY);
    let config = Config::parse(&gateway(&key), "agent.toml").expect("parses");
    assert!(config.bgp.listen);
}

#[test]
fn a_client_that_does_not_listen_may_peer_with_a_reflector_on_its_own_address() {
    let key = KeyFile::new(KEY);
    let config =
        Config::parse(&edge_client_of_a_local_reflector(&key), "agent.toml").expect("parses");
    assert_eq!(config.validate(), vec![]);
    assert!(!config.bgp.listen);
    assert!(!config.bgp.is_route_reflector(config.node.role));
}

#[test]
fn own_address_as_neighbor_is_a_problem_while_listening() {
    let key = KeyFile::new(KEY);
    let text = edge_client_of_a_local_reflector(&key).replace("listen = false\n", "");
    let config = Config::parse(&text, "agent.toml").expect("parses");
    let problems = config.validate();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].field, "bgp.neighbor[0].address");
    assert!(
        problems[0].message.contains("own tunnel address"),
        "{problems:?}"
    );
}

#[test]
fn a_passive_neighbor_without_listening_is_one_problem() {
    let key = KeyFile::new(KEY);
    let text = edge_client_of_a_local_reflector(&key).replace(
        "[[bgp.neighbor]]\naddress = \"10.255.0.2\"\n",
        "[[bgp.neighbor]]\naddress = \"10.255.0.2\"\npassive = true\n",
    );
    let config = Config::parse(&text, "agent.toml").expect("parses");
    let problems: Vec<String> = config.validate().iter().map(|p| p.to_string()).collect();
    assert_eq!(
        problems,
        [
            "bgp.neighbor[0].passive: a passive neighbor needs bgp.listen = true (with listen = false nothing would accept its connection)"
        ]
    );
}

#[test]
fn a_reflector_that_does_not_listen_needs_a_neighbor() {
    let key = KeyFile::new(KEY);
    let text = gateway(&key)
        .replace("role = \"gateway\"", "role = \"edge\"")
        .replace("asn = 65000\n", "asn = 65000\nlisten = false\n")
        .replace("[[bgp.neighbor]]\naddress = \"10.255.0.1\"\n", "");
    let config = Config::parse(&text, "agent.toml").expect("parses");
    let problems: Vec<String> = config.validate().iter().map(|p| p.to_string()).collect();
    assert_eq!(
        problems,
        [
            "bgp.neighbor: with bgp.listen = false the speaker only connects out: it needs at least one neighbor"
        ]
    );
}

#[test]
fn workers_default_to_one_per_cpu_and_are_bounded() {
    let key = KeyFile::new(KEY);
    let config = Config::parse(&gateway(&key), "agent.toml").expect("parses");
    assert_eq!(config.dataplane.workers, 0);
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(config.dataplane.worker_count(), cpus.min(MAX_WORKERS));

    let two = gateway_config(&key.0).workers(2).config();
    assert_eq!(two.dataplane.worker_count(), 2);
    assert!(two.validate().is_empty());

    let too_many = gateway_config(&key.0).workers(MAX_WORKERS + 1).config();
    let problems = too_many.validate();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].field, "dataplane.workers");
}

#[test]
fn the_tun_queue_length_defaults_to_an_ethernet_nics_and_is_bounded() {
    let key = KeyFile::new(KEY);
    let config = Config::parse(&gateway(&key), "agent.toml").expect("parses");
    assert_eq!(config.dataplane.tun_queue_len, 1000);
    for (len, ok) in [
        (1, true),
        (MAX_TUN_QUEUE_LEN, true),
        (0, false),
        (MAX_TUN_QUEUE_LEN + 1, false),
    ] {
        let text = format!("{}\n[dataplane]\ntun_queue_len = {len}\n", gateway(&key));
        let config = Config::parse(&text, "agent.toml").expect("parses");
        let problems = config.validate();
        assert_eq!(problems.is_empty(), ok, "{len}: {problems:?}");
        if !ok {
            assert_eq!(problems[0].field, "dataplane.tun_queue_len");
        }
    }
}
