//! The runtime's half of a request: the `CNI_*` environment variables,
//! checked before anything else happens. Each problem is error 4 naming the
//! variable.

use crate::error::{CniError, codes};
use std::path::PathBuf;

/// The operation asked for (`CNI_COMMAND`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Attach the container.
    Add,
    /// Detach it (idempotent).
    Del,
    /// Compare the attachment with `prevResult` and the live system.
    Check,
    /// Whether the plugin can serve ADDs now.
    Status,
    /// The versions spoken.
    Version,
    /// Release attachments the runtime no longer has.
    Gc,
}

impl Command {
    /// The name the spec gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Version => "VERSION",
            Command::Gc => "GC",
        }
    }
}

/// The `CNI_ARGS` that Pisek reads (`K=V;K=V`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CniArgs {
    /// `PISEK_TENANT`: the tenant, overriding every other choice.
    pub pisek_tenant: Option<String>,
    /// `K8S_POD_NAMESPACE`: the pod's Kubernetes namespace.
    pub k8s_pod_namespace: Option<String>,
    /// `K8S_POD_NAME`, for the log.
    pub k8s_pod_name: Option<String>,
}

/// Keys the plugin knows but does not need (what kubelet's runtimes pass).
const KNOWN_UNUSED: [&str; 3] = ["K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID", "IgnoreUnknown"];

impl CniArgs {
    /// Parses `CNI_ARGS`. A key the plugin does not know is an error unless
    /// `IgnoreUnknown=1` (or `true`) is among them, as for the reference
    /// plugins.
    pub fn parse(text: &str) -> Result<CniArgs, CniError> {
        let bad = |m: String| CniError::new(codes::INVALID_ENVIRONMENT, m);
        let mut args = CniArgs::default();
        let mut unknown = Vec::new();
        let mut ignore_unknown = false;
        for pair in text.split(';').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| bad(format!("CNI_ARGS: `{pair}` is not KEY=VALUE")))?;
            let value = value.to_string();
            match key {
                "PISEK_TENANT" => args.pisek_tenant = Some(value),
                "K8S_POD_NAMESPACE" => args.k8s_pod_namespace = Some(value),
                "K8S_POD_NAME" => args.k8s_pod_name = Some(value),
                "IgnoreUnknown" => {
                    ignore_unknown = matches!(value.to_ascii_lowercase().as_str(), "1" | "true")
                }
                k if KNOWN_UNUSED.contains(&k) => {}
                k => unknown.push(k.to_string()),
            }
        }
        if !unknown.is_empty() && !ignore_unknown {
            return Err(bad(format!(
                "CNI_ARGS: unknown key(s) {} (add IgnoreUnknown=1 to pass keys for other plugins)",
                unknown.join(", ")
            )));
        }
        Ok(args)
    }
}

/// The environment of one invocation, checked for its command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID` (ADD, DEL, CHECK).
    pub container_id: String,
    /// `CNI_NETNS` (ADD, CHECK; optional on DEL).
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME` (ADD, DEL, CHECK).
    pub ifname: String,
    /// `CNI_ARGS`.
    pub args: CniArgs,
}

/// Reads the command only: enough to answer VERSION without the rest.
pub fn command(get: &impl Fn(&str) -> Option<String>) -> Result<Command, CniError> {
    let bad = |m: String| CniError::new(codes::INVALID_ENVIRONMENT, m);
    match get("CNI_COMMAND").as_deref() {
        Some("ADD") => Ok(Command::Add),
        Some("DEL") => Ok(Command::Del),
        Some("CHECK") => Ok(Command::Check),
        Some("STATUS") => Ok(Command::Status),
        Some("VERSION") => Ok(Command::Version),
        Some("GC") => Ok(Command::Gc),
        Some(other) => Err(bad(format!(
            "CNI_COMMAND `{other}` is not one of ADD, DEL, CHECK, STATUS, VERSION, GC"
        ))),
        None => Err(bad("CNI_COMMAND is not set".into())),
    }
}

/// Reads and checks the environment through `get` (`std::env::var` in the
/// binary, a map in tests).
pub fn invocation(get: &impl Fn(&str) -> Option<String>) -> Result<Invocation, CniError> {
    let command = command(get)?;
    let per_container = matches!(command, Command::Add | Command::Del | Command::Check);
    let required = |name: &str| -> Result<String, CniError> {
        get(name).filter(|v| !v.is_empty()).ok_or_else(|| {
            CniError::new(
                codes::INVALID_ENVIRONMENT,
                format!("{name} is required for {}", command.as_str()),
            )
        })
    };
    let (container_id, ifname) = if per_container {
        let id = required("CNI_CONTAINERID")?;
        check_container_id(&id)?;
        let ifname = required("CNI_IFNAME")?;
        check_ifname(&ifname)?;
        // The spec requires CNI_PATH for these; Pisek delegates to no other
        // plugin, but a runtime that omits it is broken, so say so.
        required("CNI_PATH")?;
        (id, ifname)
    } else {
        (String::new(), String::new())
    };
    let netns = match command {
        Command::Add | Command::Check => Some(required("CNI_NETNS")?),
        Command::Del => get("CNI_NETNS").filter(|v| !v.is_empty()),
        _ => None,
    }
    .map(PathBuf::from);
    if let Some(path) = &netns
        && !path.is_absolute()
    {
        return Err(CniError::new(
            codes::INVALID_ENVIRONMENT,
            format!("CNI_NETNS `{}` is not an absolute path", path.display()),
        ));
    }
    let args = CniArgs::parse(&get("CNI_ARGS").unwrap_or_default())?;
    Ok(Invocation {
        command,
        container_id,
        netns,
        ifname,
        args,
    })
}

/// The spec's container id: alphanumeric first, then `[A-Za-z0-9_.-]`.
fn check_container_id(id: &str) -> Result<(), CniError> {
    let ok = id.len() <= 256
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(CniError::new(
            codes::INVALID_ENVIRONMENT,
            format!(
                "CNI_CONTAINERID `{}` must start with a letter or digit and hold only A-Z, a-z, 0-9, `_`, `.`, `-` (at most 256)",
                id.escape_debug()
            ),
        ))
    }
}

/// What the kernel accepts as an interface name (`dev_valid_name`).
fn check_ifname(name: &str) -> Result<(), CniError> {
    let ok = name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(CniError::new(
            codes::INVALID_ENVIRONMENT,
            format!(
                "CNI_IFNAME `{}` is not a name the kernel accepts (1-15 bytes, not `.` or `..`, no `/`, `:` or whitespace)",
                name.escape_debug()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const ADD: [(&str, &str); 5] = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc123"),
        ("CNI_NETNS", "/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v: Vec<_> = ADD
            .iter()
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
            .copied()
            .collect();
        v.extend(extra.iter().filter(|(_, v)| !v.is_empty()));
        v
    }

    fn code(pairs: &[(&str, &str)]) -> u32 {
        invocation(&env(pairs)).expect_err("must fail").code
    }

    #[test]
    fn a_complete_add_parses() {
        let inv = invocation(&env(&with(&[(
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=team-a;K8S_POD_NAME=p;FOO=bar",
        )])))
        .expect("valid");
        assert_eq!(inv.command, Command::Add);
        assert_eq!(inv.args.k8s_pod_namespace.as_deref(), Some("team-a"));
        assert_eq!(inv.netns, Some(PathBuf::from("/run/netns/x")));
    }

    #[test]
    fn every_bad_variable_is_error_4_naming_it() {
        for (case, bad) in [
            ("no command", with(&[("CNI_COMMAND", "")])),
            ("unknown command", with(&[("CNI_COMMAND", "ATTACH")])),
            ("no container id", with(&[("CNI_CONTAINERID", "")])),
            ("bad container id", with(&[("CNI_CONTAINERID", "-x")])),
            ("slash in container id", with(&[("CNI_CONTAINERID", "a/b")])),
            ("no netns", with(&[("CNI_NETNS", "")])),
            ("relative netns", with(&[("CNI_NETNS", "netns/x")])),
            ("no ifname", with(&[("CNI_IFNAME", "")])),
            ("long ifname", with(&[("CNI_IFNAME", "eth0123456789012")])),
            ("dotdot ifname", with(&[("CNI_IFNAME", "..")])),
            ("colon ifname", with(&[("CNI_IFNAME", "eth0:1")])),
            ("no path", with(&[("CNI_PATH", "")])),
            ("args without =", with(&[("CNI_ARGS", "K8S_POD_NAME")])),
            ("unknown arg", with(&[("CNI_ARGS", "FOO=bar")])),
        ] {
            assert_eq!(code(&bad), codes::INVALID_ENVIRONMENT, "{case}");
        }
        let e = invocation(&env(&with(&[("CNI_IFNAME", "")]))).expect_err("no ifname");
        assert!(e.msg.contains("CNI_IFNAME"), "{e}");
    }

    #[test]
    fn del_needs_no_netns_and_status_needs_nothing() {
        let del = invocation(&env(&with(&[("CNI_COMMAND", "DEL"), ("CNI_NETNS", "")])))
            .expect("DEL without netns");
        assert_eq!(del.netns, None);
        let status = invocation(&env(&[("CNI_COMMAND", "STATUS")])).expect("STATUS");
        assert_eq!(status.command, Command::Status);
        let gc = invocation(&env(&[("CNI_COMMAND", "GC"), ("CNI_PATH", "/x")])).expect("GC");
        assert_eq!(gc.command, Command::Gc);
    }
}
