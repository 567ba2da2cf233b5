//! Which tenant a pod joins, in order: `CNI_ARGS` `PISEK_TENANT`, the pod
//! annotation `pisek.dev/tenant`, the pod's Kubernetes namespace through
//! the plugin's `namespaceTenants`, then through the tenants' `namespaces`
//! lists in the agent's config, then `defaultTenant`.

use crate::config::{NetConf, TENANT_ANNOTATION};
use crate::env::CniArgs;
use crate::error::{CniError, codes};

/// Where the tenant came from, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TenantSource {
    /// `CNI_ARGS` `PISEK_TENANT`.
    CniArgs,
    /// The pod annotation.
    Annotation,
    /// `namespaceTenants`.
    Namespace,
    /// A tenant's `namespaces` in agent.toml.
    AgentNamespaces,
    /// `defaultTenant`.
    Default,
}

/// The tenant and why. `agent_namespaces` asks the agent which tenant
/// lists a namespace; it is called only when the earlier choices gave none.
pub fn choose_tenant(
    conf: &NetConf,
    args: &CniArgs,
    agent_namespaces: impl FnOnce(&str) -> Result<Option<String>, CniError>,
) -> Result<(String, TenantSource), CniError> {
    if let Some(t) = args.pisek_tenant.as_ref().filter(|t| !t.is_empty()) {
        return Ok((t.clone(), TenantSource::CniArgs));
    }
    if let Some(t) = conf
        .annotations
        .get(TENANT_ANNOTATION)
        .filter(|t| !t.is_empty())
    {
        return Ok((t.clone(), TenantSource::Annotation));
    }
    if let Some(t) = args
        .k8s_pod_namespace
        .as_ref()
        .and_then(|ns| conf.namespace_tenants.get(ns))
    {
        return Ok((t.clone(), TenantSource::Namespace));
    }
    if let Some(ns) = &args.k8s_pod_namespace
        && let Some(t) = agent_namespaces(ns)?
    {
        return Ok((t, TenantSource::AgentNamespaces));
    }
    if let Some(t) = &conf.default_tenant {
        return Ok((t.clone(), TenantSource::Default));
    }
    Err(CniError::new(
        codes::NO_TENANT,
        format!(
            "no tenant for this pod: no PISEK_TENANT in CNI_ARGS, no `{TENANT_ANNOTATION}` annotation, {} and no defaultTenant",
            match &args.k8s_pod_namespace {
                Some(ns) => format!(
                    "namespace `{ns}` in neither namespaceTenants nor a tenant's namespaces"
                ),
                None => "no K8S_POD_NAMESPACE".to_string(),
            }
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(extra: &str) -> NetConf {
        NetConf::parse(
            format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"pisek-cni"{extra}}}"#).as_bytes(),
        )
        .expect("config")
    }

    #[test]
    fn the_order_is_args_annotation_namespace_default() {
        let full = conf(
            r#","defaultTenant":"d","namespaceTenants":{"team":"ns"},
               "runtimeConfig":{"io.kubernetes.cri.pod-annotations":{"pisek.dev/tenant":"ann"}}"#,
        );
        let args = |t: Option<&str>, ns: Option<&str>| CniArgs {
            pisek_tenant: t.map(str::to_string),
            k8s_pod_namespace: ns.map(str::to_string),
            k8s_pod_name: None,
        };
        let none = |_: &str| Ok(None);
        let agent = |ns: &str| Ok((ns == "agent-ns").then(|| "from-agent".to_string()));
        assert_eq!(
            choose_tenant(&full, &args(Some("arg"), Some("team")), none),
            Ok(("arg".into(), TenantSource::CniArgs))
        );
        assert_eq!(
            choose_tenant(&full, &args(None, Some("team")), none),
            Ok(("ann".into(), TenantSource::Annotation))
        );
        let no_ann = conf(r#","defaultTenant":"d","namespaceTenants":{"team":"ns"}"#);
        assert_eq!(
            choose_tenant(&no_ann, &args(None, Some("team")), agent),
            Ok(("ns".into(), TenantSource::Namespace))
        );
        assert_eq!(
            choose_tenant(&no_ann, &args(None, Some("agent-ns")), agent),
            Ok(("from-agent".into(), TenantSource::AgentNamespaces))
        );
        assert_eq!(
            choose_tenant(&no_ann, &args(None, Some("other")), agent),
            Ok(("d".into(), TenantSource::Default))
        );
        let e = choose_tenant(&conf(""), &args(None, Some("other")), none).expect_err("none");
        assert_eq!(e.code, codes::NO_TENANT);
        assert!(e.msg.contains("`other`"), "{e}");
    }
}
