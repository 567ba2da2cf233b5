//! Bad input of every kind a runtime or a person can hand `pisek-cni`:
//! each gets the spec's error object on stdout with its code, a non-zero
//! exit, and leaves nothing behind: no interface in the pod's namespace,
//! no endpoint, lease, veth, rule or route on the host.
//!
//! Needs root and iproute2.
use pisek_lab::{CniCall, HostAgent, Netns, require, run_cni, workspace_binary};

fn conf(agent: &HostAgent, extra: &str) -> String {
    format!(
        r#"{{"cniVersion":"1.0.0","name":"pisek","type":"pisek-cni","agentSocket":"{}","agentWaitSeconds":1,"defaultTenant":"city"{extra}}}"#,
        agent.socket().display()
    )
}

#[test]
fn bad_input_gets_the_right_code_and_leaves_nothing() {
    if !require("bad_input_gets_the_right_code_and_leaves_nothing", &["ip"]) {
        return;
    }
    let agent = HostAgent::start("cb");
    let pod = Netns::new("cbp");
    let plugin = workspace_binary("pisek-cni");
    let good = conf(&agent, "");
    let add = || CniCall::new("ADD", "c1", &pod.path());
    let oversized = conf(
        &agent,
        &format!(r#","dns":{{"search":["{}"]}}"#, "a".repeat(1024 * 1024)),
    );
    let cases: Vec<(&str, CniCall, String, u64)> = vec![
        ("garbage stdin", add(), "\u{0}\u{7f}garbage".into(), 6),
        (
            "truncated stdin",
            add(),
            good[..good.len() / 2].to_string(),
            6,
        ),
        ("empty stdin", add(), String::new(), 6),
        ("not an object", add(), "[]".into(), 6),
        ("unknown version", add(), good.replace("1.0.0", "9.9.9"), 1),
        (
            "unknown field",
            add(),
            conf(&agent, r#","tenantt":"city""#),
            2,
        ),
        (
            "ipam given",
            add(),
            conf(&agent, r#","ipam":{"type":"host-local"}"#),
            2,
        ),
        ("wrong type", add(), conf(&agent, r#","mtu":"big""#), 7),
        ("oversized config", add(), oversized, 7),
        (
            "missing name",
            add(),
            good.replace(r#""name":"pisek","#, ""),
            7,
        ),
        (
            "missing CNI_COMMAND",
            CniCall {
                command: String::new(),
                unset: vec![],
                ..add()
            },
            good.clone(),
            4,
        ),
        (
            "missing CNI_CONTAINERID",
            CniCall {
                unset: vec!["CNI_CONTAINERID"],
                ..add()
            },
            good.clone(),
            4,
        ),
        (
            "missing CNI_NETNS",
            CniCall {
                unset: vec!["CNI_NETNS"],
                ..add()
            },
            good.clone(),
            4,
        ),
        (
            "missing CNI_IFNAME",
            CniCall {
                unset: vec!["CNI_IFNAME"],
                ..add()
            },
            good.clone(),
            4,
        ),
        (
            "missing CNI_PATH",
            CniCall {
                unset: vec!["CNI_PATH"],
                ..add()
            },
            good.clone(),
            4,
        ),
        (
            "container id with a slash",
            CniCall {
                container_id: Some("../etc".into()),
                ..add()
            },
            good.clone(),
            4,
        ),
        (
            "interface name the kernel refuses",
            CniCall {
                ifname: Some("eth0-far-too-long".into()),
                ..add()
            },
            good.clone(),
            4,
        ),
        (
            "interface name with a colon",
            CniCall {
                ifname: Some("eth0:1".into()),
                ..add()
            },
            good.clone(),
            4,
        ),
        (
            "relative netns",
            CniCall {
                netns: Some("netns/x".into()),
                ..add()
            },
            good.clone(),
            4,
        ),
        (
            "netns that does not exist",
            CniCall {
                netns: Some("/run/netns/pisek-no-such-netns".into()),
                ..add()
            },
            good.clone(),
            3,
        ),
        (
            "netns path that is not a netns",
            CniCall {
                netns: Some("/proc/self/status".into()),
                ..add()
            },
            good.clone(),
            3,
        ),
        (
            "CNI_ARGS not KEY=VALUE",
            CniCall {
                args: Some("K8S_POD_NAMESPACE".into()),
                ..add()
            },
            good.clone(),
            4,
        ),
        (
            "unknown CNI_ARGS key",
            CniCall {
                args: Some("FOO=bar".into()),
                ..add()
            },
            good.clone(),
            4,
        ),
        (
            "unknown tenant",
            add(),
            conf(&agent, "").replace(r#""defaultTenant":"city""#, r#""defaultTenant":"nowhere""#),
            101,
        ),
        (
            "no tenant at all",
            add(),
            conf(&agent, "").replace(r#","defaultTenant":"city""#, ""),
            108,
        ),
        (
            "MTU above what the overlay carries",
            add(),
            conf(&agent, r#","mtu":9000"#),
            100,
        ),
        (
            "requested address that is the network's own",
            add(),
            conf(&agent, r#","runtimeConfig":{"ips":["10.1.1.0"]}"#),
            105,
        ),
        (
            "CHECK without prevResult",
            CniCall::new("CHECK", "c1", &pod.path()),
            good.clone(),
            7,
        ),
        (
            "CHECK of nothing attached",
            CniCall::new("CHECK", "c1", &pod.path()),
            conf(
                &agent,
                r#","prevResult":{"cniVersion":"1.0.0","interfaces":[]}"#,
            ),
            107,
        ),
        (
            "GC without valid-attachments",
            CniCall {
                command: "GC".into(),
                ..CniCall::default()
            },
            good.replace("1.0.0", "1.1.0"),
            7,
        ),
    ];
    for (case, call, stdin, code) in cases {
        let out = run_cni(&plugin, &call, stdin.as_bytes());
        assert_ne!(out.status, 0, "{case}: exit status");
        assert_eq!(out.code(), Some(code), "{case}: {}", out.stdout);
        assert!(
            out.json["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "{case}: no message: {}",
            out.stdout
        );
        agent.assert_clean(case);
        let links = String::from_utf8_lossy(&pod.ip(["-o", "link"]).stdout).into_owned();
        assert!(!links.contains("eth0"), "{case}: {links}");
    }
    // After all that, the agent still serves a good ADD.
    let out = run_cni(&plugin, &add(), good.as_bytes());
    assert_eq!(out.status, 0, "{}", out.stdout);
    let del = CniCall::new("DEL", "c1", &pod.path());
    assert_eq!(run_cni(&plugin, &del, good.as_bytes()).status, 0);
    agent.assert_clean("after the good ADD and DEL");
}

#[test]
fn an_exhausted_tenant_says_so_and_keeps_what_it_has() {
    if !require("an_exhausted_tenant_says_so_and_keeps_what_it_has", &["ip"]) {
        return;
    }
    let agent = HostAgent::start("cx");
    let plugin = workspace_binary("pisek-cni");
    let tiny = conf(&agent, "").replace(r#""defaultTenant":"city""#, r#""defaultTenant":"tiny""#);
    let pods: Vec<Netns> = (0..3).map(|_| Netns::new("cxp")).collect();
    let mut codes = Vec::new();
    for (i, pod) in pods.iter().enumerate() {
        let out = run_cni(
            &plugin,
            &CniCall::new("ADD", &format!("c{i}"), &pod.path()),
            tiny.as_bytes(),
        );
        codes.push(out.code());
    }
    assert_eq!(codes, [None, None, Some(104)], "10.9.9.0/30 holds two pods");
    assert_eq!(agent.endpoints().len(), 2);
    for (i, pod) in pods.iter().enumerate() {
        let del = CniCall::new("DEL", &format!("c{i}"), &pod.path());
        assert_eq!(run_cni(&plugin, &del, tiny.as_bytes()).status, 0);
    }
    agent.assert_clean("after the exhausted tenant");
}
