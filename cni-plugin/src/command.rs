//! One invocation, from environment and stdin to what goes to stdout and
//! the exit status. Nothing here touches the kernel: ADD, DEL, CHECK and
//! GC are one request each to the agent, which does all netlink work.

use crate::agent::Agent;
use crate::config::{LogLevel, NetConf, peek_version};
use crate::env::{self, Command, Invocation};
use crate::error::{CniError, codes};
use crate::log::Log;
use crate::result::{add_result, check_prev_result};
use crate::tenant::choose_tenant;
use crate::version::{Version, version_answer};
use pisek_api::{Attachment, Detached, GcResult, Request, Status, TenantChoice};
use std::time::{Duration, Instant};

/// What the binary prints and how it exits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// stdout (empty for DEL, STATUS and GC on success).
    pub stdout: String,
    /// 0 on success, 1 on error (the error object is on stdout).
    pub exit_code: i32,
}

/// How long STATUS waits for the agent: it answers "now", not "soon".
const STATUS_WAIT: Duration = Duration::from_millis(500);

/// Runs one invocation.
pub fn execute(get: &impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Outcome {
    let error_version = peek_version(stdin).unwrap_or_else(|| Version::LATEST.as_str().to_string());
    let fail = |e: CniError| Outcome {
        stdout: e.to_json(&error_version),
        exit_code: 1,
    };
    let command = match env::command(get) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if command == Command::Version {
        return Outcome {
            stdout: version_answer(peek_version(stdin).as_deref()),
            exit_code: 0,
        };
    }
    let inv = match env::invocation(get) {
        Ok(i) => i,
        Err(e) => return fail(e),
    };
    let conf = match NetConf::parse(stdin) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let mut log = Log::open(conf.log_file.as_deref(), conf.log_level);
    let started = Instant::now();
    let outcome = dispatch(&inv, &conf, &mut log);
    let took = started.elapsed().as_secs_f64() * 1000.0;
    let what = format!(
        "{} container={} ifname={} pod={}/{}",
        command.as_str(),
        inv.container_id,
        inv.ifname,
        inv.args.k8s_pod_namespace.as_deref().unwrap_or("-"),
        inv.args.k8s_pod_name.as_deref().unwrap_or("-"),
    );
    match outcome {
        Ok(stdout) => {
            log.log(LogLevel::Info, &format!("{what} ok in {took:.1} ms"));
            log.log(LogLevel::Debug, &format!("{what} result {stdout}"));
            Outcome {
                stdout,
                exit_code: 0,
            }
        }
        Err(e) => {
            log.log(
                LogLevel::Error,
                &format!("{what} failed in {took:.1} ms: {e}"),
            );
            Outcome {
                stdout: e.to_json(conf.version.as_str()),
                exit_code: 1,
            }
        }
    }
}

fn dispatch(inv: &Invocation, conf: &NetConf, log: &mut Log) -> Result<String, CniError> {
    let agent = Agent::new(&conf.agent_socket, conf.agent_wait);
    match inv.command {
        Command::Add => add(inv, conf, &agent, log),
        Command::Del => {
            let _: Detached = agent.call(&Request::Detach {
                container_id: inv.container_id.clone(),
                ifname: inv.ifname.clone(),
            })?;
            Ok(String::new())
        }
        Command::Check => check(inv, conf, &agent),
        Command::Status => {
            needs_1_1(conf, "STATUS")?;
            let agent = Agent::new(&conf.agent_socket, STATUS_WAIT);
            let mut client = agent.connect(codes::NOT_AVAILABLE)?;
            client.call::<Status>(&Request::Status).map_err(|e| {
                CniError::new(codes::NOT_AVAILABLE, format!("the Pisek agent: {e}"))
            })?;
            Ok(String::new())
        }
        Command::Gc => {
            needs_1_1(conf, "GC")?;
            let valid = conf.valid_attachments.clone().ok_or_else(|| {
                CniError::new(
                    codes::INVALID_CONFIG,
                    "GC needs `cni.dev/valid-attachments` in the configuration",
                )
            })?;
            let gc: GcResult = agent.call(&Request::Gc {
                valid_attachments: valid,
                owner: Some(conf.owner()),
            })?;
            if !gc.released.is_empty() {
                let keys: Vec<String> = gc.released.iter().map(|k| k.as_string()).collect();
                log.log(LogLevel::Info, &format!("GC released {}", keys.join(", ")));
            }
            Ok(String::new())
        }
        Command::Version => Ok(version_answer(Some(conf.version.as_str()))),
    }
}

fn add(inv: &Invocation, conf: &NetConf, agent: &Agent, log: &mut Log) -> Result<String, CniError> {
    if conf.prev_result.is_some() {
        return Err(CniError::new(
            codes::INVALID_CONFIG,
            "pisek-cni creates the pod's interface: it must be the first plugin of its list",
        ));
    }
    let (tenant, source) = choose_tenant(conf, &inv.args, |namespace| {
        agent
            .call::<TenantChoice>(&Request::TenantForNamespace {
                namespace: namespace.to_string(),
            })
            .map(|c| c.tenant)
    })?;
    log.log(LogLevel::Debug, &format!("tenant {tenant} from {source:?}"));
    let netns = inv.netns.clone().unwrap_or_default();
    if !netns.exists() {
        return Err(CniError::new(
            codes::UNKNOWN_CONTAINER,
            format!("the network namespace {} does not exist", netns.display()),
        ));
    }
    let attachment: Attachment = agent.call(&Request::Attach {
        container_id: inv.container_id.clone(),
        netns,
        ifname: inv.ifname.clone(),
        tenant,
        addresses: conf.ips.clone(),
        mtu: conf.mtu,
        owner: Some(conf.owner()),
    })?;
    Ok(add_result(&attachment, conf.version, conf.dns.as_ref()).to_string())
}

fn check(inv: &Invocation, conf: &NetConf, agent: &Agent) -> Result<String, CniError> {
    if !conf.version.has_check() {
        return Err(CniError::new(
            codes::INCOMPATIBLE_VERSION,
            format!(
                "CHECK needs cniVersion 0.4.0 or later, not {}",
                conf.version.as_str()
            ),
        ));
    }
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            codes::INVALID_CONFIG,
            "CHECK needs prevResult in the configuration",
        )
    })?;
    let attachment: Attachment = agent.call(&Request::Check {
        container_id: inv.container_id.clone(),
        ifname: inv.ifname.clone(),
    })?;
    let netns = inv.netns.clone().unwrap_or_default();
    check_prev_result(prev, &attachment, &inv.ifname, &netns)?;
    Ok(String::new())
}

fn needs_1_1(conf: &NetConf, command: &str) -> Result<(), CniError> {
    if conf.version.has_status_and_gc() {
        Ok(())
    } else {
        Err(CniError::new(
            codes::INCOMPATIBLE_VERSION,
            format!(
                "{command} needs cniVersion 1.1.0, not {}",
                conf.version.as_str()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(pairs: &[(&str, &str)], stdin: &str) -> (serde_json::Value, i32) {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let out = execute(&|k: &str| map.get(k).cloned(), stdin.as_bytes());
        let json = if out.stdout.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&out.stdout).expect("stdout is JSON")
        };
        (json, out.exit_code)
    }

    #[test]
    fn version_lists_every_version() {
        let (v, code) = run(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"0.4.0"}"#);
        assert_eq!(code, 0);
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["supportedVersions"][4], "1.1.0");
        let (v, _) = run(&[("CNI_COMMAND", "VERSION")], "");
        assert_eq!(v["cniVersion"], "1.1.0");
    }

    #[test]
    fn errors_are_json_in_the_version_asked() {
        let (v, code) = run(&[("CNI_COMMAND", "FROB")], r#"{"cniVersion":"0.3.1"}"#);
        assert_eq!(code, 1);
        assert_eq!(v["cniVersion"], "0.3.1");
        assert_eq!(v["code"], codes::INVALID_ENVIRONMENT);
    }

    #[test]
    fn an_absent_agent_is_try_again_later_and_status_50() {
        let dir = std::env::temp_dir().join(format!("pisek-cni-unit-{}", std::process::id()));
        let socket = dir.join("none.sock");
        let conf = format!(
            r#"{{"cniVersion":"1.1.0","name":"n","type":"pisek-cni","agentSocket":"{}","agentWaitSeconds":0,"defaultTenant":"city"}}"#,
            socket.display()
        );
        let env = [
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
        ];
        let (v, code) = run(&env, &conf);
        assert_eq!((code, v["code"].as_u64()), (1, Some(11)), "{v}");
        let (v, code) = run(&[("CNI_COMMAND", "STATUS")], &conf);
        assert_eq!((code, v["code"].as_u64()), (1, Some(50)), "{v}");
    }

    #[test]
    fn status_and_gc_need_1_1_and_check_needs_0_4() {
        let old = r#"{"cniVersion":"1.0.0","name":"n","type":"pisek-cni"}"#;
        let (v, _) = run(&[("CNI_COMMAND", "STATUS")], old);
        assert_eq!(v["code"], codes::INCOMPATIBLE_VERSION);
        let (v, _) = run(&[("CNI_COMMAND", "GC")], old);
        assert_eq!(v["code"], codes::INCOMPATIBLE_VERSION);
        let older = r#"{"cniVersion":"0.3.1","name":"n","type":"pisek-cni","prevResult":{}}"#;
        let check = [
            ("CNI_COMMAND", "CHECK"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_PATH", "/opt/cni/bin"),
        ];
        let (v, _) = run(&check, older);
        assert_eq!(v["code"], codes::INCOMPATIBLE_VERSION);
    }

    #[test]
    fn add_refuses_a_missing_netns_and_a_prev_result() {
        let env = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", "/nonexistent/netns/x"),
            ("CNI_PATH", "/opt/cni/bin"),
        ];
        let conf = r#"{"cniVersion":"1.0.0","name":"n","type":"pisek-cni","defaultTenant":"city"}"#;
        let (v, _) = run(&env, conf);
        assert_eq!(v["code"], codes::UNKNOWN_CONTAINER);
        let chained = r#"{"cniVersion":"1.0.0","name":"n","type":"pisek-cni","defaultTenant":"city","prevResult":{"cniVersion":"1.0.0"}}"#;
        let (v, _) = run(&env, chained);
        assert_eq!(v["code"], codes::INVALID_CONFIG);
    }
}
