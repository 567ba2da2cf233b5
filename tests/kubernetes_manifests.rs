//! The Kubernetes manifests (`deploy/kubernetes`, issue 15): valid against
//! the Kubernetes schemas offline (`kubernetes-validate`, pinned, schemas
//! of 1.31), and the DaemonSet gives the agent what its own config needs:
//! every path the per-node configs name is mounted from the host, the key
//! files come from the Secret, the device and namespaces are there, the
//! probes ask the configured socket, and the CNI conflist names it too.
use pisek_agent::config::Config;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("deploy/kubernetes"))
        .expect("deploy/kubernetes")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Every document of every manifest, as JSON (read with the validator's
/// own PyYAML, so no YAML parser is added to the workspace).
fn documents(python: &Path) -> Vec<Value> {
    let mut docs = Vec::new();
    for file in manifests() {
        let out = Command::new(python)
            .args([
                "-c",
                "import sys, json, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
            ])
            .arg(&file)
            .output()
            .expect("python");
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let list: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON");
        docs.extend(list);
    }
    docs
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn the_manifests_are_valid_and_give_the_agent_what_its_config_needs() {
    let pyenv = root().join("target/pyenv/bin");
    let validate = pyenv.join("kubernetes-validate");
    // An absolute path: `require` finds it as it is (scripts/install-deps
    // puts it there).
    if !pisek_lab::require(
        "the_manifests_are_valid_and_give_the_agent_what_its_config_needs",
        &[validate.to_str().expect("path")],
    ) {
        return;
    }
    let out = Command::new(&validate)
        .args(["--strict", "-k", "1.31.0"])
        .args(manifests())
        .output()
        .expect("kubernetes-validate");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let docs = documents(&pyenv.join("python"));
    let ds = find(&docs, "DaemonSet", "pisek-agent");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    let agent = &pod["containers"][0];
    assert_eq!(agent["securityContext"]["privileged"], true);
    let volumes = pod["volumes"].as_array().expect("volumes");
    let volume = |name: &str| -> &Value {
        volumes
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
    };
    let mounts: Vec<(String, &Value)> = agent["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .map(|m| {
            (
                m["mountPath"].as_str().expect("path").to_string(),
                volume(m["name"].as_str().expect("name")),
            )
        })
        .collect();
    // The host path a container path comes from, if any.
    let host_path_of = |path: &Path| -> Option<&Value> {
        mounts
            .iter()
            .filter(|(m, _)| path.starts_with(m))
            .max_by_key(|(m, _)| m.len())
            .map(|(_, v)| *v)
    };

    let configs = find(&docs, "ConfigMap", "pisek-agent")["data"]
        .as_object()
        .expect("per-node configs");
    assert!(!configs.is_empty());
    for (key, text) in configs {
        let config = Config::parse(text.as_str().expect("text"), key)
            .unwrap_or_else(|e| panic!("{key} is not a valid agent config: {e}"));
        // What the agent writes lives on the host, across pod restarts.
        for path in [
            config.state.dir.as_path(),
            config.api.socket.parent().expect("socket dir"),
        ] {
            let v = host_path_of(path)
                .unwrap_or_else(|| panic!("{key}: {} is not mounted", path.display()));
            assert!(
                v["hostPath"]["path"].is_string(),
                "{key}: {} is not a host path",
                path.display()
            );
        }
        let key_file = &config.wireguard.private_key_file;
        let v = host_path_of(key_file)
            .unwrap_or_else(|| panic!("{key}: {} not mounted", key_file.display()));
        assert_eq!(
            v["secret"]["secretName"], "pisek-agent-keys",
            "{key}: the key comes from the Secret"
        );
        let file_name = key_file
            .file_name()
            .and_then(|f| f.to_str())
            .expect("key file name");
        let secret = find(&docs, "Secret", "pisek-agent-keys");
        assert!(
            secret["stringData"][file_name].is_string(),
            "{key}: no {file_name} in the Secret"
        );
        // The probes ask the socket this config serves.
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
            let cmd = agent[probe]["exec"]["command"].as_array().expect(probe);
            assert!(
                cmd.iter().any(|c| c.as_str() == config.api.socket.to_str()),
                "{probe} does not use {}",
                config.api.socket.display()
            );
        }
        // Its node name is its ConfigMap key: the DaemonSet picks it by NODE_NAME.
        assert_eq!(format!("{}.toml", config.node.name), *key);
    }
    // The device and the runtime's namespaces.
    assert_eq!(
        host_path_of(Path::new("/dev/net/tun")).expect("tun")["hostPath"]["type"],
        "CharDevice"
    );
    let netns = agent["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["mountPath"] == "/run/netns")
        .expect("/run/netns mounted");
    assert_eq!(netns["mountPropagation"], "HostToContainer");
    assert!(
        agent["command"]
            .to_string()
            .contains("/etc/pisek/nodes/${NODE_NAME}.toml"),
        "the agent reads its node's file"
    );
    // The CNI plugin and conflist: installed by write-then-rename into the
    // host's directories, naming the agents' socket.
    let init = &pod["initContainers"][0];
    let script = init["command"].to_string();
    for needle in [
        "mv -f",
        "/host/opt/cni/bin/pisek-cni",
        "/host/etc/cni/net.d/10-pisek.conflist",
    ] {
        assert!(script.contains(needle), "init container: no `{needle}`");
    }
    let conflist: Value = serde_json::from_str(
        find(&docs, "ConfigMap", "pisek-cni")["data"]["10-pisek.conflist"]
            .as_str()
            .expect("conflist"),
    )
    .expect("conflist JSON");
    assert_eq!(conflist["plugins"][0]["type"], "pisek-cni");
    assert_eq!(
        conflist["plugins"][0]["agentSocket"],
        "/run/pisek/agent.sock"
    );
    assert_eq!(
        ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"],
        1
    );
}
