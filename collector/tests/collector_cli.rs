//! `pisek-collector` as an operator runs it: config checks at the command
//! line. (Being an integration test of pisek-collector, this also makes
//! `cargo test --workspace` build the binary that the root package's
//! end-to-end tests in tests/collector_e2e.rs start.)

use std::process::Command;

fn collector() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pisek-collector"))
}

fn temp_config(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "pisek-collector-cli-{}-{name}.toml",
        std::process::id()
    ));
    std::fs::write(&path, text).expect("write config");
    path
}

const GOOD: &str = r#"
[graphite]
address = "127.0.0.1:2003"

[[route]]
filter = "iqrf/#"
decoder = "iqrf"
metric = "austin.node{node}.{field}"
"#;

#[test]
fn check_config_accepts_a_minimal_config() {
    let path = temp_config("good", GOOD);
    let out = collector()
        .arg("--config")
        .arg(&path)
        .arg("--check-config")
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).ends_with(": ok\n"));
}

#[test]
fn check_config_names_an_unknown_field() {
    let path = temp_config("typo", &GOOD.replace("address", "adress"));
    let out = collector()
        .arg("--config")
        .arg(&path)
        .arg("--check-config")
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field `adress`"), "{err}");
}
