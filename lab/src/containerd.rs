//! containerd as a gateway's container runtime, for the CNI plugin's test
//! of record: kubelet reaches a CNI plugin only through the runtime's CRI
//! (`RunPodSandbox` -> containerd's CRI plugin -> libcni -> the plugin), so
//! that is the path a test drives.
//!
//! Each [`Containerd`] is a private instance: its own root, state, socket,
//! config, CNI `bin_dir` and `conf_dir` under one temporary directory, so
//! tests run in parallel and the host's /etc/containerd, /var/lib/containerd
//! and /run/containerd stay untouched. (containerd 1.6 still puts each
//! shim's socket under /run/containerd/s/, a name hashed from our socket;
//! [`Containerd`]'s drop removes the ones its shims leave.)
//!
//! It runs in a gateway's network namespace, entered with `nsenter --net`
//! and not `ip netns exec`: the latter also gives the process a mount
//! namespace of its own, and containerd's bind mounts of the pods' network
//! namespaces (`/run/netns/cni-<uuid>`) would then be invisible to the
//! gateway's agent, which must open them. `/run/netns` is a shared mount
//! (`ip netns add` makes it one), so what containerd mounts there from the
//! host's mount namespace also appears in the agents' `ip netns exec` ones.
//!
//! The sandbox ("pause") image is built here, offline, from Debian's
//! `busybox-static`: an OCI image layout written by hand
//! ([`build_sandbox_image`]) and imported with `ctr images import`.

use crate::netns::unique_tag;
use crate::poll::poll;
use crate::process::terminate;
use anyhow::{Context, bail};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// The snapshotter: `native` copies layers and needs nothing of the file
/// system (overlayfs does not stack on an overlay root, as in CI containers);
/// the sandbox image is one small layer, so the copy costs nothing.
const SNAPSHOTTER: &str = "native";

/// Where containerd 1.6's shims put their sockets, whatever the config says.
const SHIM_SOCKET_DIR: &str = "/run/containerd/s";
const SHIM_RUN_DIR: &str = "/run/containerd";

/// How long containerd gets to serve its API after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The CNI network a [`Containerd`] gives its pods.
#[derive(Debug, Clone)]
pub struct CniNetwork {
    /// The network configuration list (a `.conflist`'s content).
    pub conflist: serde_json::Value,
    /// The plugin binaries the list names (and `loopback`, which
    /// containerd's CRI runs for every pod), linked into the `bin_dir`
    /// under their file names.
    pub plugins: Vec<PathBuf>,
}

/// A sandbox image as an archive `ctr images import` takes.
#[derive(Debug, Clone)]
pub struct SandboxImage {
    /// Its reference (`pisek.local/sandbox:busybox`), the CRI's `sandbox_image`.
    pub reference: String,
    /// The OCI image layout tarball.
    pub archive: PathBuf,
}

/// A containerd of a test's own, running in a network namespace. Dropping
/// it kills containerd, its shims and their pods, removes the pods' network
/// namespace files, unmounts what it mounted and deletes its directory.
#[derive(Debug)]
pub struct Containerd {
    /// The network namespace it runs in (`ip netns` name).
    pub netns: String,
    /// Its directory (config, root, state, CNI dirs, log).
    pub dir: PathBuf,
    /// Its gRPC socket (CRI and containerd's own API).
    pub socket: PathBuf,
    child: Option<Child>,
    /// The cgroup its pods go under ([`Containerd::cgroup_parent`]).
    cgroup_parent: String,
}

/// The containerds of this process that are running, and whether
/// /run/containerd was there before the first of them (its shims create
/// it): the last one to go removes it then, and not before, so no shim of
/// another is left without its directory.
static LIVE: Mutex<(usize, bool)> = Mutex::new((0, false));

impl Containerd {
    /// Writes the config and CNI directories, starts containerd in `netns`
    /// (an `ip netns` name), waits for its API and imports `image` as the
    /// pods' sandbox image.
    pub fn start(
        netns: &str,
        network: &CniNetwork,
        image: &SandboxImage,
    ) -> anyhow::Result<Containerd> {
        let name = format!("pisek-ctrd-{}", unique_tag("c"));
        let dir = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut containerd = Containerd {
            netns: netns.to_string(),
            socket: dir.join("containerd.sock"),
            dir,
            child: None,
            cgroup_parent: format!("/{name}"),
        };
        {
            let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
            if live.0 == 0 {
                live.1 = Path::new(SHIM_RUN_DIR).exists();
            }
            live.0 += 1;
        }
        containerd.write_cni(network)?;
        let config = containerd.dir.join("config.toml");
        std::fs::write(&config, containerd.config_toml(&image.reference))?;
        let log = std::fs::File::create(containerd.dir.join("containerd.log"))?;
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{netns}"))
            .arg("containerd")
            .arg("--config")
            .arg(&config)
            .arg("--log-level")
            .arg("info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting containerd")?;
        containerd.child = Some(child);
        containerd.wait_for_api()?;
        containerd.import(image)?;
        Ok(containerd)
    }

    /// The cgroup a pod's `linux.cgroup_parent` should name, as kubelet
    /// gives its own (`/kubepods/...`): without one, containerd puts pods
    /// under `/k8s.io`, shared with any other containerd and left behind.
    /// Drop removes it.
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    /// `ctr` against this containerd, in the CRI's namespace (`k8s.io`).
    pub fn ctr(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", "k8s.io"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running ctr")?;
        if !out.status.success() {
            bail!(
                "ctr {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The last `lines` lines of containerd's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The CNI `bin_dir`: links to the plugins under their own names.
    fn write_cni(&self, network: &CniNetwork) -> anyhow::Result<()> {
        let bin = self.dir.join("cni-bin");
        let conf = self.dir.join("cni-conf");
        std::fs::create_dir_all(&bin)?;
        std::fs::create_dir_all(&conf)?;
        for plugin in &network.plugins {
            let name = plugin
                .file_name()
                .with_context(|| format!("plugin path {} has no file name", plugin.display()))?;
            if !plugin.is_file() {
                bail!("CNI plugin {} is not there", plugin.display());
            }
            std::os::unix::fs::symlink(plugin, bin.join(name))?;
        }
        let name = network.conflist["name"].as_str().unwrap_or("network");
        std::fs::write(
            conf.join(format!("10-{name}.conflist")),
            serde_json::to_vec_pretty(&network.conflist)?,
        )?;
        Ok(())
    }

    /// containerd's config: everything under our directory, the plugins
    /// that need what a test machine lacks (other snapshotters, tracing)
    /// disabled, CRI without AppArmor or SELinux.
    fn config_toml(&self, sandbox_image: &str) -> String {
        let dir = self.dir.display();
        let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
        format!(
            r#"version = 2
root = "{dir}/root"
state = "{dir}/state"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.overlayfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{dir}/containerd.sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

# containerd's task service needs the v1 runtime loaded, though the CRI uses v2.
[plugins."io.containerd.runtime.v1.linux"]
  runtime_root = "{dir}/runc-v1"

[plugins."io.containerd.internal.v1.opt"]
  path = "{dir}/opt"

[{cri}]
  sandbox_image = "{sandbox_image}"
  disable_apparmor = true
  enable_selinux = false
  restrict_oom_score_adj = true
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # Pods' network namespaces in /run/netns, the shared mount the agents see.
  netns_mounts_under_state_dir = false

[{cri}.containerd]
  snapshotter = "{SNAPSHOTTER}"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  Root = "{dir}/runc"

[{cri}.cni]
  bin_dir = "{dir}/cni-bin"
  conf_dir = "{dir}/cni-conf"
  max_conf_num = 1
"#,
            socket = self.socket.display(),
        )
    }

    /// Polls `ctr version` until containerd answers; an early exit fails at
    /// once with its log.
    fn wait_for_api(&mut self) -> anyhow::Result<()> {
        let socket = self.socket.clone();
        let started = poll("containerd's API", START_TIMEOUT, || {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("containerd exited with {status}");
            }
            if !socket.exists() {
                return Ok(None);
            }
            let ok = Command::new("ctr")
                .arg("--address")
                .arg(&socket)
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?
                .success();
            Ok(ok.then_some(()))
        });
        started.with_context(|| format!("containerd's log:\n{}", self.log_tail(30)))
    }

    /// Imports the sandbox image into the CRI's namespace, unpacked for the
    /// CRI's snapshotter (a sandbox is created from the unpacked snapshot).
    fn import(&self, image: &SandboxImage) -> anyhow::Result<()> {
        let archive = image.archive.display().to_string();
        self.ctr(&["images", "import", "--snapshotter", SNAPSHOTTER, &archive])?;
        let listed = self.ctr(&["images", "list", "--quiet"])?;
        if !listed.lines().any(|l| l == image.reference) {
            bail!(
                "{} is not among the imported images: {listed}",
                image.reference
            );
        }
        Ok(())
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Whatever the test did not stop: the shims (started by containerd,
        // reparented when it goes) and their pods, found by the socket on
        // the shims' command lines. Their network namespaces first, while
        // the pods still hold them.
        let shims = shims_of(&self.socket);
        let pods: Vec<u32> = shims.iter().flat_map(|&s| descendants(s)).collect();
        let pod_netns: Vec<u64> = pods.iter().filter_map(|&p| netns_inode(p)).collect();
        if let Some(mut child) = self.child.take() {
            let _ = terminate(&mut child);
        }
        for pid in pods.iter().chain(&shims) {
            kill(*pid);
        }
        remove_pod_netns(&pod_netns);
        remove_shim_sockets(&self.dir.join("state"));
        {
            let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
            live.0 = live.0.saturating_sub(1);
            if live.0 == 0 && !live.1 {
                // Only when empty: a containerd of another process may use it.
                let _ = std::fs::remove_dir(SHIM_SOCKET_DIR);
                let _ = std::fs::remove_dir(SHIM_RUN_DIR);
            }
        }
        remove_cgroup(&self.cgroup_parent);
        unmount_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Processes whose command line carries `-address <socket>`: the shims of
/// the containerd listening there.
fn shims_of(socket: &Path) -> Vec<u32> {
    let socket = socket.to_string_lossy();
    processes()
        .filter(|&pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            args.windows(2)
                .any(|w| w[0] == b"-address" && w[1] == socket.as_bytes())
        })
        .collect()
}

/// Every process id in /proc.
fn processes() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
}

/// The parent of a process (field 4 of /proc/PID/stat, after the command
/// name in parentheses, which may itself hold spaces).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Every descendant of `root` (children before grandchildren).
fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = processes()
        .filter_map(|p| Some((p, parent_of(p)?)))
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// The inode of a process's network namespace.
fn netns_inode(pid: u32) -> Option<u64> {
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|m| m.ino())
}

fn kill(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Unmounts and removes the `/run/netns/cni-*` files (the CRI's names)
/// bound to one of `inodes`: the namespaces of our pods, and only those.
fn remove_pod_netns(inodes: &[u64]) {
    if inodes.is_empty() {
        return;
    }
    for entry in std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = entry.path();
        let ours = entry.file_name().to_string_lossy().starts_with("cni-")
            && std::fs::metadata(&path).is_ok_and(|m| inodes.contains(&m.ino()));
        if ours {
            let _ = Command::new("umount").arg(&path).status();
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Removes the sockets of shims that did not exit on their own: each
/// bundle under the runtime's state records its shim's address
/// (`unix:///run/containerd/s/<hash>`).
fn remove_shim_sockets(state: &Path) {
    let tasks = state.join("io.containerd.runtime.v2.task");
    for namespace in std::fs::read_dir(tasks).into_iter().flatten().flatten() {
        for bundle in std::fs::read_dir(namespace.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let address =
                std::fs::read_to_string(bundle.path().join("address")).unwrap_or_default();
            if let Some(path) = address.trim().strip_prefix("unix://") {
                if Path::new(path).parent() == Some(Path::new(SHIM_SOCKET_DIR)) {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }
}

/// Removes the cgroup `parent` (and what is left below it) from every
/// hierarchy: each of cgroup v1's under /sys/fs/cgroup, or v2's there.
/// A cgroup goes with rmdir once it has no process, children first.
fn remove_cgroup(parent: &str) {
    let relative = parent.trim_start_matches('/');
    if relative.is_empty() {
        return;
    }
    let root = Path::new("/sys/fs/cgroup");
    let hierarchies = std::fs::read_dir(root).into_iter().flatten().flatten();
    let candidates = hierarchies
        .map(|h| h.path().join(relative))
        .chain([root.join(relative)]);
    for cgroup in candidates.filter(|c| c.is_dir()) {
        remove_cgroup_tree(&cgroup);
    }
}

fn remove_cgroup_tree(cgroup: &Path) {
    for child in std::fs::read_dir(cgroup).into_iter().flatten().flatten() {
        if child.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_tree(&child.path());
        }
    }
    let _ = std::fs::remove_dir(cgroup);
}

/// Unmounts everything mounted under `dir` (the pods' root file systems,
/// their /dev/shm), deepest first, lazily so a busy mount cannot block.
fn unmount_under(dir: &Path) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = format!("{}/", dir.display());
    let mut points: Vec<&str> = mountinfo
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let _ = Command::new("umount").args(["--lazy", point]).status();
    }
}

/// Builds the pods' sandbox image in `dir`: one layer with Debian's static
/// busybox (`/bin/busybox` and the links a sandbox uses), whose entrypoint
/// sleeps for ever, as an OCI image layout tarball. The CRI stops a sandbox
/// with SIGKILL, so a sleeping PID 1 does not delay StopPodSandbox.
pub fn build_sandbox_image(dir: &Path, reference: &str) -> anyhow::Result<SandboxImage> {
    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() {
        bail!(
            "{} is missing (Debian package busybox-static)",
            busybox.display()
        );
    }
    let rootfs = dir.join("sandbox-rootfs");
    let layout = dir.join("sandbox-layout");
    let blobs = layout.join("blobs/sha256");
    let _ = std::fs::remove_dir_all(&rootfs);
    let _ = std::fs::remove_dir_all(&layout);
    for sub in ["bin", "etc", "dev", "proc", "sys", "tmp"] {
        std::fs::create_dir_all(rootfs.join(sub))?;
    }
    std::fs::create_dir_all(&blobs)?;
    std::fs::copy(busybox, rootfs.join("bin/busybox"))?;
    for link in ["sh", "sleep"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(link))?;
    }

    // The layer, uncompressed, so its digest is also its diff id.
    let layer = dir.join("sandbox-layer.tar");
    tar(&rootfs, &layer, &["."])?;
    let layer_blob = add_blob(&blobs, &std::fs::read(&layer)?)?;

    let config = serde_json::json!({
        "architecture": go_arch(),
        "os": "linux",
        "config": {
            "Env": ["PATH=/bin"],
            "Entrypoint": ["/bin/sleep", "2147483647"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_blob.digest]},
    });
    let config_blob = add_blob(&blobs, &serde_json::to_vec(&config)?)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_blob.descriptor("application/vnd.oci.image.config.v1+json"),
        "layers": [layer_blob.descriptor("application/vnd.oci.image.layer.v1.tar")],
    });
    let manifest_blob = add_blob(&blobs, &serde_json::to_vec(&manifest)?)?;
    let mut manifest_descriptor =
        manifest_blob.descriptor("application/vnd.oci.image.manifest.v1+json");
    // ctr names the image by containerd's own annotation.
    manifest_descriptor["annotations"] = serde_json::json!({
        "io.containerd.image.name": reference,
        "org.opencontainers.image.ref.name": reference,
    });
    manifest_descriptor["platform"] = serde_json::json!({"architecture": go_arch(), "os": "linux"});
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [manifest_descriptor]});
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index)?)?;
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;

    let archive = dir.join("sandbox-image.tar");
    tar(&layout, &archive, &["oci-layout", "index.json", "blobs"])?;
    let _ = std::fs::remove_dir_all(&rootfs);
    let _ = std::fs::remove_file(&layer);
    Ok(SandboxImage {
        reference: reference.to_string(),
        archive,
    })
}

/// A content-addressed blob of the image layout.
struct Blob {
    digest: String,
    size: usize,
}

impl Blob {
    fn descriptor(&self, media_type: &str) -> serde_json::Value {
        serde_json::json!({"mediaType": media_type, "digest": self.digest, "size": self.size})
    }
}

/// Stores `bytes` as `blobs/sha256/<hex>`.
fn add_blob(blobs: &Path, bytes: &[u8]) -> anyhow::Result<Blob> {
    let staged = blobs.join("staged");
    std::fs::write(&staged, bytes)?;
    let out = Command::new("sha256sum")
        .arg(&staged)
        .output()
        .context("running sha256sum")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text
        .split_whitespace()
        .next()
        .filter(|h| out.status.success() && h.len() == 64)
        .with_context(|| format!("sha256sum: {text}"))?
        .to_string();
    std::fs::rename(&staged, blobs.join(&hex))?;
    Ok(Blob {
        digest: format!("sha256:{hex}"),
        size: bytes.len(),
    })
}

/// `tar` of `entries` of `dir`, owned by root, with a fixed time and order
/// so the same busybox gives the same digests.
fn tar(dir: &Path, archive: &Path, entries: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("tar")
        .args([
            "--sort=name",
            "--numeric-owner",
            "--owner=0",
            "--group=0",
            "--mtime=@0",
        ])
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(archive)
        .args(entries)
        .output()
        .context("running tar")?;
    if !out.status.success() {
        bail!("tar: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// The machine's architecture as OCI (Go) names it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}
