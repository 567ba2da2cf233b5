use super::*;
use crate::attach::Attachments;
use crate::config::Config;
use crate::config::Role;
use crate::config::fixture::{AgentToml, TenantToml};
use crate::netlink::Netlink;
use crate::state::StateStore;
use pisek_api::{ApiClient, ClientError};
use std::path::PathBuf;
use std::sync::Arc;

fn config() -> Config {
    AgentToml::new("gw-test", Role::Edge, "10.255.0.1", "/nonexistent")
        .tenant(TenantToml::new("city", 1).prefixes(["10.1.1.0/24"]))
        .config()
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server on a socket in a temp dir; no netlink work is done by the ops
/// used here, so it runs unprivileged.
async fn server(tag: &str) -> (TempDir, PathBuf) {
    let dir = TempDir(std::env::temp_dir().join(format!("pisek-api-{tag}-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    let config = Arc::new(config());
    let store = StateStore::open(&dir.0.join("state"), &dir.0.join("run")).expect("state");
    let attachments = Arc::new(Attachments::new(
        Arc::clone(&config),
        Arc::new(tokio::sync::Mutex::new(store)),
        Netlink::open().expect("netlink"),
    ));
    let socket = dir.0.join("agent.sock");
    let listener = bind_socket(&socket).expect("bind");
    let server = ApiServer::new(config, attachments, Arc::new(NoDataplane));
    tokio::spawn(server.serve(listener));
    (dir, socket)
}

fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    tokio::task::spawn_blocking(f)
}

#[tokio::test]
async fn socket_is_mode_0600() {
    let (_dir, socket) = server("mode").await;
    let mode = std::fs::metadata(&socket).expect("stat").permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
}

#[tokio::test]
async fn malformed_lines_get_errors_and_the_connection_stays_usable() {
    let (_dir, socket) = server("malformed").await;
    blocking(move || {
        let mut client = ApiClient::connect(&socket).expect("connect");
        for bad in [
            &b"{not json\n"[..],
            b"[1,2]\n",
            b"{\"op\":\"attach\"}\n",
            b"\xff\xfe\n",
        ] {
            let r = client.send_line(bad).expect("answer");
            assert!(!r.ok);
            let e = r.error.expect("error");
            assert_eq!(e.code, "malformed_request", "{e:?}");
        }
        let status: Status = client.call(&Request::Status).expect("status");
        assert_eq!(status.node, "gw-test");
        assert_eq!(status.endpoints, 0);
        assert!(!status.dataplane);
    })
    .await
    .expect("client");
}

#[tokio::test]
async fn oversized_request_is_refused() {
    let (_dir, socket) = server("oversized").await;
    blocking(move || {
        let mut client = ApiClient::connect(&socket).expect("connect");
        let mut line = vec![b' '; MAX_REQUEST_BYTES + 10];
        line.push(b'\n');
        let r = client.send_line(&line).expect("answer");
        assert_eq!(r.error.expect("error").code, "malformed_request");
    })
    .await
    .expect("client");
}

#[tokio::test]
async fn unknown_tenant_and_missing_netns_are_clear_errors() {
    let (dir, socket) = server("errors").await;
    let state_file = dir.0.join("run").join("attachments.json");
    blocking(move || {
        let mut client = ApiClient::connect(&socket).expect("connect");
        let attach = |tenant: &str, netns: &str| Request::Attach {
            container_id: "c1".into(),
            netns: netns.into(),
            ifname: "eth0".into(),
            tenant: tenant.into(),
            addresses: Vec::new(),
            mtu: None,
            owner: None,
        };
        let e = client
            .call::<serde_json::Value>(&attach("nowhere", "/run/netns/x"))
            .expect_err("tenant");
        assert!(
            matches!(&e, ClientError::Api(a) if a.code == "unknown_tenant"),
            "{e}"
        );
        let e = client
            .call::<serde_json::Value>(&attach("city", "/run/netns/pisek-does-not-exist"))
            .expect_err("netns");
        assert!(
            matches!(&e, ClientError::Api(a) if a.code == "netns_not_found"),
            "{e}"
        );
        assert!(
            e.to_string().contains("/run/netns/pisek-does-not-exist"),
            "{e}"
        );
        let e = client
            .call::<serde_json::Value>(&attach("city", "/etc/hostname"))
            .expect_err("not a netns");
        assert!(e.to_string().contains("not a network namespace"), "{e}");
        let vrfs: Vec<VrfInfo> = client.call(&Request::Vrfs).expect("vrfs");
        assert_eq!(vrfs.len(), 1);
        assert_eq!(vrfs[0].table, 100_001);
    })
    .await
    .expect("client");
    // Nothing was leased or recorded.
    assert!(
        !state_file.exists() || {
            let text = std::fs::read_to_string(&state_file).expect("read");
            !text.contains("c1")
        }
    );
}
