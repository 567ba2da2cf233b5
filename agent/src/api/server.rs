//! The API server: accept loop, one task per connection, bounded line reads.

use super::{
    BgpSessionInfo, Detached, DropCounter, GcResult, MAX_REQUEST_BYTES, PeerInfo, Request,
    Response, RouteInfo, Status, TenantChoice, VrfInfo, codes,
};
use crate::attach::{AttachRequest, Attachments};
use crate::config::{Config, Role};
use crate::control::BgpHandle;
use crate::ipam::WorkloadKey;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// What the data plane, the WireGuard peers and the BGP speaker report. The
/// agent's data plane implements it; until it runs, [`NoDataplane`] answers
/// with the configured peers and sessions and empty counters.
pub trait DataplaneView: Send + Sync {
    /// Whether a data plane is running.
    fn running(&self) -> bool;
    /// Routes learned by BGP (remote routes), for one tenant or all.
    fn remote_routes(&self, tenant: Option<&str>) -> Vec<RouteInfo>;
    /// Live WireGuard peer state, if known.
    fn peers(&self) -> Option<Vec<PeerInfo>>;
    /// Live BGP sessions, if known.
    fn bgp_sessions(&self) -> Option<Vec<BgpSessionInfo>>;
    /// Drop counters.
    fn drops(&self) -> Vec<DropCounter>;
    /// Learned routes refused (they claimed one of this node's own
    /// prefixes), if this node learns routes.
    fn refused_routes(&self) -> Option<u64> {
        None
    }
}

/// The view of an agent without a running data plane.
pub struct NoDataplane;

impl DataplaneView for NoDataplane {
    fn running(&self) -> bool {
        false
    }
    fn remote_routes(&self, _tenant: Option<&str>) -> Vec<RouteInfo> {
        Vec::new()
    }
    fn peers(&self) -> Option<Vec<PeerInfo>> {
        None
    }
    fn bgp_sessions(&self) -> Option<Vec<BgpSessionInfo>> {
        None
    }
    fn drops(&self) -> Vec<DropCounter> {
        Vec::new()
    }
}

/// Binds the API socket at `path` with mode 0600, replacing a stale socket
/// left by an earlier agent. Creates the parent directory (mode 0755) if needed.
pub fn bind_socket(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let temp = path.with_extension("sock.new");
    let _ = std::fs::remove_file(&temp);
    let listener = UnixListener::bind(&temp)?;
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&temp, path)?;
    Ok(listener)
}

/// The API server's shared state.
pub struct ApiServer {
    config: Arc<Config>,
    attachments: Arc<Attachments>,
    view: Arc<dyn DataplaneView>,
    bgp: Option<BgpHandle>,
    started: Instant,
}

impl ApiServer {
    /// A server answering from these parts.
    pub fn new(
        config: Arc<Config>,
        attachments: Arc<Attachments>,
        view: Arc<dyn DataplaneView>,
    ) -> Arc<ApiServer> {
        ApiServer::with_bgp(config, attachments, view, None)
    }

    /// A server that also answers `bgp_rib` from this node's speaker.
    pub fn with_bgp(
        config: Arc<Config>,
        attachments: Arc<Attachments>,
        view: Arc<dyn DataplaneView>,
        bgp: Option<BgpHandle>,
    ) -> Arc<ApiServer> {
        Arc::new(ApiServer {
            config,
            attachments,
            view,
            bgp,
            started: Instant::now(),
        })
    }

    /// Accepts connections until the listener fails.
    pub async fn serve(self: Arc<Self>, listener: UnixListener) -> std::io::Result<()> {
        loop {
            let (stream, _) = listener.accept().await?;
            let server = Arc::clone(&self);
            tokio::spawn(async move {
                if let Err(e) = server.serve_connection(stream).await {
                    tracing::debug!(error = %e, "API connection ended");
                }
            });
        }
    }

    async fn serve_connection(&self, stream: UnixStream) -> std::io::Result<()> {
        let accepted = Instant::now();
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::new(read);
        let mut line = Vec::new();
        loop {
            line.clear();
            let limit = (MAX_REQUEST_BYTES + 1) as u64;
            let n = (&mut reader)
                .take(limit)
                .read_until(b'\n', &mut line)
                .await?;
            if n == 0 {
                return Ok(());
            }
            let complete = line.last() == Some(&b'\n');
            if !complete && line.len() > MAX_REQUEST_BYTES {
                // Unbounded input is refused, and the rest of it is not read.
                let answer = Response::failure(
                    codes::MALFORMED_REQUEST,
                    format!("request longer than {MAX_REQUEST_BYTES} bytes"),
                );
                send(&mut write, &answer).await?;
                return Ok(());
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let read = Instant::now();
            let (kind, answer) = match serde_json::from_slice::<Request>(&line) {
                Ok(request) => (request.kind(), self.dispatch(request).await),
                Err(e) => (
                    "malformed",
                    Response::failure(codes::MALFORMED_REQUEST, format!("malformed request: {e}")),
                ),
            };
            send(&mut write, &answer).await?;
            // From the request's last byte to the answer's, for the CNI
            // latency benchmark: what the API adds around attach and detach.
            tracing::debug!(
                request = kind,
                since_accept_ms = accepted.elapsed().as_secs_f64() * 1e3,
                answer_ms = read.elapsed().as_secs_f64() * 1e3,
                "answered"
            );
        }
    }

    /// Answers one request.
    pub async fn dispatch(&self, request: Request) -> Response {
        match request {
            Request::Attach {
                container_id,
                netns,
                ifname,
                tenant,
                addresses,
                mtu,
                owner,
            } => {
                let req = AttachRequest {
                    container_id,
                    netns,
                    ifname,
                    tenant,
                    addresses,
                    mtu,
                    owner,
                };
                match self.attachments.attach(&req).await {
                    Ok(a) => {
                        tracing::info!(container = %a.container_id, tenant = %a.tenant, addresses = ?a.addresses, "attached");
                        Response::success(a)
                    }
                    Err(e) => {
                        tracing::warn!(container = %req.container_id, error = %e, "attach failed");
                        Response::failure(e.code(), e.to_string())
                    }
                }
            }
            Request::Detach {
                container_id,
                ifname,
            } => match self
                .attachments
                .detach(&WorkloadKey::new(container_id, ifname))
                .await
            {
                Ok(removed) => Response::success(Detached { removed }),
                Err(e) => Response::failure(e.code(), e.to_string()),
            },
            Request::Check {
                container_id,
                ifname,
            } => match self
                .attachments
                .check(&WorkloadKey::new(container_id, ifname))
                .await
            {
                Ok(a) => Response::success(a),
                Err(e) => Response::failure(e.code(), e.to_string()),
            },
            Request::Gc {
                valid_attachments,
                owner,
            } => {
                match self
                    .attachments
                    .collect_garbage(&valid_attachments, owner.as_deref())
                    .await
                {
                    Ok(released) => Response::success(GcResult { released }),
                    Err(e) => Response::failure(e.code(), e.to_string()),
                }
            }
            Request::TenantForNamespace { namespace } => Response::success(TenantChoice {
                tenant: self
                    .config
                    .tenant_for_namespace(&namespace)
                    .map(|t| t.name.clone()),
            }),
            Request::Status => Response::success(self.status().await),
            Request::Endpoints => Response::success(self.attachments.list().await),
            Request::Vrfs => Response::success(self.vrfs().await),
            Request::Routes { tenant } => match &tenant {
                Some(t) if self.config.tenant(t).is_none() => {
                    Response::failure(codes::UNKNOWN_TENANT, format!("unknown tenant `{t}`"))
                }
                _ => Response::success(self.routes(tenant.as_deref()).await),
            },
            Request::Peers => Response::success(self.peers()),
            Request::Bgp => Response::success(self.bgp_sessions()),
            Request::BgpRib { vrf, family } => {
                super::rib::bgp_rib(
                    &self.config,
                    self.bgp.as_ref(),
                    vrf.as_deref(),
                    family.as_deref(),
                )
                .await
            }
            Request::Drops => Response::success(self.view.drops()),
        }
    }

    async fn status(&self) -> Status {
        Status {
            node: self.config.node.name.clone(),
            role: match self.config.node.role {
                Role::Gateway => "gateway".into(),
                Role::Edge => "edge".into(),
            },
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_secs: self.started.elapsed().as_secs(),
            tunnel_address: self.config.tunnel.address,
            tenants: self.config.tenants.len(),
            endpoints: self.attachments.list().await.len(),
            dataplane: self.view.running(),
        }
    }

    async fn vrfs(&self) -> Vec<VrfInfo> {
        let store = self.attachments.store().lock().await;
        let state = store.state();
        self.config
            .tenants
            .iter()
            .map(|t| VrfInfo {
                tenant: t.name.clone(),
                id: t.id,
                label: state.labels.get(t.id).map(|l| l.value()),
                table: t.table_id(),
                rule_priority: t.rule_priority(),
                tun: t.tun_name(),
                prefixes: t.prefixes.iter().map(|p| p.to_string()).collect(),
                export_route_targets: t.export_route_targets.clone(),
                import_route_targets: t.import_route_targets.clone(),
                endpoints: state
                    .endpoints
                    .iter()
                    .filter(|e| e.tenant == t.name)
                    .count(),
            })
            .collect()
    }

    async fn routes(&self, tenant: Option<&str>) -> Vec<RouteInfo> {
        let mut routes: Vec<RouteInfo> = self
            .attachments
            .list()
            .await
            .into_iter()
            .filter(|a| tenant.is_none_or(|t| t == a.tenant))
            .flat_map(|a| {
                a.addresses
                    .iter()
                    .map(|p| RouteInfo {
                        tenant: a.tenant.clone(),
                        prefix: p.clone(),
                        source: "local".into(),
                        interface: Some(a.host_ifname.clone()),
                        next_hop: None,
                        label: None,
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        routes.extend(self.view.remote_routes(tenant));
        routes
    }

    fn peers(&self) -> Vec<PeerInfo> {
        self.view.peers().unwrap_or_else(|| {
            self.config
                .wireguard
                .peers
                .iter()
                .map(|p| PeerInfo {
                    name: p.name.clone(),
                    public_key: p.public_key.clone(),
                    endpoint: p.endpoint.map(|e| e.to_string()),
                    tunnel_address: p.tunnel_address,
                    last_handshake_secs: None,
                    rx_bytes: 0,
                    tx_bytes: 0,
                    rx_packets: 0,
                    tx_packets: 0,
                    handshakes: 0,
                    endpoint_changes: 0,
                    drops: Default::default(),
                })
                .collect()
        })
    }

    fn bgp_sessions(&self) -> Vec<BgpSessionInfo> {
        self.view.bgp_sessions().unwrap_or_else(|| {
            self.config
                .bgp
                .neighbors
                .iter()
                .map(|n| BgpSessionInfo {
                    neighbor: n.address,
                    name: n.name.clone(),
                    state: "Idle".into(),
                    uptime_secs: None,
                    received: 0,
                    advertised: 0,
                })
                .collect()
        })
    }
}

async fn send(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    response: &Response,
) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(response).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await
}
