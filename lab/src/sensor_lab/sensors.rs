//! The simulated sensors of one gateway: what they measure (a deterministic
//! model, so a test can tell exactly what Graphite must hold) and the MQTT
//! publisher that sends it to the gateway's collector.
//!
//! Per round, each gateway publishes one JSON object per conference room
//! (`rooms/<room>/env`: temperature, relative humidity, CO2, Unix `ts`), as
//! a small Wi-Fi sensor would, and one `iqrfSensor_ReadSensorsWithTypes`
//! response on `Iqrf/DpaResponse`, as the IQRF Gateway Daemon publishes it
//! for an IQRF node (address 1) with temperature, CO2 and humidity.
//!
//! Publisher flow, one thread inside the workload's namespace: round timer
//! -> messages of the round -> rumqttc request queue (QoS 1) -> broker;
//! PUBACK -> the round's readings count as published.

use crate::netns;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// The conference rooms with a sensor, on every gateway.
pub const ROOMS: [&str; 3] = ["hall", "ballroom", "lobby"];

/// The topic the IQRF Gateway Daemon publishes its responses on (its
/// default MQTT messaging instance).
pub const IQRF_TOPIC: &str = "Iqrf/DpaResponse";

/// The IQRF node address of the simulated IQRF sensor.
pub const IQRF_NODE: u32 = 1;

/// When and how many rounds of readings the sensors publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SensorPlan {
    /// Time between two rounds.
    pub interval: Duration,
    /// The first round's timestamp, the next ones a second apart; `None`:
    /// each round is stamped with the clock (whole seconds), as real
    /// sensors do.
    pub first_timestamp: Option<i64>,
    /// How many rounds; `None`: until stopped.
    pub rounds: Option<u64>,
    /// Sensors per gateway: rooms plus the IQRF node (at least 2).
    pub sensors_per_gateway: usize,
}

impl SensorPlan {
    /// One round a second, stamped with the clock, until stopped.
    pub fn live() -> SensorPlan {
        SensorPlan {
            interval: Duration::from_secs(1),
            first_timestamp: None,
            rounds: None,
            sensors_per_gateway: ROOMS.len() + 1,
        }
    }

    /// The same plan with `n` sensors per gateway (`n - 1` rooms and the
    /// IQRF node; at least 2).
    pub fn sensors_per_gateway(mut self, n: usize) -> SensorPlan {
        self.sensors_per_gateway = n.max(2);
        self
    }

    /// `rounds` rounds stamped `first`, `first + 1`, ..., published every
    /// `interval` (faster than real time, for tests).
    pub fn series(first: i64, rounds: u64, interval: Duration) -> SensorPlan {
        SensorPlan {
            interval,
            first_timestamp: Some(first),
            rounds: Some(rounds),
            sensors_per_gateway: ROOMS.len() + 1,
        }
    }

    /// The timestamp of round `round`; live rounds never repeat a second,
    /// which in a 1-second whisper archive would overwrite the last one.
    fn timestamp(&self, round: u64, last: Option<i64>) -> i64 {
        match self.first_timestamp {
            Some(first) => first + round as i64,
            None => last.map_or(unix_now(), |l| unix_now().max(l + 1)),
        }
    }
}

/// The current Unix time in whole seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What one gateway's sensors measure.
#[derive(Debug, Clone)]
pub struct SensorModel {
    /// The gateway (`gw1`): the second level of every metric path.
    pub gateway: String,
    /// Shifts this gateway's values, so the two gateways never report the
    /// same series and a point under the wrong gateway's path shows.
    pub offset: u32,
    /// Rooms with an MQTT sensor (the first three are [`ROOMS`], then
    /// `room4`, `room5`, ...); the IQRF node comes on top.
    pub rooms: usize,
}

/// The name of room `i`.
fn room_name(i: usize) -> String {
    ROOMS
        .get(i)
        .map_or_else(|| format!("room{}", i + 1), |r| r.to_string())
}

/// One MQTT message of a round.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorMessage {
    /// Its topic.
    pub topic: String,
    /// Its payload (JSON).
    pub payload: Vec<u8>,
    /// The readings it carries.
    pub readings: u64,
}

/// One room's readings at one second.
struct RoomReading {
    temperature: f64,
    humidity: f64,
    co2: f64,
}

/// `value` rounded to steps of `1 / per_unit`, as the nearest double to the
/// decimal a sensor prints (`22.49`, not `2249.0 * 0.01` = `22.490000000000002`).
fn round_to(value: f64, per_unit: f64) -> f64 {
    (value * per_unit).round() / per_unit
}

/// A slow wave through `[-1, 1]` with the given period, so a graph of the
/// values looks like a room over a conference day.
fn wave(ts: i64, period_secs: i64, phase: f64) -> f64 {
    let t = ts.rem_euclid(period_secs) as f64 / period_secs as f64;
    (std::f64::consts::TAU * t + phase).sin()
}

impl SensorModel {
    /// The model of gateway `gateway`; `offset` is its place in the lab.
    pub fn new(gateway: &str, offset: u32) -> SensorModel {
        SensorModel {
            gateway: gateway.to_string(),
            offset,
            rooms: ROOMS.len(),
        }
    }

    /// The same gateway with `rooms` room sensors.
    pub fn with_rooms(mut self, rooms: usize) -> SensorModel {
        self.rooms = rooms;
        self
    }

    fn room(&self, room: usize, ts: i64) -> RoomReading {
        let (g, r) = (f64::from(self.offset), room as f64);
        RoomReading {
            temperature: round_to(21.0 + 0.6 * g + 0.7 * r + 1.2 * wave(ts, 900, r), 100.0),
            humidity: round_to(38.0 + 2.0 * g + 4.0 * r + 3.0 * wave(ts, 1500, g), 10.0),
            co2: (520.0 + 90.0 * g + 160.0 * r + 180.0 * wave(ts, 600, r + g)).round(),
        }
    }

    fn iqrf(&self, ts: i64) -> RoomReading {
        let g = f64::from(self.offset);
        RoomReading {
            temperature: round_to(19.5 + 0.5 * g + 0.8 * wave(ts, 1200, g), 16.0),
            // The IQRF humidity sensor reports in steps of 0.5 %.
            humidity: round_to(45.0 + 5.0 * wave(ts, 1800, g), 2.0),
            co2: (650.0 + 40.0 * g + 250.0 * wave(ts, 720, g)).round(),
        }
    }

    /// The messages of the round stamped `ts`.
    pub fn messages(&self, ts: i64) -> Vec<SensorMessage> {
        let mut messages: Vec<SensorMessage> = (0..self.rooms)
            .map(|i| {
                let room = room_name(i);
                let r = self.room(i, ts);
                SensorMessage {
                    topic: format!("rooms/{room}/env"),
                    payload: format!(
                        r#"{{"t":{},"h":{},"c":{},"ts":{ts}}}"#,
                        r.temperature, r.humidity, r.co2
                    )
                    .into_bytes(),
                    readings: 3,
                }
            })
            .collect();
        messages.push(SensorMessage {
            topic: IQRF_TOPIC.to_string(),
            payload: self.iqrf_response(ts).to_string().into_bytes(),
            readings: 3,
        });
        messages
    }

    /// The IQRF Gateway Daemon's answer to `iqrfSensor_ReadSensorsWithTypes`
    /// for node [`IQRF_NODE`] (its JSON API, as in the daemon's examples),
    /// stamped in Central European Time as a daemon in Písek would.
    fn iqrf_response(&self, ts: i64) -> serde_json::Value {
        let r = self.iqrf(ts);
        let local = format!("{}.000+01:00", civil_time(ts + 3600));
        serde_json::json!({
            "mType": "iqrfSensor_ReadSensorsWithTypes",
            "data": {
                "msgId": format!("pisek-lab-{ts}"),
                "rsp": {
                    "nAdr": IQRF_NODE, "pNum": 94, "pCmd": 129, "hwpId": 5122,
                    "rCode": 0, "dpaVal": 81,
                    "result": {
                        "sensors": [
                            {"id": "TEMPERATURE", "type": 1, "name": "Temperature",
                             "shortName": "t", "value": r.temperature, "unit": "°C",
                             "decimalPlaces": 4},
                            {"id": "CO2", "type": 2, "name": "Carbon dioxide",
                             "shortName": "CO2", "value": r.co2 as i64, "unit": "ppm",
                             "decimalPlaces": 0},
                            {"id": "RELATIVE_HUMIDITY", "type": 128,
                             "name": "Relative humidity", "shortName": "RH",
                             "value": r.humidity, "unit": "%", "decimalPlaces": 1}
                        ],
                        "sensorIndexes": [0, 1, 2]
                    }
                },
                "raw": [{
                    "request": "01.00.5e.01.ff.ff.07.00.00.00",
                    "requestTs": local, "confirmation": "", "confirmationTs": "",
                    "response": "01.00.5e.81.02.14.00.51", "responseTs": local
                }],
                "insId": "iqrfgd2-default",
                "statusStr": "ok",
                "status": 0
            }
        })
    }

    /// The Graphite metrics of the round stamped `ts` with their values:
    /// what carbon must store for it, under the paths of
    /// [`SensorModel::collector_routes`].
    pub fn expected(&self, ts: i64) -> Vec<(String, f64)> {
        let gw = &self.gateway;
        let mut expected = Vec::new();
        for i in 0..self.rooms {
            let room = room_name(i);
            let r = self.room(i, ts);
            expected.push((format!("pisek.{gw}.{room}.temperature"), r.temperature));
            expected.push((format!("pisek.{gw}.{room}.humidity"), r.humidity));
            expected.push((format!("pisek.{gw}.{room}.co2"), r.co2));
        }
        let r = self.iqrf(ts);
        let node = format!("pisek.{gw}.iqrf.node{IQRF_NODE}");
        expected.push((format!("{node}.temperature"), r.temperature));
        expected.push((format!("{node}.co2"), r.co2));
        expected.push((format!("{node}.relative_humidity"), r.humidity));
        expected
    }

    /// The `[[route]]` sections of this gateway's collector config: every
    /// metric under `pisek.<gateway>.`.
    pub fn collector_routes(&self) -> String {
        let gw = &self.gateway;
        format!(
            r#"
[[route]]
filter = "rooms/+/env"
decoder = "json"
metric = "pisek.{gw}.{{topic.1}}.{{field}}"
fields = {{ t = "temperature", h = "humidity", c = "co2" }}
timestamp_field = "ts"

[[route]]
filter = "{IQRF_TOPIC}"
decoder = "iqrf"
metric = "pisek.{gw}.iqrf.node{{node}}.{{field}}"
"#
        )
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix time (Howard Hinnant's `civil_from_days`),
/// as the IQRF gateway daemon writes its timestamps.
pub fn civil_time(ts: i64) -> String {
    let (days, secs) = (ts.div_euclid(86_400), ts.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// What a publisher has done, readable while it runs.
#[derive(Debug, Default)]
pub struct PublisherCounters {
    /// Readings in messages the broker acknowledged (PUBACK).
    pub published: AtomicU64,
    /// Set when a plan with a number of rounds has had all of them
    /// acknowledged.
    pub finished: AtomicBool,
}

/// The simulated sensors of one gateway, publishing on their own thread
/// until dropped.
pub struct SensorPublisher {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl SensorPublisher {
    /// Starts publishing `model`'s readings by `plan` to the broker at
    /// `broker`, from inside `netns`.
    pub fn start(
        netns: &str,
        broker: SocketAddr,
        model: SensorModel,
        plan: SensorPlan,
        counters: Arc<PublisherCounters>,
    ) -> anyhow::Result<SensorPublisher> {
        let (stop, stopped) = oneshot::channel();
        let (ready, started) = std::sync::mpsc::channel();
        let netns = netns.to_string();
        let thread = std::thread::Builder::new()
            .name(format!("sensors-{}", model.gateway))
            .spawn(move || {
                let runtime = netns::enter(&netns).and_then(|()| {
                    Ok(tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?)
                });
                match runtime {
                    Ok(runtime) => {
                        let _ = ready.send(Ok(()));
                        runtime.block_on(publish(broker, model, plan, counters, stopped));
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                    }
                }
            })?;
        started
            .recv()
            .map_err(|_| anyhow::anyhow!("the sensor thread died"))??;
        Ok(SensorPublisher {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for SensorPublisher {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The publisher's loop: rounds on a timer, the MQTT event loop in between.
async fn publish(
    broker: SocketAddr,
    model: SensorModel,
    plan: SensorPlan,
    counters: Arc<PublisherCounters>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut options = MqttOptions::new(
        format!("sensors-{}", model.gateway),
        broker.ip().to_string(),
        broker.port(),
    );
    options.set_keep_alive(Duration::from_secs(10));
    let (client, mut events) = AsyncClient::new(options, 4096);
    let mut timer = tokio::time::interval(plan.interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut round = 0u64;
    let mut last_ts = None;
    // Readings per message, in the order the messages were queued, until
    // rumqttc gives each its packet id as it sends it.
    let mut queued: VecDeque<u64> = VecDeque::new();
    let mut in_flight: HashMap<u16, u64> = HashMap::new();
    loop {
        let more_rounds = plan.rounds.is_none_or(|n| round < n);
        if !more_rounds && queued.is_empty() && in_flight.is_empty() {
            counters.finished.store(true, Ordering::Relaxed);
        }
        tokio::select! {
            _ = &mut stop => break,
            _ = timer.tick(), if more_rounds => {
                let ts = plan.timestamp(round, last_ts);
                last_ts = Some(ts);
                round += 1;
                for message in model.messages(ts) {
                    // try_publish: waiting for room here would stop the
                    // event loop that makes the room.
                    if client
                        .try_publish(message.topic, QoS::AtLeastOnce, false, message.payload)
                        .is_ok()
                    {
                        queued.push_back(message.readings);
                    }
                }
            }
            event = events.poll() => match event {
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    // A resend after a reconnect reuses its packet id.
                    if !in_flight.contains_key(&pkid)
                        && let Some(readings) = queued.pop_front()
                    {
                        in_flight.insert(pkid, readings);
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    if let Some(readings) = in_flight.remove(&ack.pkid) {
                        counters.published.fetch_add(readings, Ordering::Relaxed);
                    }
                }
                Ok(_) => {}
                // The broker is down or restarting: rumqttc reconnects on
                // the next poll.
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reading_of_a_round_has_an_expected_metric() {
        let model = SensorModel::new("gw1", 1);
        let messages = model.messages(1_764_160_000);
        let readings: u64 = messages.iter().map(|m| m.readings).sum();
        assert_eq!(readings as usize, model.expected(1_764_160_000).len());
    }

    #[test]
    fn room_values_are_plausible_and_differ_between_gateways() {
        let (a, b) = (SensorModel::new("gw1", 1), SensorModel::new("gw2", 2));
        for ts in (1_764_160_000..1_764_163_600).step_by(37) {
            for (metric, value) in a.expected(ts) {
                let plausible = match metric.rsplit('.').next() {
                    Some("temperature") => (15.0..30.0).contains(&value),
                    Some("humidity" | "relative_humidity") => (20.0..70.0).contains(&value),
                    Some("co2") => (350.0..1500.0).contains(&value),
                    _ => false,
                };
                assert!(plausible, "{metric} = {value}");
                let decimals = format!("{value}").split('.').nth(1).map_or(0, str::len);
                assert!(decimals <= 4, "{metric} = {value}: as a sensor prints it");
            }
            assert_ne!(
                a.expected(ts).iter().map(|(_, v)| *v).collect::<Vec<_>>(),
                b.expected(ts).iter().map(|(_, v)| *v).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn the_iqrf_timestamp_is_central_european_time() {
        let payload = SensorModel::new("gw1", 1).iqrf_response(0);
        assert_eq!(
            payload["data"]["raw"][0]["responseTs"],
            "1970-01-01T01:00:00.000+01:00"
        );
    }

    #[test]
    fn a_series_counts_seconds_from_its_first_timestamp() {
        let plan = SensorPlan::series(1000, 5, Duration::from_millis(10));
        assert_eq!(plan.timestamp(0, None), 1000);
        assert_eq!(plan.timestamp(4, Some(1003)), 1004);
    }
}
