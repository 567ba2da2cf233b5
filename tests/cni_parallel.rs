//! `pisek-cni` under the load a node sees when a deployment scales: 50
//! ADDs at once, then 50 DELs at once, and the agent killed and restarted
//! in the middle of a batch of ADDs. Every ADD either succeeds or fails
//! with a spec error; after the DELs (which a runtime also sends for a
//! failed ADD) nothing is left.
//!
//! Needs root and iproute2.
use pisek_lab::{
    CniCall, CniOutput, HostAgent, Netns, poll_until, require, run_cni, workspace_binary,
};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

const PODS: usize = 50;

fn conf(agent: &HostAgent) -> String {
    format!(
        r#"{{"cniVersion":"1.0.0","name":"pisek","type":"pisek-cni","agentSocket":"{}","agentWaitSeconds":20,"defaultTenant":"city"}}"#,
        agent.socket().display()
    )
}

/// Runs `command` for every pod at once; the outputs in pod order.
fn all_at_once(command: &str, pods: &[Netns], conf: &str) -> Vec<CniOutput> {
    let plugin: PathBuf = workspace_binary("pisek-cni");
    let handles: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, pod)| {
            let call = CniCall::new(command, &format!("pod{i}"), &pod.path());
            let (plugin, conf) = (plugin.clone(), conf.to_string());
            thread::spawn(move || run_cni(&plugin, &call, conf.as_bytes()))
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("plugin thread"))
        .collect()
}

fn pod_address(pod: &Netns) -> Option<String> {
    // Not Netns::ip: a pod without eth0 makes `ip` fail, and that is an answer.
    let out = std::process::Command::new("ip")
        .args(["-n", &pod.name, "-4", "-o", "addr", "show", "dev", "eth0"])
        .output()
        .expect("run ip");
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    out.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .map(str::to_string)
}

#[test]
fn fifty_parallel_adds_then_fifty_parallel_dels() {
    if !require("fifty_parallel_adds_then_fifty_parallel_dels", &["ip"]) {
        return;
    }
    let agent = HostAgent::start("cp");
    let pods: Vec<Netns> = (0..PODS).map(|_| Netns::new("cpp")).collect();
    let c = conf(&agent);
    let adds = all_at_once("ADD", &pods, &c);
    for (i, out) in adds.iter().enumerate() {
        assert_eq!(out.status, 0, "pod{i}: {}", out.stdout);
    }
    let addresses: BTreeSet<String> = adds
        .iter()
        .map(|o| {
            o.json["ips"][0]["address"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(addresses.len(), PODS, "every pod its own address");
    for (pod, out) in pods.iter().zip(&adds) {
        assert_eq!(
            pod_address(pod).as_deref(),
            out.json["ips"][0]["address"].as_str()
        );
    }
    assert_eq!(agent.endpoints().len(), PODS);
    let dels = all_at_once("DEL", &pods, &c);
    for (i, out) in dels.iter().enumerate() {
        assert_eq!(out.status, 0, "DEL pod{i}: {}", out.stdout);
    }
    agent.assert_clean("after 50 parallel DELs");
}

#[test]
fn an_agent_restart_in_the_middle_of_a_batch_leaks_nothing() {
    if !require(
        "an_agent_restart_in_the_middle_of_a_batch_leaks_nothing",
        &["ip"],
    ) {
        return;
    }
    let mut agent = HostAgent::start("cr");
    let pods: Vec<Netns> = (0..PODS).map(|_| Netns::new("crp")).collect();
    let c = conf(&agent);
    let adds = thread::scope(|s| {
        let batch = s.spawn(|| all_at_once("ADD", &pods, &c));
        // Kill the agent as a crash would, once some ADDs are through.
        poll_until("the first ADDs", Duration::from_secs(30), || {
            (agent.endpoints().len() >= 5).then_some(())
        });
        agent.kill();
        agent.run();
        batch.join().expect("batch")
    });
    let mut failed = Vec::new();
    for (i, out) in adds.iter().enumerate() {
        match out.status {
            0 => {}
            _ => {
                let code = out.code();
                assert!(
                    matches!(code, Some(11) | Some(106)),
                    "pod{i}: not a spec error: {}",
                    out.stdout
                );
                failed.push(i);
            }
        }
    }
    eprintln!("{} of {PODS} ADDs failed across the restart", failed.len());
    // What a runtime does after a failed ADD: DEL it.
    let plugin = workspace_binary("pisek-cni");
    for i in &failed {
        let del = CniCall::new("DEL", &format!("pod{i}"), &pods[*i].path());
        assert_eq!(run_cni(&plugin, &del, c.as_bytes()).status, 0);
        assert_eq!(pod_address(&pods[*i]), None, "pod{i} after DEL");
    }
    // Every ADD that succeeded is whole: its address in the pod and in the agent.
    let attached: BTreeSet<String> = agent
        .endpoints()
        .into_iter()
        .map(|e| e.container_id)
        .collect();
    for (i, out) in adds.iter().enumerate().filter(|(_, o)| o.status == 0) {
        assert!(attached.contains(&format!("pod{i}")), "pod{i} lost");
        assert_eq!(
            pod_address(&pods[i]).as_deref(),
            out.json["ips"][0]["address"].as_str()
        );
    }
    assert_eq!(attached.len(), PODS - failed.len());
    let dels = all_at_once("DEL", &pods, &c);
    assert!(dels.iter().all(|o| o.status == 0));
    agent.assert_clean("after the restart batch and its DELs");
}
