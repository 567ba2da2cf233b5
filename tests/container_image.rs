//! The container image (`scripts/build-image`, issue 15), run as the
//! DaemonSet runs it: built offline from this build's binaries, imported
//! into a private containerd (`ctr images import`), its init step run with
//! the host's CNI directories of a scratch host root mounted (the plugin
//! and the conflist arrive), then the agent run on the host network,
//! privileged, with the DaemonSet's mounts: `pisekctl status` answers
//! through the mounted socket.
use pisek_agent::config::Role;
use pisek_agent::config::fixture::{AgentToml, TenantToml, write_test_key};
use pisek_lab::containerd::{CniNetwork, Containerd, build_sandbox_image};
use pisek_lab::{Netns, TempDir, poll_until, require, workspace_binary};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const REF: &str = "registry.example.invalid/pisek/pisek:test";
const NODE: &str = "node1";

/// The DaemonSet's init script, word for word (checked against the manifest).
const INIT: [&str; 6] = [
    "set -e",
    "cp /usr/lib/cni/pisek-cni /host/opt/cni/bin/.pisek-cni.tmp",
    "chmod 0755 /host/opt/cni/bin/.pisek-cni.tmp",
    "mv -f /host/opt/cni/bin/.pisek-cni.tmp /host/opt/cni/bin/pisek-cni",
    "cp /etc/pisek/cni/10-pisek.conflist /host/etc/cni/net.d/.10-pisek.conflist.tmp",
    "mv -f /host/etc/cni/net.d/.10-pisek.conflist.tmp /host/etc/cni/net.d/10-pisek.conflist",
];

fn bind(host: &Path, container: &str, mode: &str) -> String {
    format!(
        "type=bind,src={},dst={container},options=rbind:{mode}",
        host.display()
    )
}

#[test]
fn the_image_runs_as_the_daemonset_runs_it() {
    if !require(
        "the_image_runs_as_the_daemonset_runs_it",
        &["containerd", "ctr", "runc", "busybox", "ip"],
    ) {
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("deploy/kubernetes/30-agent-daemonset.yaml"))
        .expect("the DaemonSet");
    for line in INIT {
        assert!(
            manifest.contains(line),
            "the DaemonSet's init script lacks `{line}`"
        );
    }

    let tmp = TempDir::new("img");
    let image = tmp.path.join("pisek.tar");
    let bin_dir = pisek_lab::profile_dir().expect("profile dir");
    let out = Command::new(root.join("scripts/build-image"))
        .arg(&bin_dir)
        .arg(&image)
        .arg(REF)
        .output()
        .expect("build-image");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A scratch host root with the paths the DaemonSet mounts.
    let host = tmp.path.join("host");
    for dir in [
        "run/pisek",
        "var/lib/pisek",
        "etc/pisek/nodes",
        "etc/pisek/keys",
        "etc/pisek/cni",
        "opt/cni/bin",
        "etc/cni/net.d",
    ] {
        std::fs::create_dir_all(host.join(dir)).expect("scratch dir");
    }
    write_test_key(&host.join("etc/pisek/keys").join(format!("{NODE}.key"))).expect("key");
    AgentToml::new(
        NODE,
        Role::Edge,
        "10.255.0.1",
        format!("/etc/pisek/keys/{NODE}.key"),
    )
    .api_socket("/run/pisek/agent.sock")
    .state_dir("/var/lib/pisek")
    .tenant(TenantToml::new("city", 1).prefixes(["10.1.1.0/24"]))
    .write(&host.join("etc/pisek/nodes").join(format!("{NODE}.toml")))
    .expect("config");
    std::fs::write(
        host.join("etc/pisek/cni/10-pisek.conflist"),
        r#"{"cniVersion":"1.1.0","name":"pisek","plugins":[{"type":"pisek-cni"}]}"#,
    )
    .expect("conflist");

    // The node: a namespace, with a containerd of its own.
    let node = Netns::new("img");
    let sandbox = build_sandbox_image(&tmp.path, "pisek.local/sandbox:img").expect("sandbox image");
    let network = CniNetwork {
        conflist: serde_json::json!({"cniVersion": "1.0.0", "name": "none", "plugins": [{"type": "loopback"}]}),
        plugins: vec![Path::new("/usr/lib/cni/loopback").to_path_buf()],
    };
    let containerd = Containerd::start(&node.name, &network, &sandbox).expect("containerd");
    containerd
        .ctr(&[
            "images",
            "import",
            "--snapshotter",
            "native",
            image.to_str().expect("path"),
        ])
        .expect("ctr images import");
    let cgroup = |id: &str| format!("{}/{id}", containerd.cgroup_parent());

    // The init container.
    let script = INIT.join("\n");
    let init_id = pisek_lab::unique_tag("init");
    let init = cgroup(&init_id);
    containerd
        .ctr(&[
            "run",
            "--rm",
            "--snapshotter",
            "native",
            "--privileged",
            "--cgroup",
            &init,
            "--mount",
            &bind(&host.join("opt/cni/bin"), "/host/opt/cni/bin", "rw"),
            "--mount",
            &bind(&host.join("etc/cni/net.d"), "/host/etc/cni/net.d", "rw"),
            "--mount",
            &bind(&host.join("etc/pisek/cni"), "/etc/pisek/cni", "ro"),
            REF,
            &init_id,
            "/bin/sh",
            "-c",
            &script,
        ])
        .unwrap_or_else(|e| panic!("the init step: {e:#}\n{}", containerd.log_tail(20)));
    let plugin = host.join("opt/cni/bin/pisek-cni");
    assert_eq!(
        std::fs::read(&plugin).expect("the plugin installed"),
        std::fs::read(workspace_binary("pisek-cni")).expect("the built plugin"),
    );
    assert!(
        host.join("etc/cni/net.d/10-pisek.conflist").is_file(),
        "conflist installed"
    );
    let leftovers: Vec<_> = std::fs::read_dir(host.join("opt/cni/bin"))
        .expect("dir")
        .chain(std::fs::read_dir(host.join("etc/cni/net.d")).expect("dir"))
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // The agent, as the DaemonSet's container (ids unique: runc's state
    // directory is shared by every containerd on the machine).
    let id = pisek_lab::unique_tag("agent");
    let agent_cgroup = cgroup(&id);
    let agent_log = format!("file://{}", tmp.path.join("agent.log").display());
    containerd
        .ctr(&[
            "run",
            "-d",
            "--snapshotter",
            "native",
            "--privileged",
            "--net-host",
            "--cgroup",
            &agent_cgroup,
            "--log-uri",
            &agent_log,
            "--env",
            &format!("NODE_NAME={NODE}"),
            "--mount",
            &bind(&host.join("etc/pisek/nodes"), "/etc/pisek/nodes", "ro"),
            "--mount",
            &bind(&host.join("etc/pisek/keys"), "/etc/pisek/keys", "ro"),
            "--mount",
            &bind(&host.join("run/pisek"), "/run/pisek", "rw"),
            "--mount",
            &bind(&host.join("var/lib/pisek"), "/var/lib/pisek", "rw"),
            REF,
            &id,
            "/bin/sh",
            "-c",
            "exec /usr/bin/pisek-agent --config \"/etc/pisek/nodes/${NODE_NAME}.toml\"",
        ])
        .unwrap_or_else(|e| panic!("the agent container: {e:#}"));
    let socket = host.join("run/pisek/agent.sock");
    let status = pisek_lab::poll(
        "pisekctl status through the mounted socket",
        Duration::from_secs(20),
        || {
            let out = Command::new(workspace_binary("pisekctl"))
                .arg("--socket")
                .arg(&socket)
                .args(["status", "--json"])
                .output()?;
            Ok(out
                .status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned()))
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\nagent: {}\ncontainerd: {}",
            std::fs::read_to_string(tmp.path.join("agent.log")).unwrap_or_default(),
            containerd.log_tail(20)
        )
    });
    let status: serde_json::Value = serde_json::from_str(&status).expect("status JSON");
    assert_eq!(status["node"], NODE, "{status}");
    // The agent runs in the node's namespace (host network): its TUN is there.
    let links = String::from_utf8_lossy(&node.ip(["-o", "link"]).stdout).into_owned();
    assert!(links.contains("pisek0"), "{links}");
    assert!(
        host.join("var/lib/pisek/state.json").is_file(),
        "state on the host"
    );
    let _ = containerd.ctr(&["task", "kill", "--signal", "SIGKILL", &id]);
    poll_until("the agent's task gone", Duration::from_secs(10), || {
        containerd.ctr(&["task", "delete", &id]).ok()
    });
    let _ = containerd.ctr(&["container", "delete", &id]);
}
