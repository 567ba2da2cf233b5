//! A kubelet-like CRI client for the tests that drive containerd: the
//! runtime service over containerd's Unix socket (tonic, the `k8s-cri`
//! bindings), and the pod sandbox config kubelet builds.

use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    DnsConfig, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, ListPodSandboxRequest,
    NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxMetadata, PodSandboxStatusRequest,
    PortMapping, Protocol, RemovePodSandboxRequest, RunPodSandboxRequest, StatusRequest,
    StopPodSandboxRequest,
};
use pisek_lab::unique_tag;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use tonic::transport::{Channel, Endpoint, Uri};

/// A CRI client over containerd's Unix socket, blocking (the test is
/// synchronous; each call runs on the client's own small runtime).
pub struct Cri {
    runtime: tokio::runtime::Runtime,
    client: RuntimeServiceClient<Channel>,
}

impl Cri {
    pub fn connect(socket: &Path) -> Cri {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime for the CRI client");
        let path = socket.to_path_buf();
        // tonic wants a URI; the connector ignores it and dials the socket.
        let channel = runtime
            .block_on(
                Endpoint::from_static("http://[::]:50051").connect_with_connector(
                    tower::service_fn(move |_: Uri| {
                        let path = path.clone();
                        async move {
                            let stream = tokio::net::UnixStream::connect(path).await?;
                            Ok::<_, std::io::Error>(TokioIo::new(stream))
                        }
                    }),
                ),
            )
            .expect("connect to containerd's CRI socket");
        Cri {
            runtime,
            client: RuntimeServiceClient::new(channel),
        }
    }

    /// Whether the runtime reports RuntimeReady and NetworkReady (the CRI
    /// plugin has loaded the CNI configuration), as kubelet checks.
    pub fn ready(&mut self) -> Result<bool, tonic::Status> {
        let status = self
            .runtime
            .block_on(self.client.status(StatusRequest { verbose: false }))?
            .into_inner();
        let conditions = status.status.map(|s| s.conditions).unwrap_or_default();
        let ready = |kind: &str| conditions.iter().any(|c| c.r#type == kind && c.status);
        Ok(ready("RuntimeReady") && ready("NetworkReady"))
    }

    pub fn run_pod(&mut self, config: PodSandboxConfig) -> Result<String, tonic::Status> {
        let request = RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        };
        let response = self
            .runtime
            .block_on(self.client.run_pod_sandbox(request))?;
        Ok(response.into_inner().pod_sandbox_id)
    }

    /// The pod's addresses (CRI's primary IP and additional IPs), its
    /// network namespace (from the verbose info's runtime spec) and the CNI
    /// result as containerd took it (verbose info's `cniResult`).
    pub fn pod_network(&mut self, id: &str) -> (Vec<IpAddr>, PathBuf, serde_json::Value) {
        let request = PodSandboxStatusRequest {
            pod_sandbox_id: id.to_string(),
            verbose: true,
        };
        let response = self
            .runtime
            .block_on(self.client.pod_sandbox_status(request))
            .expect("PodSandboxStatus")
            .into_inner();
        let network = response
            .status
            .and_then(|s| s.network)
            .expect("the status has a network");
        let addresses = std::iter::once(network.ip)
            .chain(network.additional_ips.into_iter().map(|ip| ip.ip))
            .map(|ip| ip.parse().expect("the CRI reports IP addresses"))
            .collect();
        let info: serde_json::Value =
            serde_json::from_str(response.info.get("info").expect("verbose info"))
                .expect("verbose info is JSON");
        let netns = info["runtimeSpec"]["linux"]["namespaces"]
            .as_array()
            .expect("the runtime spec's namespaces")
            .iter()
            .find(|ns| ns["type"] == "network")
            .and_then(|ns| ns["path"].as_str())
            .expect("the sandbox has a network namespace path");
        (addresses, PathBuf::from(netns), info["cniResult"].clone())
    }

    pub fn stop_and_remove(&mut self, id: &str) {
        let id = id.to_string();
        self.runtime
            .block_on(self.client.stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            }))
            .expect("StopPodSandbox");
        self.runtime
            .block_on(
                self.client
                    .remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id }),
            )
            .expect("RemovePodSandbox");
    }

    pub fn pod_count(&mut self) -> usize {
        self.runtime
            .block_on(
                self.client
                    .list_pod_sandbox(ListPodSandboxRequest { filter: None }),
            )
            .expect("ListPodSandbox")
            .into_inner()
            .items
            .len()
    }
}

/// A pod as the test asks for it.
pub struct PodSpec {
    pub name: &'static str,
    pub namespace: &'static str,
    pub gateway: usize,
    pub annotations: &'static [(&'static str, &'static str)],
    pub host_port: Option<i32>,
    /// The tenant it must land in.
    pub tenant: &'static str,
}

/// The sandbox config kubelet sends for a pod (pkg/kubelet/kuberuntime's
/// generatePodSandboxConfig): metadata, hostname, log directory, DNS,
/// the kubelet's labels and annotations, port mappings of host ports, and a
/// Linux security context with the pod's namespaces (network and IPC per
/// pod, PID per container).
pub fn sandbox_config(spec: &PodSpec, logs: &Path, cgroup_parent: &str) -> PodSandboxConfig {
    let uid = format!("{}-{}", spec.name, unique_tag("u"));
    let labels = HashMap::from([
        ("io.kubernetes.pod.name".to_string(), spec.name.to_string()),
        ("io.kubernetes.pod.namespace".into(), spec.namespace.into()),
        ("io.kubernetes.pod.uid".into(), uid.clone()),
    ]);
    let mut annotations = HashMap::from([
        ("kubernetes.io/config.source".to_string(), "api".to_string()),
        (
            "kubernetes.io/config.seen".into(),
            "2026-12-05T21:00:00Z".into(),
        ),
    ]);
    for (key, value) in spec.annotations {
        annotations.insert(key.to_string(), value.to_string());
    }
    let log_directory = logs.join(format!("{}_{}_{uid}", spec.namespace, spec.name));
    std::fs::create_dir_all(&log_directory).expect("the pod's log directory");
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: spec.name.into(),
            uid,
            namespace: spec.namespace.into(),
            attempt: 0,
        }),
        hostname: spec.name.into(),
        log_directory: log_directory.display().to_string(),
        dns_config: Some(DnsConfig {
            servers: vec!["10.96.0.10".into()],
            searches: vec![
                format!("{}.svc.cluster.local", spec.namespace),
                "svc.cluster.local".into(),
                "cluster.local".into(),
            ],
            options: vec!["ndots:5".into()],
        }),
        port_mappings: spec
            .host_port
            .map(|port| PortMapping {
                protocol: Protocol::Tcp as i32,
                container_port: 8080,
                host_port: port,
                host_ip: String::new(),
            })
            .into_iter()
            .collect(),
        labels,
        annotations,
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.to_string(),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Pod as i32,
                    pid: NamespaceMode::Container as i32,
                    ipc: NamespaceMode::Pod as i32,
                    ..NamespaceOption::default()
                }),
                ..LinuxSandboxSecurityContext::default()
            }),
            ..LinuxPodSandboxConfig::default()
        }),
        windows: None,
    }
}
