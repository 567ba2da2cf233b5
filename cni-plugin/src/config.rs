//! The network configuration on stdin: the standard keys, Pisek's own
//! (`docs/cni.md`), and what the runtime adds (`runtimeConfig`,
//! `prevResult`, `cni.dev/valid-attachments`). A key the plugin does not
//! know is error 2 naming the key and its value; a value it cannot use is
//! error 7 naming the key.

use crate::error::{CniError, codes};
use crate::version::Version;
use pisek_api::WorkloadKey;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The most stdin the plugin reads: configs are a few hundred bytes; a
/// GC's list of attachments for a full node is a few hundred KiB.
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;

/// The agent's socket when the config names none.
pub const DEFAULT_AGENT_SOCKET: &str = "/run/pisek/agent.sock";

/// How long the plugin waits for an absent agent by default.
pub const DEFAULT_AGENT_WAIT: Duration = Duration::from_secs(10);

/// The pod annotation that names a tenant (through the
/// `io.kubernetes.cri.pod-annotations` capability).
pub const TENANT_ANNOTATION: &str = "pisek.dev/tenant";

/// The capability containerd and CRI-O fill with the pod's annotations.
pub const POD_ANNOTATIONS_CAPABILITY: &str = "io.kubernetes.cri.pod-annotations";

/// Every key the plugin accepts at the top level.
const KNOWN_KEYS: [&str; 17] = [
    "cniVersion",
    "cniVersions",
    "name",
    "type",
    "capabilities",
    "runtimeConfig",
    "prevResult",
    "args",
    "dns",
    "cni.dev/valid-attachments",
    "agentSocket",
    "agentWaitSeconds",
    "defaultTenant",
    "namespaceTenants",
    "mtu",
    "logFile",
    "logLevel",
];

/// How much the plugin logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Failures only.
    Error,
    /// Failures and oddities.
    Warn,
    /// One line per invocation.
    Info,
    /// Requests and answers.
    Debug,
}

/// One network configuration, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConf {
    /// `cniVersion`.
    pub version: Version,
    /// `name`: the network's name.
    pub name: String,
    /// `agentSocket`.
    pub agent_socket: PathBuf,
    /// `agentWaitSeconds`: how long to wait for an absent agent.
    pub agent_wait: Duration,
    /// `defaultTenant`.
    pub default_tenant: Option<String>,
    /// `namespaceTenants`: Kubernetes namespace -> tenant.
    pub namespace_tenants: BTreeMap<String, String>,
    /// `mtu`: the pods' MTU, at most what the overlay carries.
    pub mtu: Option<u32>,
    /// `logFile`.
    pub log_file: Option<PathBuf>,
    /// `logLevel` (default `info`).
    pub log_level: LogLevel,
    /// `dns`, passed into the result as it is.
    pub dns: Option<Value>,
    /// `prevResult`.
    pub prev_result: Option<Value>,
    /// The pod's annotations (`runtimeConfig`).
    pub annotations: BTreeMap<String, String>,
    /// Requested addresses (`runtimeConfig.ips` or `args.cni.ips`).
    pub ips: Vec<IpAddr>,
    /// `cni.dev/valid-attachments` (GC).
    pub valid_attachments: Option<Vec<WorkloadKey>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    cni_version: Option<String>,
    name: Option<String>,
    agent_socket: Option<PathBuf>,
    agent_wait_seconds: Option<u64>,
    default_tenant: Option<String>,
    #[serde(default)]
    namespace_tenants: BTreeMap<String, String>,
    mtu: Option<u32>,
    log_file: Option<PathBuf>,
    log_level: Option<LogLevel>,
    dns: Option<Value>,
    prev_result: Option<Value>,
    #[serde(default)]
    runtime_config: RuntimeConfig,
    args: Option<Args>,
    #[serde(rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<ValidAttachment>>,
}

#[derive(Default, Deserialize)]
struct RuntimeConfig {
    #[serde(default, rename = "io.kubernetes.cri.pod-annotations")]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    ips: Vec<String>,
}

#[derive(Deserialize)]
struct Args {
    #[serde(default)]
    cni: Option<CniArgsConvention>,
}

#[derive(Deserialize)]
struct CniArgsConvention {
    #[serde(default)]
    ips: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ValidAttachment {
    #[serde(rename = "containerID")]
    container_id: String,
    ifname: String,
}

/// The `cniVersion` of stdin, if it is JSON with one: errors are reported
/// in that version even when the rest of the config is wrong.
pub fn peek_version(stdin: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(stdin).ok()?;
    v.get("cniVersion")?.as_str().map(str::to_string)
}

impl NetConf {
    /// Parses and checks stdin.
    pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        if stdin.len() > MAX_CONFIG_BYTES {
            return Err(CniError::new(
                codes::INVALID_CONFIG,
                format!(
                    "the network configuration is {} bytes, more than the {MAX_CONFIG_BYTES} accepted",
                    stdin.len()
                ),
            ));
        }
        let value: Value = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(codes::DECODE, "the network configuration is not JSON")
                .details(e.to_string())
        })?;
        let Value::Object(object) = value else {
            return Err(CniError::new(
                codes::DECODE,
                "the network configuration is not a JSON object",
            ));
        };
        reject_unknown_keys(&object)?;
        let raw: Raw = serde_json::from_value(Value::Object(object)).map_err(|e| {
            CniError::new(codes::INVALID_CONFIG, "invalid network configuration")
                .details(e.to_string())
        })?;
        NetConf::check(raw)
    }

    fn check(raw: Raw) -> Result<NetConf, CniError> {
        let invalid = |m: String| CniError::new(codes::INVALID_CONFIG, m);
        let version = match raw.cni_version.as_deref() {
            Some(v) => Version::parse(v)?,
            None => {
                return Err(CniError::new(
                    codes::INCOMPATIBLE_VERSION,
                    "cniVersion is missing",
                ));
            }
        };
        let name = raw.name.unwrap_or_default();
        if name.is_empty() || name.len() > 253 || name.chars().any(char::is_control) {
            return Err(invalid(
                "name: a network needs a name of 1-253 printable characters".into(),
            ));
        }
        let agent_socket = raw
            .agent_socket
            .unwrap_or_else(|| PathBuf::from(DEFAULT_AGENT_SOCKET));
        if !agent_socket.is_absolute() {
            return Err(invalid(format!(
                "agentSocket `{}` is not an absolute path",
                agent_socket.display()
            )));
        }
        let agent_wait = match raw.agent_wait_seconds {
            None => DEFAULT_AGENT_WAIT,
            Some(s @ 0..=300) => Duration::from_secs(s),
            Some(s) => return Err(invalid(format!("agentWaitSeconds {s} is above 300"))),
        };
        if let Some(t) = &raw.default_tenant {
            check_tenant_name("defaultTenant", t)?;
        }
        for (ns, t) in &raw.namespace_tenants {
            check_tenant_name(&format!("namespaceTenants.{ns}"), t)?;
        }
        if let Some(mtu) = raw.mtu
            && !(576..=65535).contains(&mtu)
        {
            return Err(invalid(format!("mtu {mtu} is outside 576..=65535")));
        }
        if let Some(file) = &raw.log_file
            && !file.is_absolute()
        {
            return Err(invalid(format!(
                "logFile `{}` is not an absolute path",
                file.display()
            )));
        }
        let mut ips = Vec::new();
        let convention = raw.args.and_then(|a| a.cni).map(|c| c.ips);
        for text in raw
            .runtime_config
            .ips
            .iter()
            .chain(convention.iter().flatten())
        {
            // The `ips` convention allows a prefix length; the agent decides it.
            let addr = text.split('/').next().unwrap_or(text);
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| invalid(format!("ips: `{text}` is not an IP address")))?;
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        if raw.prev_result.as_ref().is_some_and(|p| !p.is_object()) {
            return Err(invalid("prevResult is not an object".into()));
        }
        Ok(NetConf {
            version,
            name,
            agent_socket,
            agent_wait,
            default_tenant: raw.default_tenant,
            namespace_tenants: raw.namespace_tenants,
            mtu: raw.mtu,
            log_file: raw.log_file,
            log_level: raw.log_level.unwrap_or(LogLevel::Info),
            dns: raw.dns,
            prev_result: raw.prev_result,
            annotations: raw.runtime_config.annotations,
            ips,
            valid_attachments: raw.valid_attachments.map(|list| {
                list.into_iter()
                    .map(|a| WorkloadKey::new(a.container_id, a.ifname))
                    .collect()
            }),
        })
    }

    /// Who owns this network's attachments in the agent: GC releases only
    /// these.
    pub fn owner(&self) -> String {
        format!("cni:{}", self.name)
    }
}

/// Error 2 for the first key the plugin does not know, with its value; the
/// standard keys Pisek cannot honour say why.
fn reject_unknown_keys(object: &Map<String, Value>) -> Result<(), CniError> {
    for (key, value) in object {
        if KNOWN_KEYS.contains(&key.as_str()) {
            continue;
        }
        let why = match key.as_str() {
            "ipam" => "; addresses come from the agent's tenant prefixes, not an IPAM plugin",
            "ipMasq" => "; the overlay routes pod addresses, it does not masquerade them",
            _ => "",
        };
        let mut shown = value.to_string();
        if shown.len() > 200 {
            shown = format!("{}...", shown.chars().take(200).collect::<String>());
        }
        return Err(CniError::new(
            codes::UNSUPPORTED_FIELD,
            format!("unsupported field `{key}`: {shown}{why}"),
        ));
    }
    Ok(())
}

/// Tenant names as the agent's config allows them.
fn check_tenant_name(field: &str, name: &str) -> Result<(), CniError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(CniError::new(
            codes::INVALID_CONFIG,
            format!("{field}: `{name}` is not a tenant name (a-z, 0-9, `-`, `.`, at most 63)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NetConf, CniError> {
        NetConf::parse(text.as_bytes())
    }

    #[test]
    fn a_full_config_parses() {
        let c = parse(
            r#"{"cniVersion":"1.1.0","name":"pisek","type":"pisek-cni",
                "agentSocket":"/run/x.sock","defaultTenant":"city",
                "namespaceTenants":{"team-a":"conference"},"mtu":1400,
                "logFile":"/var/log/p.log","logLevel":"debug",
                "capabilities":{"io.kubernetes.cri.pod-annotations":true,"ips":true},
                "runtimeConfig":{"io.kubernetes.cri.pod-annotations":{"pisek.dev/tenant":"city"},
                                 "ips":["10.1.1.9/24"]},
                "dns":{"nameservers":["10.0.0.53"]}}"#,
        )
        .expect("valid");
        assert_eq!(c.version, Version::V1_1_0);
        assert_eq!(c.mtu, Some(1400));
        assert_eq!(c.log_level, LogLevel::Debug);
        assert_eq!(c.ips, vec!["10.1.1.9".parse::<IpAddr>().expect("ip")]);
        assert_eq!(c.annotations[TENANT_ANNOTATION], "city");
        assert_eq!(c.owner(), "cni:pisek");
    }

    #[test]
    fn defaults() {
        let c = parse(r#"{"cniVersion":"0.3.1","name":"n","type":"pisek-cni"}"#).expect("valid");
        assert_eq!(c.agent_socket, PathBuf::from(DEFAULT_AGENT_SOCKET));
        assert_eq!(c.agent_wait, DEFAULT_AGENT_WAIT);
        assert_eq!(c.log_level, LogLevel::Info);
    }

    #[test]
    fn unknown_fields_are_named_with_their_value() {
        let e = parse(r#"{"cniVersion":"1.0.0","name":"n","type":"pisek-cni","mtuu":1400}"#)
            .expect_err("unknown");
        assert_eq!(e.code, codes::UNSUPPORTED_FIELD);
        assert!(e.msg.contains("`mtuu`: 1400"), "{e}");
        let e = parse(
            r#"{"cniVersion":"1.0.0","name":"n","type":"pisek-cni","ipam":{"type":"host-local"}}"#,
        )
        .expect_err("ipam");
        assert_eq!(e.code, codes::UNSUPPORTED_FIELD);
        assert!(e.msg.contains("tenant prefixes"), "{e}");
    }

    #[test]
    fn bad_input_gets_its_code() {
        for (case, text, code) in [
            ("empty", "", codes::DECODE),
            ("garbage", "\u{1}\u{2}xyz", codes::DECODE),
            ("truncated", r#"{"cniVersion":"1.0.0","na"#, codes::DECODE),
            ("array", "[1,2]", codes::DECODE),
            (
                "no version",
                r#"{"name":"n","type":"pisek-cni"}"#,
                codes::INCOMPATIBLE_VERSION,
            ),
            (
                "old version",
                r#"{"cniVersion":"0.2.0","name":"n","type":"pisek-cni"}"#,
                codes::INCOMPATIBLE_VERSION,
            ),
            (
                "no name",
                r#"{"cniVersion":"1.0.0","type":"pisek-cni"}"#,
                codes::INVALID_CONFIG,
            ),
            (
                "mtu type",
                r#"{"cniVersion":"1.0.0","name":"n","type":"t","mtu":"big"}"#,
                codes::INVALID_CONFIG,
            ),
            (
                "mtu range",
                r#"{"cniVersion":"1.0.0","name":"n","type":"t","mtu":100}"#,
                codes::INVALID_CONFIG,
            ),
            (
                "relative socket",
                r#"{"cniVersion":"1.0.0","name":"n","type":"t","agentSocket":"a.sock"}"#,
                codes::INVALID_CONFIG,
            ),
            (
                "bad tenant",
                r#"{"cniVersion":"1.0.0","name":"n","type":"t","defaultTenant":"City!"}"#,
                codes::INVALID_CONFIG,
            ),
            (
                "bad map",
                r#"{"cniVersion":"1.0.0","name":"n","type":"t","namespaceTenants":{"a":""}}"#,
                codes::INVALID_CONFIG,
            ),
            (
                "bad level",
                r#"{"cniVersion":"1.0.0","name":"n","type":"t","logLevel":"loud"}"#,
                codes::INVALID_CONFIG,
            ),
            (
                "bad ip",
                r#"{"cniVersion":"1.0.0","name":"n","type":"t","runtimeConfig":{"ips":["10.1"]}}"#,
                codes::INVALID_CONFIG,
            ),
            (
                "bad prev",
                r#"{"cniVersion":"1.0.0","name":"n","type":"t","prevResult":3}"#,
                codes::INVALID_CONFIG,
            ),
            (
                "long wait",
                r#"{"cniVersion":"1.0.0","name":"n","type":"t","agentWaitSeconds":9999}"#,
                codes::INVALID_CONFIG,
            ),
        ] {
            assert_eq!(parse(text).map_err(|e| e.code).err(), Some(code), "{case}");
        }
    }

    #[test]
    fn an_oversized_config_is_refused_before_it_is_parsed() {
        let big = format!(
            r#"{{"cniVersion":"1.0.0","name":"n","type":"t","dns":{{"search":["{}"]}}}}"#,
            "a".repeat(MAX_CONFIG_BYTES)
        );
        let e = parse(&big).expect_err("too big");
        assert_eq!(e.code, codes::INVALID_CONFIG);
        assert!(e.msg.contains("bytes"), "{e}");
    }

    #[test]
    fn gc_attachments_are_read() {
        let c = parse(
            r#"{"cniVersion":"1.1.0","name":"n","type":"t",
                "cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]}"#,
        )
        .expect("valid");
        assert_eq!(
            c.valid_attachments,
            Some(vec![WorkloadKey::new("c1", "eth0")])
        );
    }
}
