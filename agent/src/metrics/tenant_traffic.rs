//! Per-tenant traffic for `pisek_tenant_{packets,bytes}_total`. The API's
//! `DataplaneView` does not carry it, so a scrape reads it from a separate
//! [`TenantTrafficSource`]; [`ForwarderCounters`] is the one over the
//! forwarder's snapshot.

use super::TenantTraffic;
use crate::config::Config;
use crate::dataplane::Snapshot;
use std::sync::{Arc, Mutex};

/// Where a scrape reads per-tenant traffic.
pub trait TenantTrafficSource: Send + Sync {
    /// Counters of every tenant known, sorted by tenant name.
    fn tenant_traffic(&self) -> Vec<TenantTraffic>;
}

/// The forwarder's per-tenant counters, named by the configured tenants.
pub struct ForwarderCounters {
    config: Arc<Config>,
    snapshot: Arc<Mutex<Snapshot>>,
}

impl ForwarderCounters {
    /// Counters read from `snapshot` (`Forwarder::snapshot()`).
    pub fn new(config: Arc<Config>, snapshot: Arc<Mutex<Snapshot>>) -> ForwarderCounters {
        ForwarderCounters { config, snapshot }
    }
}

impl TenantTrafficSource for ForwarderCounters {
    fn tenant_traffic(&self) -> Vec<TenantTraffic> {
        let Ok(snapshot) = self.snapshot.lock() else {
            return Vec::new();
        };
        let mut traffic: Vec<TenantTraffic> = snapshot
            .tenants
            .iter()
            .filter_map(|(id, c)| {
                // A tenant gone from the config has no name to show.
                let tenant = self.config.tenants.iter().find(|t| t.id == id.0)?;
                Some(TenantTraffic {
                    tenant: tenant.name.clone(),
                    // The forwarder counts from the overlay's side: it
                    // transmits what the workloads send out, and receives
                    // what it delivers to them.
                    in_packets: c.rx_packets,
                    in_bytes: c.rx_bytes,
                    out_packets: c.tx_packets,
                    out_bytes: c.tx_bytes,
                })
            })
            .collect();
        traffic.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        traffic
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Role;
    use crate::config::fixture::{AgentToml, TenantToml};
    use pisek_overlay::forward::TrafficCounters;
    use pisek_overlay::vrf::TenantId;

    fn config() -> Config {
        AgentToml::new("gw-test", Role::Edge, "10.255.0.1", "/nonexistent")
            .tenant(TenantToml::new("conference", 2).prefixes(["10.2.1.0/24"]))
            .tenant(TenantToml::new("city", 1).prefixes(["10.1.1.0/24"]))
            .config()
    }

    #[test]
    fn forwarder_tx_is_tenant_out_and_rx_is_tenant_in() {
        let config = Arc::new(config());
        let mut snapshot = Snapshot::default();
        snapshot.tenants.insert(
            TenantId(2),
            TrafficCounters {
                tx_packets: 1,
                tx_bytes: 84,
                rx_packets: 2,
                rx_bytes: 168,
            },
        );
        snapshot
            .tenants
            .insert(TenantId(1), TrafficCounters::default());
        snapshot
            .tenants
            .insert(TenantId(9), TrafficCounters::default());
        let source = ForwarderCounters::new(config, Arc::new(Mutex::new(snapshot)));
        assert_eq!(
            source.tenant_traffic(),
            vec![
                TenantTraffic {
                    tenant: "city".into(),
                    ..TenantTraffic::default()
                },
                TenantTraffic {
                    tenant: "conference".into(),
                    in_packets: 2,
                    in_bytes: 168,
                    out_packets: 1,
                    out_bytes: 84,
                },
            ]
        );
    }
}
