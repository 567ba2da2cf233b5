//! Sensor data across the overlay, in the two-gateway lab: simulated
//! sensors and a `pisek-collector` on each gateway, carbon behind the edge.
//! Used by `examples/two_gateways.rs` (to show it) and
//! `tests/lab_sensors.rs` (to prove it); built only from
//! [`Lab`](crate::lab::Lab)'s public API.
//!
//! ```text
//!  gateway gwN, conference workload 2 (<tag>-gwN-conf2)    edge, conference datacenter service
//!  ┌─────────────────────────────────────────────┐         ┌──────────────────────────────┐
//!  │ sensors ─MQTT─> pisek-collector ─plaintext──┼─ overlay ─> carbon-cache :2003         │
//!  │ (3 rooms +      embedded broker 127.0.0.1:1883         │  whisper: <lab.dir>/carbon/  │
//!  │  1 IQRF node)   queue <lab.dir>/collector-gwN/         │  pisek.gwN.<room>.<quantity> │
//!  └─────────────────────────────────────────────┘         └──────────────────────────────┘
//! ```
//! The collector's Graphite address is the datacenter service's address in
//! tenant `conference` (10.1.0.0/24), so every point reaches carbon through
//! the gateway's VRF, MPLS-over-UDP, WireGuard, the edge's VRF and its veth.
//! Where `carbon-cache` is not installed nothing listens there and the
//! collectors' queues grow instead (their `/metrics` shows it).
//!
//! Dropping the [`SensorLab`] stops the sensors, the collectors and carbon;
//! their files live in the lab's directory and go with the lab.

pub mod carbon;
pub mod sensors;
pub mod whisper;

pub use sensors::{PublisherCounters, ROOMS, SensorModel, SensorPlan, civil_time, unix_now};

use crate::lab::Lab;
use crate::netns;
use crate::poll::poll;
use crate::process::terminate;
use anyhow::Context;
use carbon::Carbon;
use sensors::SensorPublisher;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The conference workload (1-based) on each gateway that runs the
/// collector and the sensors. Workload 1 stays idle: the example's
/// isolation check counts the echo requests it receives.
pub const COLLECTOR_WORKLOAD: usize = 2;

/// The collector's embedded MQTT broker, inside the workload's namespace.
pub const MQTT_BROKER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1883);

/// The collector's `/health` and `/metrics`, inside the workload's namespace.
pub const COLLECTOR_HEALTH: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9108);

/// One gateway's sensor side.
pub struct GatewaySensors {
    /// The gateway (`gw1`, `gw2`).
    pub gateway: String,
    /// The namespace of the workload the collector and sensors run in.
    pub netns: String,
    /// That workload's address in tenant `conference`.
    pub address: Ipv4Addr,
    /// What its sensors measure.
    pub model: SensorModel,
    /// What its sensors have published.
    pub counters: Arc<PublisherCounters>,
    config: PathBuf,
    log: PathBuf,
    collector: Option<Child>,
    publisher: Option<SensorPublisher>,
}

/// What reached Graphite from one gateway, and what waits in its queue.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayStatus {
    /// Readings the broker acknowledged to the sensors.
    pub published: u64,
    /// Points stored in whisper under `pisek.<gateway>.`.
    pub points: u64,
    /// The newest point (metric, timestamp, value); ties go to the first
    /// metric of [`SensorModel::expected`].
    pub latest: Option<(String, i64, f64)>,
    /// Unsent bytes in the collector's queue, from its `/metrics`.
    pub queue_depth_bytes: Option<u64>,
}

/// Whether the sensor side runs carbon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CarbonMode {
    /// carbon-cache where it is installed.
    IfInstalled,
    /// No carbon, as where it is not installed: the readings wait in the
    /// collectors' queues.
    Off,
}

/// The sensor side of a running [`Lab`].
pub struct SensorLab<'a> {
    lab: &'a Lab,
    gateways: Vec<GatewaySensors>,
    carbon: Option<Carbon>,
    carbon_address: SocketAddrV4,
}

impl<'a> SensorLab<'a> {
    /// Starts carbon (if installed) in the edge's conference datacenter
    /// service, a collector (`collector` is the `pisek-collector` binary)
    /// in conference workload [`COLLECTOR_WORKLOAD`] of each gateway, then
    /// each gateway's sensors by `plan`.
    pub fn start(lab: &'a Lab, collector: &Path, plan: SensorPlan) -> anyhow::Result<Self> {
        SensorLab::start_with(lab, collector, plan, CarbonMode::IfInstalled)
    }

    /// [`SensorLab::start`], with or without carbon.
    pub fn start_with(
        lab: &'a Lab,
        collector: &Path,
        plan: SensorPlan,
        carbon: CarbonMode,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            lab.has_dc_services(),
            "the sensor side needs the edge's datacenter services (Reflector::Agent)"
        );
        let dc = lab.workload("edge", "conference", 1);
        let mut sensor_lab = SensorLab {
            lab,
            gateways: Vec::new(),
            carbon: None,
            carbon_address: SocketAddrV4::new(dc.address, carbon::LINE_PORT),
        };
        if carbon == CarbonMode::IfInstalled && Carbon::installed() {
            let mut carbon = Carbon::new(&lab.dir, &dc.netns)?;
            carbon.start()?;
            sensor_lab.carbon = Some(carbon);
        }
        for (i, node) in lab.nodes.iter().enumerate().skip(1) {
            let workload = lab.workload(&node.name, "conference", COLLECTOR_WORKLOAD);
            let model = SensorModel::new(&node.name, i as u32)
                .with_rooms(plan.sensors_per_gateway.saturating_sub(1).max(1));
            let gateway = GatewaySensors {
                gateway: node.name.clone(),
                netns: workload.netns.clone(),
                address: workload.address,
                config: lab.dir.join(format!("collector-{}.toml", node.name)),
                log: lab.dir.join(format!("collector-{}.log", node.name)),
                model,
                counters: Arc::default(),
                collector: None,
                publisher: None,
            };
            sensor_lab.write_collector_config(&gateway)?;
            // Owned by the lab before it starts, so a failure further on
            // still stops it.
            sensor_lab.gateways.push(gateway);
            if let Some(gateway) = sensor_lab.gateways.last_mut() {
                start_collector(gateway, collector)?;
            }
        }
        sensor_lab.publish(plan)?;
        Ok(sensor_lab)
    }

    fn write_collector_config(&self, gateway: &GatewaySensors) -> anyhow::Result<()> {
        let queue = self.lab.dir.join(format!("collector-{}", gateway.gateway));
        let text = format!(
            "# pisek-collector on {gw}: sensors -> embedded broker -> queue -> carbon behind the edge\n\
             [mqtt]\nclient_id = \"pisek-collector-{gw}\"\n\n\
             [embedded_broker]\nlisten = \"{MQTT_BROKER}\"\n\n\
             [queue]\ndir = \"{queue}\"\n\n\
             [graphite]\naddress = \"{carbon}\"\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n\n\
             [health]\nlisten = \"{COLLECTOR_HEALTH}\"\n{routes}",
            gw = gateway.gateway,
            queue = queue.display(),
            carbon = self.carbon_address,
            routes = gateway.model.collector_routes(),
        );
        std::fs::write(&gateway.config, text)?;
        Ok(())
    }

    /// Starts (or replaces) every gateway's sensors with `plan`; the
    /// published counts carry on.
    pub fn publish(&mut self, plan: SensorPlan) -> anyhow::Result<()> {
        for gateway in &mut self.gateways {
            gateway.publisher = None;
            gateway.counters.finished.store(false, Ordering::Relaxed);
            gateway.publisher = Some(SensorPublisher::start(
                &gateway.netns,
                SocketAddr::V4(MQTT_BROKER),
                gateway.model.clone(),
                plan,
                Arc::clone(&gateway.counters),
            )?);
        }
        Ok(())
    }

    /// The gateways' sensor sides.
    pub fn gateways(&self) -> &[GatewaySensors] {
        &self.gateways
    }

    /// One gateway's sensor side.
    pub fn gateway(&self, name: &str) -> anyhow::Result<&GatewaySensors> {
        self.gateways
            .iter()
            .find(|g| g.gateway == name)
            .with_context(|| format!("no sensors on {name}"))
    }

    /// Whether carbon runs behind the edge (it does wherever it is installed).
    pub fn has_carbon(&self) -> bool {
        self.carbon.as_ref().is_some_and(Carbon::running)
    }

    /// Where the collectors send their points: the conference datacenter
    /// service's address, carbon's line port.
    pub fn carbon_address(&self) -> SocketAddrV4 {
        self.carbon_address
    }

    /// Stops carbon (SIGTERM): the collectors queue until it is back.
    pub fn stop_carbon(&mut self) -> anyhow::Result<()> {
        match &mut self.carbon {
            Some(carbon) => carbon.stop(),
            None => Ok(()),
        }
    }

    /// Starts carbon again after [`SensorLab::stop_carbon`].
    pub fn start_carbon(&mut self) -> anyhow::Result<()> {
        match &mut self.carbon {
            Some(carbon) => carbon.start(),
            None => anyhow::bail!("carbon-cache is not installed"),
        }
    }

    /// The whisper file of `metric` (`pisek.gw1.hall.co2`), where carbon
    /// stores it.
    pub fn whisper_file(&self, metric: &str) -> Option<PathBuf> {
        let carbon = self.carbon.as_ref()?;
        Some(
            carbon
                .whisper_dir()
                .join(format!("{}.wsp", metric.replace('.', "/"))),
        )
    }

    /// What carbon must hold for `gateway` after the rounds stamped
    /// `from..until`: every metric with its value at each second.
    pub fn expected(
        &self,
        gateway: &str,
        from: i64,
        until: i64,
    ) -> anyhow::Result<BTreeMap<String, BTreeMap<i64, f64>>> {
        let model = &self.gateway(gateway)?.model;
        let mut points: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
        for ts in from..until {
            for (metric, value) in model.expected(ts) {
                points.entry(metric).or_default().insert(ts, value);
            }
        }
        Ok(points)
    }

    /// Every metric carbon stored for `gateway`, with its points from
    /// `since` on (read from the whisper files). Empty without carbon.
    pub fn stored(
        &self,
        gateway: &str,
        since: i64,
    ) -> anyhow::Result<BTreeMap<String, BTreeMap<i64, f64>>> {
        let Some(carbon) = &self.carbon else {
            return Ok(BTreeMap::new());
        };
        let dir = carbon.whisper_dir().join("pisek").join(gateway);
        Ok(whisper::read_tree(
            &dir,
            &format!("pisek.{gateway}"),
            since,
            unix_now(),
        )?)
    }

    /// A counter or gauge of `gateway`'s collector, from its `/metrics`
    /// (`queue_depth_bytes` for `pisek_collector_queue_depth_bytes`).
    pub fn collector_metric(&self, gateway: &str, name: &str) -> anyhow::Result<u64> {
        let g = self.gateway(gateway)?;
        let text = netns::http_get(&g.netns, SocketAddr::V4(COLLECTOR_HEALTH), "/metrics")?;
        let prefix = format!("pisek_collector_{name} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("no {prefix}in {}'s /metrics", g.gateway))
    }

    /// Published, stored, newest point and queue depth of `gateway`.
    pub fn status(&self, gateway: &str) -> anyhow::Result<GatewayStatus> {
        let g = self.gateway(gateway)?;
        let stored = self.stored(gateway, 0)?;
        // Among the newest points, the first in the model's order (the
        // hall's temperature), so the line follows one series.
        let mut latest: Option<(String, i64, f64)> = None;
        for (metric, _) in g.model.expected(0) {
            if let Some((&ts, &value)) = stored.get(&metric).and_then(|p| p.last_key_value())
                && latest.as_ref().is_none_or(|(_, t, _)| ts > *t)
            {
                latest = Some((metric, ts, value));
            }
        }
        Ok(GatewayStatus {
            published: g.counters.published.load(Ordering::Relaxed),
            points: stored.values().map(|p| p.len() as u64).sum(),
            latest,
            queue_depth_bytes: self.collector_metric(gateway, "queue_depth_bytes").ok(),
        })
    }

    /// The last lines of the collectors' logs and of carbon's.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for g in &self.gateways {
            text.push_str(&format!(
                "--- pisek-collector on {}\n{}\n",
                g.gateway,
                tail(&g.log, 15)
            ));
        }
        if let Some(carbon) = &self.carbon {
            text.push_str(&format!(
                "--- carbon-cache\n{}\n",
                tail(&carbon.dir.join("carbon.out"), 15)
            ));
        }
        text
    }
}

impl Drop for SensorLab<'_> {
    fn drop(&mut self) {
        // Sensors first, so no publish meets a collector that is gone.
        for g in &mut self.gateways {
            g.publisher = None;
        }
        for g in &mut self.gateways {
            if let Some(mut child) = g.collector.take() {
                let _ = terminate(&mut child);
            }
        }
        self.carbon = None;
    }
}

/// Starts the gateway's collector and waits until it is subscribed to
/// its broker (`/health` 200; carbon being away does not count).
fn start_collector(gateway: &mut GatewaySensors, binary: &Path) -> anyhow::Result<()> {
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(&gateway.log)?;
    let child = Command::new("ip")
        .args(["netns", "exec", &gateway.netns])
        .arg(binary)
        .arg("--config")
        .arg(&gateway.config)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info,rumqttd=warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    gateway.collector = Some(child);
    let health = SocketAddr::V4(COLLECTOR_HEALTH);
    poll(
        &format!("pisek-collector on {} healthy", gateway.gateway),
        Duration::from_secs(15),
        || {
            if let Some(status) = gateway
                .collector
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                anyhow::bail!(
                    "pisek-collector on {} exited with {status}:\n{}",
                    gateway.gateway,
                    tail(&gateway.log, 15)
                );
            }
            Ok(netns::http_get(&gateway.netns, health, "/health")
                .ok()
                .map(|_| ()))
        },
    )
}

/// The last `n` lines of a log file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
