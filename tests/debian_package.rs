//! The Debian package (`scripts/build-deb`, issue 15): built from this
//! build's binaries, its contents checked, its example configs accepted by
//! `--check-config`, its units by `systemd-analyze verify`; installed,
//! upgraded, removed (the config stays) and purged (nothing is left) on
//! this machine with dpkg.
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env("PISEK_DEB_COMPRESSION", "gzip")
        .output()
        .expect(program);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn build_deb(bin_dir: &Path, out: &Path, version: &str) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-deb");
    let path = run(
        script.to_str().expect("path"),
        &[
            bin_dir.to_str().expect("path"),
            out.to_str().expect("path"),
            version,
        ],
    );
    PathBuf::from(path.trim())
}

/// Every path the package installs.
const FILES: [&str; 9] = [
    "/usr/bin/pisek-agent",
    "/usr/bin/pisekctl",
    "/usr/bin/pisek-collector",
    "/usr/lib/cni/pisek-cni",
    "/lib/systemd/system/pisek-agent.service",
    "/lib/systemd/system/pisek-collector.service",
    "/etc/pisek/agent.toml.example",
    "/etc/pisek/collector.toml.example",
    "/usr/share/doc/pisek/copyright",
];

#[test]
fn the_deb_installs_upgrades_and_purges_leaving_nothing() {
    if !pisek_lab::require(
        "the_deb_installs_upgrades_and_purges_leaving_nothing",
        &["dpkg", "dpkg-deb", "systemd-analyze", "wg"],
    ) {
        return;
    }
    let installed = Command::new("dpkg")
        .args(["-s", "pisek"])
        .output()
        .expect("dpkg");
    assert!(
        !installed.status.success(),
        "a `pisek` package is already installed here; this test installs and purges its own"
    );
    let bin_dir = pisek_lab::profile_dir().expect("profile dir");
    let tmp = pisek_lab::TempDir::new("deb");
    let v1 = build_deb(&bin_dir, &tmp.path, "0.1.0");
    let v2 = build_deb(&bin_dir, &tmp.path, "0.1.1");

    // Contents.
    let listing = run("dpkg-deb", &["-c", v1.to_str().expect("path")]);
    for file in FILES {
        assert!(
            listing.contains(&format!(".{file}")),
            "{file} missing:\n{listing}"
        );
    }
    assert_eq!(
        run("dpkg-deb", &["-f", v1.to_str().expect("path"), "Package"]).trim(),
        "pisek"
    );

    // The example configs are accepted as they are (but for the key file).
    let root = tmp.path.join("root");
    run(
        "dpkg-deb",
        &[
            "-x",
            v1.to_str().expect("path"),
            root.to_str().expect("path"),
        ],
    );
    let key = tmp.path.join("wg.key");
    std::fs::write(&key, run("wg", &["genkey"])).expect("key");
    run("chmod", &["600", key.to_str().expect("path")]);
    let agent_example = std::fs::read_to_string(root.join("etc/pisek/agent.toml.example"))
        .expect("agent example")
        .replace("/etc/pisek/wg.key", key.to_str().expect("path"));
    let agent_conf = tmp.path.join("agent.toml");
    std::fs::write(&agent_conf, agent_example).expect("write");
    let agent = root.join("usr/bin/pisek-agent");
    let checked = run(
        agent.to_str().expect("path"),
        &[
            "--config",
            agent_conf.to_str().expect("path"),
            "--check-config",
        ],
    );
    assert!(checked.contains(": ok"), "{checked}");
    let collector = root.join("usr/bin/pisek-collector");
    let collector_conf = root.join("etc/pisek/collector.toml.example");
    run(
        collector.to_str().expect("path"),
        &[
            "--config",
            collector_conf.to_str().expect("path"),
            "--check-config",
        ],
    );

    // Install, verify the units, upgrade.
    run("dpkg", &["-i", v1.to_str().expect("path")]);
    for file in FILES {
        assert!(Path::new(file).exists(), "{file} not installed");
    }
    run(
        "systemd-analyze",
        &[
            "verify",
            "/lib/systemd/system/pisek-agent.service",
            "/lib/systemd/system/pisek-collector.service",
        ],
    );
    run("dpkg", &["-i", v2.to_str().expect("path")]);
    let version = run("dpkg-query", &["-W", "-f=${Version}", "pisek"]);
    assert_eq!(version, "0.1.1");

    // Remove keeps the config; purge leaves nothing.
    run("dpkg", &["-r", "pisek"]);
    assert!(
        Path::new("/etc/pisek/agent.toml.example").exists(),
        "config kept on remove"
    );
    assert!(!Path::new("/usr/bin/pisek-agent").exists());
    run("dpkg", &["-P", "pisek"]);
    let left: Vec<&str> = FILES
        .iter()
        .copied()
        .chain(["/etc/pisek", "/var/lib/pisek", "/usr/share/doc/pisek"])
        .filter(|p| Path::new(p).exists())
        .collect();
    assert!(left.is_empty(), "left after purge: {left:?}");
    let known = Command::new("dpkg")
        .args(["-s", "pisek"])
        .output()
        .expect("dpkg");
    assert!(!known.status.success(), "dpkg still knows pisek");
}
