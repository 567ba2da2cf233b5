//! `pisek-cni` through the CNI exec protocol, against a real `pisek-agent`
//! in a host namespace of its own: every command in every config version,
//! the spec's behaviours (idempotent ADD, repeatable DEL, CHECK against
//! `prevResult`, GC, STATUS), the tenant choice, and what the kernel shows
//! in the pod's namespace. After each test nothing is left: no endpoint,
//! lease, veth, rule or route ([`HostAgent::assert_clean`]).
//!
//! Needs root and iproute2; the binaries come from the workspace build.
use pisek_lab::{CniCall, CniOutput, HostAgent, Netns, require, run_cni, workspace_binary};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

const VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

fn plugin() -> PathBuf {
    let p = workspace_binary("pisek-cni");
    assert!(
        p.is_file(),
        "{} is missing: cargo build -p pisek-cni",
        p.display()
    );
    p
}

/// A network configuration for `agent`, `extra` appended to the object.
fn conf(agent: &HostAgent, version: &str, extra: &str) -> String {
    format!(
        r#"{{"cniVersion":"{version}","name":"pisek","type":"pisek-cni","agentSocket":"{}","agentWaitSeconds":2,"defaultTenant":"city","namespaceTenants":{{"team-conf":"conference"}},"logFile":"{}","logLevel":"debug"{extra}}}"#,
        agent.socket().display(),
        agent.dir.path.join("cni.log").display()
    )
}

fn call(command: &str, id: &str, ns: &Netns, conf: &str) -> CniOutput {
    run_cni(
        &plugin(),
        &CniCall::new(command, id, &ns.path()),
        conf.as_bytes(),
    )
}

fn ok(out: CniOutput, what: &str) -> Value {
    assert_eq!(out.status, 0, "{what}: {}", out.stdout);
    out.json
}

fn text(ns: &Netns, args: &[&str]) -> String {
    String::from_utf8_lossy(&ns.ip(args).stdout).into_owned()
}

#[test]
fn add_check_del_in_every_config_version() {
    if !require("add_check_del_in_every_config_version", &["ip"]) {
        return;
    }
    let agent = HostAgent::start("cv");
    for version in VERSIONS {
        let ns = Netns::new("cvp");
        let id = format!("ctr-{}", version.replace('.', ""));
        let c = conf(&agent, version, "");
        let result = ok(call("ADD", &id, &ns, &c), "ADD");
        assert_eq!(result["cniVersion"], version);
        let pod = &result["interfaces"][1];
        assert_eq!(pod["name"], "eth0");
        assert_eq!(pod["sandbox"], ns.path().display().to_string());
        assert_eq!(pod.get("mtu").is_some(), version == "1.1.0", "{result}");
        let v4 = result["ips"][0]["address"].as_str().expect("an address");
        assert_eq!(result["ips"][0]["interface"], 1);
        assert_eq!(result["ips"][0]["gateway"], "169.254.1.1");
        assert_eq!(
            result["ips"][0].get("version").is_some(),
            version.starts_with("0."),
            "{result}"
        );
        assert_eq!(result["routes"][0]["dst"], "0.0.0.0/0");
        // What the pod sees.
        let addr = text(&ns, &["addr", "show", "dev", "eth0"]);
        assert!(addr.contains(&format!("inet {v4}")), "{addr}");
        let routes = text(&ns, &["route", "show"]);
        assert!(
            routes.contains("default via 169.254.1.1 dev eth0"),
            "{routes}"
        );

        if version != "0.3.0" && version != "0.3.1" {
            let with_prev = conf(&agent, version, &format!(r#","prevResult":{result}"#));
            ok(call("CHECK", &id, &ns, &with_prev), "CHECK");
            // A prevResult that disagrees with the pod fails CHECK.
            let mut wrong = result.clone();
            wrong["ips"][0]["address"] = Value::from("10.1.1.250/32");
            let bad = conf(&agent, version, &format!(r#","prevResult":{wrong}"#));
            assert_eq!(call("CHECK", &id, &ns, &bad).code(), Some(107));
        }
        assert_eq!(ok(call("DEL", &id, &ns, &c), "DEL"), Value::Null);
        assert_eq!(ok(call("DEL", &id, &ns, &c), "DEL again"), Value::Null);
        // The pair goes just after DEL's answer; assert_clean waits for it.
        agent.assert_clean(&format!("after DEL in {version}"));
        assert!(!text(&ns, &["link"]).contains("eth0"));
    }
}

#[test]
fn add_is_idempotent_and_refuses_what_it_did_not_make() {
    if !require(
        "add_is_idempotent_and_refuses_what_it_did_not_make",
        &["ip"],
    ) {
        return;
    }
    let agent = HostAgent::start("ci");
    let c = conf(&agent, "1.0.0", "");
    let ns = Netns::new("cip");
    let first = ok(call("ADD", "c1", &ns, &c), "ADD");
    let again = ok(call("ADD", "c1", &ns, &c), "ADD again");
    assert_eq!(first, again, "a repeated ADD answers the same");
    // The same container and interface in another namespace: a conflict.
    let other = Netns::new("cio");
    assert_eq!(call("ADD", "c1", &other, &c).code(), Some(103));
    // A namespace whose eth0 Pisek did not make.
    let foreign = Netns::new("cif");
    foreign.ip([
        "link", "add", "eth0", "type", "veth", "peer", "name", "other0",
    ]);
    assert_eq!(call("ADD", "c2", &foreign, &c).code(), Some(102));
    assert!(text(&foreign, &["link", "show", "eth0"]).contains("eth0@other0"));
    ok(call("DEL", "c1", &ns, &c), "DEL");
    ok(call("DEL", "c2", &foreign, &c), "DEL of the refused one");
    agent.assert_clean("after the refusals");
}

#[test]
fn del_succeeds_whatever_is_already_gone() {
    if !require("del_succeeds_whatever_is_already_gone", &["ip"]) {
        return;
    }
    let mut agent = HostAgent::start("cd");
    let c = conf(&agent, "1.0.0", "");
    // Never added.
    let ns = Netns::new("cdp");
    ok(call("DEL", "never", &ns, &c), "DEL of nothing");
    // The netns deleted before DEL, and DEL without CNI_NETNS.
    let gone = Netns::new("cdg");
    ok(call("ADD", "c1", &gone, &c), "ADD");
    let path = gone.path();
    drop(gone);
    let del = CniCall {
        netns: None,
        ..CniCall::new("DEL", "c1", &path)
    };
    assert_eq!(run_cni(&plugin(), &del, c.as_bytes()).status, 0);
    ok(call("DEL", "c1", &ns, &c), "DEL again");
    agent.assert_clean("after DEL of a deleted netns");
    // The interface deleted by hand before DEL.
    ok(call("ADD", "c2", &ns, &c), "ADD");
    ns.ip(["link", "del", "eth0"]);
    ok(call("DEL", "c2", &ns, &c), "DEL without the interface");
    agent.assert_clean("after DEL of a deleted interface");
    // A pod whose netns went without any DEL: the agent releases it.
    let lost = Netns::new("cdl");
    ok(call("ADD", "c3", &lost, &c), "ADD");
    drop(lost);
    agent.wait_clean(
        "the agent releasing a vanished pod",
        Duration::from_secs(10),
    );
    // The agent restarted between ADD and DEL.
    ok(call("ADD", "c4", &ns, &c), "ADD");
    agent.restart();
    ok(call("DEL", "c4", &ns, &c), "DEL after a restart");
    agent.assert_clean("after DEL across a restart");
}

#[test]
fn the_tenant_comes_from_args_annotation_namespace_then_default() {
    if !require(
        "the_tenant_comes_from_args_annotation_namespace_then_default",
        &["ip"],
    ) {
        return;
    }
    let agent = HostAgent::start("ct");
    let annotated = r#","runtimeConfig":{"io.kubernetes.cri.pod-annotations":{"pisek.dev/tenant":"conference"}}"#;
    for (id, args, extra, tenant) in [
        (
            "t-args",
            Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=team-conf;PISEK_TENANT=city"),
            "",
            "city",
        ),
        (
            "t-ann",
            Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=default"),
            annotated,
            "conference",
        ),
        (
            "t-ns",
            Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=team-conf"),
            "",
            "conference",
        ),
        (
            "t-agent",
            Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=ops"),
            "",
            "conference",
        ),
        (
            "t-def",
            Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=default"),
            "",
            "city",
        ),
    ] {
        let ns = Netns::new("ctp");
        let c = conf(&agent, "1.1.0", extra);
        let add = CniCall {
            args: args.map(str::to_string),
            ..CniCall::new("ADD", id, &ns.path())
        };
        let out = run_cni(&plugin(), &add, c.as_bytes());
        assert_eq!(out.status, 0, "{id}: {}", out.stdout);
        let endpoints = agent.endpoints();
        let e = endpoints
            .iter()
            .find(|e| e.container_id == id)
            .expect("attached");
        assert_eq!(e.tenant, tenant, "{id}");
        assert_eq!(e.owner.as_deref(), Some("cni:pisek"));
        ok(call("DEL", id, &ns, &c), "DEL");
    }
    agent.assert_clean("after the tenant choices");
}

#[test]
fn mtu_and_requested_addresses_reach_the_pod() {
    if !require("mtu_and_requested_addresses_reach_the_pod", &["ip"]) {
        return;
    }
    let agent = HostAgent::start("cm");
    let ns = Netns::new("cmp");
    let c = conf(
        &agent,
        "1.1.0",
        r#","mtu":1300,"capabilities":{"ips":true},"runtimeConfig":{"ips":["10.1.1.77/24"]}"#,
    );
    let result = ok(call("ADD", "c1", &ns, &c), "ADD");
    assert_eq!(result["ips"][0]["address"], "10.1.1.77/32");
    assert_eq!(result["interfaces"][1]["mtu"], 1300);
    let link = text(&ns, &["link", "show", "eth0"]);
    assert!(link.contains("mtu 1300"), "{link}");
    ok(call("DEL", "c1", &ns, &c), "DEL");
    agent.assert_clean("after the MTU test");
}

#[test]
fn status_and_gc_follow_the_spec() {
    if !require("status_and_gc_follow_the_spec", &["ip"]) {
        return;
    }
    let mut agent = HostAgent::start("cg");
    let c = conf(&agent, "1.1.0", "");
    let status = |agent: &HostAgent| {
        let c = conf(agent, "1.1.0", "");
        run_cni(
            &plugin(),
            &CniCall {
                command: "STATUS".into(),
                ..CniCall::default()
            },
            c.as_bytes(),
        )
    };
    assert_eq!(status(&agent).status, 0);
    let keep = Netns::new("cgk");
    let drop_ = Netns::new("cgd");
    ok(call("ADD", "keep", &keep, &c), "ADD keep");
    ok(call("ADD", "stale", &drop_, &c), "ADD stale");
    // An attachment another client made: GC of this network leaves it.
    let other = Netns::new("cgo");
    let _: pisek_api::Attachment = agent
        .client()
        .call(&pisek_api::Request::Attach {
            container_id: "by-hand".into(),
            netns: other.path(),
            ifname: "eth0".into(),
            tenant: "city".into(),
            addresses: Vec::new(),
            mtu: None,
            owner: Some("pisekctl".into()),
        })
        .expect("attach by hand");
    let gc_conf = conf(
        &agent,
        "1.1.0",
        r#","cni.dev/valid-attachments":[{"containerID":"keep","ifname":"eth0"}]"#,
    );
    let gc = CniCall {
        command: "GC".into(),
        ..CniCall::default()
    };
    let out = run_cni(&plugin(), &gc, gc_conf.as_bytes());
    assert_eq!(out.status, 0, "{}", out.stdout);
    let left: Vec<String> = agent
        .endpoints()
        .into_iter()
        .map(|e| e.container_id)
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&"keep".to_string()) && left.contains(&"by-hand".to_string()));
    ok(call("DEL", "keep", &keep, &c), "DEL keep");
    let _: pisek_api::Detached = agent
        .client()
        .call(&pisek_api::Request::Detach {
            container_id: "by-hand".into(),
            ifname: "eth0".into(),
        })
        .expect("detach by hand");
    agent.assert_clean("after GC");
    // Agent away: STATUS says 50 at once, ADD says 11 after its bounded wait.
    agent.stop();
    let s = status(&agent);
    assert_eq!(s.code(), Some(50), "{}", s.stdout);
    let add = call("ADD", "late", &keep, &c);
    assert_eq!(add.code(), Some(11), "{}", add.stdout);
    assert!(add.took < Duration::from_secs(5), "waited {:?}", add.took);
}
