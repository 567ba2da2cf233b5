//! One `pisek-agent` in a network namespace of its own that plays the host,
//! for the tests that attach workloads through it: the CNI plugin's (exec
//! protocol, libcni, bad input, parallel batches) and its benchmark.
//!
//! What it counts as left behind ([`Leftovers`]) is what an operator would
//! look for after a pod is gone: the agent's endpoints and leases, host-side
//! veths (`pk…`), `iif pk…` rules and routes in the tenants' tables.
//! Dropping it kills the agent and removes the namespace (and with it every
//! host-side veth, rule and route) and the temporary directory.

use crate::binaries::workspace_binary;
use crate::netns::Netns;
use crate::poll::poll_until;
use crate::temp_dir::TempDir;
use pisek_agent::config::Role;
use pisek_agent::config::fixture::{AgentToml, TenantToml, write_test_key};
use pisek_api::{ApiClient, Attachment, Request};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The tenants of a [`HostAgent`]: `city` dual stack, `conference`
/// overlapping `city`'s IPv4 prefix (and the tenant of Kubernetes namespace
/// `ops`), `tiny` with room for two workloads.
pub fn host_agent_tenants() -> [TenantToml; 3] {
    [
        TenantToml::new("city", 1).prefixes(["10.1.1.0/24", "fd00:1:1::/64"]),
        TenantToml::new("conference", 2)
            .prefixes(["10.1.1.0/24"])
            .namespaces(["ops"]),
        TenantToml::new("tiny", 3).prefixes(["10.9.9.0/30"]),
    ]
}

/// The kernel tables of the tenants of [`host_agent_tenants`].
const TENANT_TABLES: [&str; 3] = ["100001", "100002", "100003"];

/// A running agent in its own host namespace.
pub struct HostAgent {
    /// The namespace that plays the host.
    pub host: Netns,
    /// Config, key, state and socket.
    pub dir: TempDir,
    /// The runtime directory (attachments and leases), on a tmpfs as a
    /// node's `/run` is.
    pub run_dir: TempDir,
    child: Option<Child>,
}

/// What attachments left behind on the host and in the agent.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// The agent's endpoints (`container/ifname`).
    pub endpoints: Vec<String>,
    /// The agent's leases (`container/ifname` keys in the runtime state document).
    pub leases: Vec<String>,
    /// Host-side workload veths (`pk…`).
    pub host_veths: Vec<String>,
    /// `iif pk…` rules of either family.
    pub iif_rules: Vec<String>,
    /// Routes through a workload veth in the tenants' tables (the data
    /// plane's own routes through the tenant TUNs stay).
    pub routes: Vec<String>,
}

impl Leftovers {
    /// True when nothing is left.
    pub fn is_empty(&self) -> bool {
        *self == Leftovers::default()
    }
}

impl HostAgent {
    /// Creates the namespace and the config, starts the agent and waits for
    /// its socket. `tag` (a few characters) makes the names unique.
    pub fn start(tag: &str) -> HostAgent {
        let host = Netns::new(tag);
        let dir = TempDir::new(tag);
        let run_dir = TempDir::new_on_tmpfs(tag);
        let key = dir.path.join("wg.key");
        write_test_key(&key).expect("write the agent's key");
        let config = host_agent_tenants().into_iter().fold(
            AgentToml::new(format!("host-{tag}"), Role::Edge, "10.255.0.1", &key)
                .api_socket(dir.path.join("agent.sock"))
                .vanished_sweep_secs(1)
                .state_dir(dir.path.join("state"))
                .runtime_dir(&run_dir.path),
            AgentToml::tenant,
        );
        config
            .write(&dir.path.join("agent.toml"))
            .expect("write agent.toml");
        let mut agent = HostAgent {
            host,
            dir,
            run_dir,
            child: None,
        };
        agent.run();
        agent
    }

    /// Starts the agent process (again) and waits until its API answers.
    pub fn run(&mut self) {
        let binary = workspace_binary("pisek-agent");
        assert!(
            binary.is_file(),
            "{} is missing: build it first (cargo build -p pisek-agent)",
            binary.display()
        );
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.path.join("agent.log"))
            .expect("open the agent's log");
        let child = self
            .host
            .command(&binary)
            .arg("--config")
            .arg(self.dir.path.join("agent.toml"))
            .env("RUST_LOG", agent_log_filter())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start pisek-agent");
        self.child = Some(child);
        let socket = self.socket();
        poll_until("the agent's API", Duration::from_secs(10), || {
            ApiClient::connect(&socket).ok().map(|_| ())
        });
    }

    /// Stops the agent with SIGTERM and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let status = child.wait().expect("wait for the agent");
            assert!(status.success(), "pisek-agent exited with {status}");
        }
    }

    /// Kills the agent with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts the agent.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// The API socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path.join("agent.sock")
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path.join("agent.log")).unwrap_or_default()
    }

    /// A connection to the API.
    pub fn client(&self) -> ApiClient {
        ApiClient::connect(&self.socket()).expect("connect to the agent")
    }

    /// The agent's attachments.
    pub fn endpoints(&self) -> Vec<Attachment> {
        self.client()
            .call(&Request::Endpoints)
            .expect("list the agent's endpoints")
    }

    /// What attachments left behind.
    pub fn leftovers(&self) -> Leftovers {
        let endpoints = self
            .endpoints()
            .iter()
            .map(|a| format!("{}/{}", a.container_id, a.ifname))
            .collect();
        // No document yet is no lease; an unreadable one fails the test.
        let path = self.run_dir.path.join("attachments.json");
        let state = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str::<serde_json::Value>(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::Value::Null,
            Err(e) => panic!("{}: {e}", path.display()),
        };
        let leases = state["leases"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let host_veths = self
            .ip(&["-o", "link", "show"])
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .filter(|n| n.starts_with("pk"))
            .collect();
        let mut rules = self.ip(&["rule", "show"]);
        rules.push_str(&self.ip(&["-6", "rule", "show"]));
        let iif_rules = rules
            .lines()
            .filter(|l| l.contains("iif pk"))
            .map(str::to_string)
            .collect();
        let mut routes = Vec::new();
        for table in TENANT_TABLES {
            for family in ["-4", "-6"] {
                // A table the kernel has not made yet (no route was ever
                // in it) is an error for `ip`, and means no routes.
                routes.extend(
                    self.try_ip(&[family, "route", "show", "table", table])
                        .lines()
                        .filter(|l| l.contains(" dev pk"))
                        .map(|l| format!("table {table}: {l}")),
                );
            }
        }
        Leftovers {
            endpoints,
            leases,
            host_veths,
            iif_rules,
            routes,
        }
    }

    /// Panics, naming what is left, unless nothing is.
    ///
    /// Polls for a few seconds first: the agent deletes a detached
    /// workload's veth pair after it answered the detach.
    pub fn assert_clean(&self, context: &str) {
        let cleaned = crate::poll(context, Duration::from_secs(5), || {
            Ok(self.leftovers().is_empty().then_some(()))
        });
        if cleaned.is_err() {
            let left = self.leftovers();
            assert!(left.is_empty(), "{context}: left behind: {left:#?}");
        }
    }

    /// Polls until nothing is left (for cleanup the agent does on its own).
    pub fn wait_clean(&self, context: &str, timeout: Duration) {
        poll_until(context, timeout, || {
            self.leftovers().is_empty().then_some(())
        });
    }

    /// `ip ARGS` in the host namespace, stdout as text; empty when it fails.
    pub fn try_ip(&self, args: &[&str]) -> String {
        Command::new("ip")
            .args(["-n", &self.host.name])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// `ip ARGS` in the host namespace, stdout as text.
    pub fn ip(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.host.ip(args).stdout).into_owned()
    }
}

impl Drop for HostAgent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The agent's log filter: `PISEK_LAB_AGENT_LOG` (a `RUST_LOG` filter, for
/// a closer look at a test or a benchmark), else warnings only.
fn agent_log_filter() -> String {
    std::env::var("PISEK_LAB_AGENT_LOG").unwrap_or_else(|_| "warn".into())
}
