//! `pisek-agent` as an operator starts it: a bad config exits non-zero with
//! one line per problem. (Being an integration test of this package, it also
//! makes `cargo test --workspace` build the agent's binaries, which the root
//! package's namespace tests run.)

use pisek_agent::config::Role;
use pisek_agent::config::fixture::{
    AgentToml, BgpNeighborToml, TEST_PEER_PUBLIC_KEY, TenantToml, WireguardPeerToml, write_test_key,
};
use std::path::PathBuf;
use std::process::Command;

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("pisek-agent-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A gateway's config with `tenants` (the part each test varies), written
/// to `dir/agent.toml` beside a key file.
fn config(dir: &Dir, tenants: impl FnOnce(AgentToml) -> AgentToml) -> PathBuf {
    let key = dir.0.join("wg.key");
    write_test_key(&key).expect("key");
    let fixture = AgentToml::new("gw-1", Role::Gateway, "10.255.0.2", &key)
        .peer(
            WireguardPeerToml::new("edge-1", TEST_PEER_PUBLIC_KEY, "10.255.0.1")
                .endpoint("192.0.2.1:51820"),
        )
        .neighbor(BgpNeighborToml::new("10.255.0.1"));
    let path = dir.0.join("agent.toml");
    tenants(fixture).write(&path).expect("config");
    path
}

fn check_config(path: &PathBuf) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pisek-agent"))
        .arg("--config")
        .arg(path)
        .arg("--check-config")
        .output()
        .expect("run pisek-agent");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn valid_config_passes_the_check() {
    let dir = Dir::new("ok");
    let path = config(&dir, |c| {
        c.tenant(TenantToml::new("city", 1).prefixes(["10.1.1.0/24"]))
    });
    let (code, stdout, stderr) = check_config(&path);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.ends_with(": ok\n"), "{stdout}");
}

#[test]
fn invalid_config_exits_2_with_one_line_per_problem() {
    let dir = Dir::new("bad");
    let path = config(&dir, |c| {
        c.tenant(TenantToml::new("City", 0).prefixes(["10.1.1.7/24"]))
    });
    let (code, _, stderr) = check_config(&path);
    assert_eq!(code, Some(2));
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    for line in &lines {
        assert!(line.starts_with(&path.display().to_string()), "{line}");
    }
    assert!(
        lines.iter().any(|l| l.contains("tenant[0].name: `City`")),
        "{stderr}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("tenant[0].id: 0 is outside")),
        "{stderr}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("did you mean 10.1.1.0/24?")),
        "{stderr}"
    );
}

#[test]
fn unknown_field_names_its_line() {
    let dir = Dir::new("unknown");
    // `prefix` is not a key of the schema: raw TOML, past the builder.
    let path = config(&dir, |c| {
        c.raw("\n[[tenant]]\nname = \"city\"\nid = 1\nprefix = [\"10.1.1.0/24\"]\n")
    });
    let (code, _, stderr) = check_config(&path);
    assert_eq!(code, Some(2));
    let text = std::fs::read_to_string(&path).expect("read");
    let line = text
        .lines()
        .position(|l| l.starts_with("prefix ="))
        .expect("line")
        + 1;
    assert!(
        stderr.starts_with(&format!(
            "{}:{line}:1: unknown field `prefix`",
            path.display()
        )),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
