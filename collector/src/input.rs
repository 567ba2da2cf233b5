//! The MQTT input: rumqttc with a persistent session, QoS 1 and manual acks.
//!
//! ```text
//! [mqtt task]   EventLoop::poll -> Publish -> channel (bounded)
//!               ConnAck -> (re)subscribe every route's filter at QoS 1
//! [input task]  take a burst from the channel -> route, decode, name
//!               -> queue.append per message -> queue.commit (one fsync)
//!               -> PUBACK each message of the burst
//! ```
//! A message is acknowledged only after the commit that holds it, so a
//! crash before the commit makes the broker deliver it again (persistent
//! session, fixed client id). Bad messages are acknowledged too (they would
//! fail again on every redelivery), after being counted and logged.
//! When the queue is full the input stops acknowledging and waits for the
//! writer to free space; the broker's in-flight window then stops delivery.

use super::metrics::Metrics;
use super::queue::QueueError;
use super::queue::shared::SharedQueue;
use super::ratelimit::LogLimiter;
use super::routes::RouteTable;
use rumqttc::{AsyncClient, ClientError, Event, EventLoop, Packet, Publish, QoS};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// Messages taken from the channel per group commit, at most.
const MAX_BURST: usize = 4096;

/// The input could not go on (the queue's disk failed).
#[derive(Debug, thiserror::Error)]
#[error("cannot queue readings: {0}")]
pub struct InputError(#[from] QueueError);

/// Polls the MQTT event loop for ever, forwarding publishes to `tx` and
/// subscribing after every (re)connect.
pub async fn run_event_loop(
    mut event_loop: EventLoop,
    client: AsyncClient,
    filters: Vec<String>,
    tx: mpsc::Sender<Publish>,
    metrics: Arc<Metrics>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut last_log: Option<Instant> = None;
    loop {
        match event_loop.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if tx.send(p).await.is_err() {
                    return;
                }
            }
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                tracing::info!(
                    session_present = ack.session_present,
                    "connected to the MQTT broker"
                );
                metrics.mqtt_connected.store(true, Ordering::Relaxed);
                backoff = Duration::from_millis(100);
                metrics.mqtt_subscribed.store(false, Ordering::Relaxed);
                // One SUBSCRIBE for all filters: its SUBACK means every route
                // receives (with a persistent session, they usually still do).
                let subs = filters
                    .iter()
                    .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
                if let Err(e) = client.try_subscribe_many(subs) {
                    tracing::error!(error = %e, "cannot subscribe");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused = ack
                    .return_codes
                    .iter()
                    .filter(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                    .count();
                if refused > 0 {
                    tracing::error!(refused, "the broker refused some subscriptions");
                }
                metrics.mqtt_subscribed.store(true, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) => {
                metrics.mqtt_connected.store(false, Ordering::Relaxed);
                metrics.mqtt_subscribed.store(false, Ordering::Relaxed);
                if last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    tracing::warn!(error = %e, "MQTT connection failed; retrying");
                    last_log = Some(Instant::now());
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Takes publishes from `rx`, queues them durably, then acknowledges them.
/// Returns when `rx` closes, or on a queue I/O error.
///
/// Acks go through the client's request channel, which only the event loop
/// task drains, and that task may itself be waiting for room in `rx`. So the
/// input never waits for room in the request channel: acks that do not fit
/// stay in `unacked`, in order, and are retried while `rx` keeps being
/// drained.
pub async fn run_input(
    mut rx: mpsc::Receiver<Publish>,
    client: AsyncClient,
    routes: RouteTable,
    shared: Arc<SharedQueue>,
    metrics: Arc<Metrics>,
) -> Result<(), InputError> {
    let mut burst: Vec<Publish> = Vec::with_capacity(MAX_BURST);
    let mut unacked: VecDeque<Publish> = VecDeque::new();
    let mut lines: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut limiter = LogLimiter::new(Duration::from_secs(60));
    loop {
        send_acks(&client, &mut unacked);
        let first = if unacked.is_empty() {
            rx.recv().await
        } else {
            tokio::select! {
                p = rx.recv() => p,
                () = tokio::time::sleep(Duration::from_millis(1)) => continue,
            }
        };
        let Some(first) = first else {
            return Ok(());
        };
        burst.push(first);
        while burst.len() < MAX_BURST {
            match rx.try_recv() {
                Ok(p) => burst.push(p),
                Err(_) => break,
            }
        }
        let now = unix_now();
        let mut done = 0;
        for i in 0..burst.len() {
            let p = &burst[i];
            Metrics::add(&metrics.messages_received, 1);
            lines.clear();
            let n = match routes.message_to_lines(&p.topic, &p.payload, now, &mut lines) {
                Ok(n) => n,
                Err(e) => {
                    Metrics::add(&metrics.decode_errors, 1);
                    if let Some(suppressed) = limiter.allow(&p.topic, Instant::now()) {
                        tracing::warn!(topic = %p.topic, error = %e, suppressed, "message refused");
                    }
                    continue;
                }
            };
            if n == 0 {
                Metrics::add(&metrics.messages_without_readings, 1);
                continue;
            }
            loop {
                let result = tokio::task::block_in_place(|| shared.lock().append(&lines));
                match result {
                    Ok(()) => break,
                    Err(QueueError::Full) => {
                        // Back-pressure: make durable and acknowledge what is
                        // in, then wait for the writer to free space.
                        Metrics::add(&metrics.queue_full_waits, 1);
                        commit(&shared, &metrics)?;
                        unacked.extend(burst[done..i].iter().cloned());
                        done = i;
                        send_acks(&client, &mut unacked);
                        let _ = tokio::time::timeout(
                            Duration::from_millis(100),
                            shared.space_freed.notified(),
                        )
                        .await;
                        send_acks(&client, &mut unacked);
                    }
                    Err(QueueError::TooLarge(size)) => {
                        Metrics::add(&metrics.decode_errors, 1);
                        tracing::warn!(topic = %p.topic, size, "message decodes to more than one queue record holds");
                        break;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Metrics::add(&metrics.readings_queued, n as u64);
        }
        commit(&shared, &metrics)?;
        unacked.extend(burst.drain(..).skip(done));
        burst.clear();
    }
}

/// Makes the appended messages durable and publishes the queue's depth:
/// the writer publishes it only while it reads the queue, which it does
/// not while carbon is unreachable, the time the depth matters most.
fn commit(shared: &SharedQueue, metrics: &Metrics) -> Result<(), QueueError> {
    tokio::task::block_in_place(|| {
        let mut queue = shared.lock();
        queue.commit()?;
        SharedQueue::update_gauges(&queue, metrics);
        Ok::<(), QueueError>(())
    })?;
    shared.notify_data();
    Ok(())
}

/// Sends PUBACKs, oldest first, as long as the request channel has room.
fn send_acks(client: &AsyncClient, unacked: &mut VecDeque<Publish>) {
    while let Some(p) = unacked.front() {
        // QoS 0 needs no ack.
        if p.qos != QoS::AtMostOnce {
            match client.try_ack(p) {
                Ok(()) => {}
                Err(ClientError::TryRequest(_)) => return, // full: retry later
                // The event loop is gone: the broker redelivers on the next session.
                Err(_) => {
                    unacked.clear();
                    return;
                }
            }
        }
        unacked.pop_front();
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
