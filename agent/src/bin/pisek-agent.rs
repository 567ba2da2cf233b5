//! `pisek-agent`: the gateway (and edge) daemon.
//!
//! Start-up: load and validate the config, open the state directory,
//! allocate the tenants' VRF labels, finish or undo attachments a crash
//! interrupted, then start the data plane (`dataplane`: persistent TUNs,
//! tenant routing, the forwarder thread), the BGP speaker (`routing`), tell
//! the data plane and BGP of the adopted workloads, and serve the attach API.
//!
//! On SIGTERM or SIGINT the agent exits and leaves every interface, route
//! and rule in place: workloads keep their addresses and same-node traffic
//! keeps flowing; BGP stops without a NOTIFICATION so that peers keep our
//! routes (graceful restart, RFC 4724); the routes the VRFs learned are
//! written to the state directory; the next start adopts the TUNs by name,
//! the endpoints from the state, and the learned routes as stale, so
//! forwarding goes on until the peers have resent them (RFC 4724 §4.1).
use anyhow::Context;
use clap::Parser;
use pisek_agent::api::{ApiServer, DataplaneView, bind_socket};
use pisek_agent::attach::Attachments;
use pisek_agent::config::{Config, LogFormat};
use pisek_agent::metrics::{self, ForwarderCounters, MetricsSources};
use pisek_agent::netlink::{Netlink, sysctl};
use pisek_agent::state::StateStore;
use pisek_agent::{control as routing, dataplane};
use pisek_overlay::vrf::NextHop;
use std::process::ExitCode;
use std::sync::Arc;

/// Pisek gateway agent.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Path of the agent's configuration.
    #[arg(long, default_value = "/etc/pisek/agent.toml")]
    config: std::path::PathBuf,
    /// Only check the configuration, print every problem, and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            for line in e.lines() {
                eprintln!("{line}");
            }
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        println!("{}: ok", args.config.display());
        return ExitCode::SUCCESS;
    }
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("pisek-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(config.log.level.as_deref().unwrap_or("info"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The daemon, phase by phase: state, the data plane, BGP, the adopted
/// attachments, then the API until a signal.
async fn run(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let store = open_state(&config)?;
    let labels: Vec<_> = store.state().labels.iter().collect();
    let strays = routing::stray_routes(&config, store.state());
    let workloads = routing::workload_addresses(store.state());
    sysctl::enable_forwarding().context("enabling forwarding")?;
    let host = Netlink::open().context("opening netlink")?;
    // The fabric TUN outlives the process: finding it means this is a
    // restart and the kernel side of the data plane kept working.
    let restarting = host
        .link_by_name(dataplane::FABRIC_TUN)
        .await
        .context("looking for pisek0")?
        .is_some();
    // The previous run's learned routes, stale, in the VRFs before the
    // forwarder's first packet (RFC 4724 §4.1).
    let mut vrf_routes = routing::VrfRoutes::new(config.tunnel.address)
        .with_own_prefixes(routing::own_prefixes(&config));
    let kept = kept_routes(&config, restarting, &mut vrf_routes);
    let mut forwarder = dataplane::start(&config, &labels, &kept, &workloads, &host)
        .await
        .context("starting the data plane")?;
    // Where the peers are, for the next start's handshakes.
    tokio::spawn(dataplane::peer_endpoints::keep(
        config.state.dir.clone(),
        forwarder.snapshot(),
    ));
    let routing = if config.bgp.speaker {
        Some(
            routing::start(
                Arc::clone(&config),
                &labels,
                &strays,
                restarting,
                forwarder.commands(),
                vrf_routes,
            )
            .await
            .context("starting BGP")?,
        )
    } else {
        tracing::info!("bgp.speaker = false: a separate route reflector serves this node");
        None
    };
    let sessions = routing
        .as_ref()
        .map_or_else(Default::default, |r| Arc::clone(&r.sessions));
    // Attach and detach tell the forwarder and BGP before they answer.
    let workload_routing =
        routing::WorkloadRouting::new(&config, &labels, forwarder.commands(), routing.as_ref());
    let attachments = Arc::new(
        Attachments::new(
            Arc::clone(&config),
            Arc::new(tokio::sync::Mutex::new(store)),
            host,
        )
        .with_observer(Arc::new(workload_routing)),
    );
    let adopted = adopt_attachments(&attachments).await?;
    let mut live_view = dataplane::LiveView::new(
        Arc::clone(&config),
        forwarder.snapshot(),
        Arc::clone(&sessions),
    );
    if let Some(r) = &routing {
        live_view = live_view.with_vrf_routes(Arc::clone(&r.vrf_routes));
    }
    let view: Arc<dyn DataplaneView> = Arc::new(live_view);
    // Metrics are for the operator: the agent forwards without them, but a
    // configured endpoint that cannot bind is a config error worth stopping for.
    let _metrics = metrics::serve(
        config.metrics.listen,
        MetricsSources::new(Arc::clone(&view))
            .with_attachments(Arc::clone(&attachments))
            .with_tenant_traffic(Arc::new(ForwarderCounters::new(
                Arc::clone(&config),
                forwarder.snapshot(),
            ))),
    )
    .await
    .with_context(|| format!("serving metrics on {}", config.metrics.listen))?;
    let bgp = routing.as_ref().map(|r| r.handle.clone());
    serve_until_signal(&config, attachments, view, bgp, adopted).await?;
    if let Some(routing) = routing {
        routing.stop_for_restart().await;
    }
    forwarder.stop().context("stopping the forwarder")?;
    Ok(())
}

/// Opens the state directory and gives every tenant its VRF label now, so
/// it is on disk before any route carrying it is advertised.
fn open_state(config: &Config) -> anyhow::Result<StateStore> {
    let mut store = StateStore::open(&config.state.dir, &config.state.runtime_dir)
        .context("opening the state directories")?;
    store
        .update(|s| -> Result<(), anyhow::Error> {
            for t in &config.tenants {
                s.labels.label_for(t.id)?;
            }
            Ok(())
        })
        .context("allocating VRF labels")?;
    Ok(store)
}

/// The routes the forwarder starts with: on a restart of a BGP speaker, the
/// previous run's learned routes (restored into `vrf_routes` as stale);
/// none otherwise.
fn kept_routes(
    config: &Config,
    restarting: bool,
    vrf_routes: &mut routing::VrfRoutes,
) -> Vec<(pisek_overlay::TenantId, ipnet::IpNet, NextHop)> {
    let kept: Vec<_> = if config.bgp.speaker {
        let restored = routing::restart::restored_routes(config, restarting);
        vrf_routes
            .restore(&restored)
            .into_iter()
            .filter_map(|c| Some((c.tenant, c.prefix, c.next_hop?)))
            .collect()
    } else {
        Vec::new()
    };
    if restarting && config.bgp.speaker {
        tracing::info!(
            routes = kept.len(),
            "forwarding on with the learned routes of the previous run, stale until End-of-RIB"
        );
    }
    kept
}

/// Removes what a crash left half-made and tells the data plane and BGP of
/// every attachment adopted from the state; returns how many there are.
async fn adopt_attachments(attachments: &Attachments) -> anyhow::Result<usize> {
    let undone = attachments
        .recover()
        .await
        .context("removing attachments a crash interrupted")?;
    if !undone.is_empty() {
        tracing::warn!(count = undone.len(), "removed half-made attachments");
    }
    let vanished = attachments
        .release_vanished()
        .await
        .context("releasing attachments whose namespace is gone")?;
    if !vanished.is_empty() {
        tracing::warn!(
            count = vanished.len(),
            "released attachments whose namespace is gone"
        );
    }
    let adopted = attachments.list().await.len();
    attachments
        .publish_all()
        .await
        .context("telling the data plane of the adopted workloads")?;
    Ok(adopted)
}

/// Serves the attach API until SIGTERM or SIGINT (or the API fails), then
/// removes the API socket. Interfaces and routes stay.
async fn serve_until_signal(
    config: &Arc<Config>,
    attachments: Arc<Attachments>,
    view: Arc<dyn DataplaneView>,
    bgp: Option<routing::BgpHandle>,
    adopted: usize,
) -> anyhow::Result<()> {
    let listener = bind_socket(&config.api.socket)
        .with_context(|| format!("binding the API socket {}", config.api.socket.display()))?;
    tracing::info!(
        node = %config.node.name,
        socket = %config.api.socket.display(),
        endpoints = adopted,
        "agent ready"
    );
    let sweep = tokio::spawn(sweep_vanished(
        Arc::clone(&attachments),
        std::time::Duration::from_secs(config.api.vanished_sweep_secs),
    ));
    let server = ApiServer::with_bgp(Arc::clone(config), attachments, view, bgp);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = server.serve(listener) => r.context("serving the API")?,
        _ = term.recv() => tracing::info!("SIGTERM: exiting, interfaces and routes stay"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: exiting, interfaces and routes stay"),
    }
    sweep.abort();
    let _ = std::fs::remove_file(&config.api.socket);
    Ok(())
}

/// Every `interval`, releases the attachments whose namespace is gone (a
/// pod removed without a CNI DEL), so their leases do not leak.
async fn sweep_vanished(attachments: Arc<Attachments>, interval: std::time::Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        if let Err(e) = attachments.release_vanished().await {
            tracing::warn!(error = %e, "sweeping attachments whose namespace is gone");
        }
    }
}
