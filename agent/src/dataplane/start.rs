//! Starting the data plane: the forwarding pipeline built from the config
//! (VRFs with their labels, the node prefixes, learned routes kept through
//! a restart, adopted workloads, WireGuard peers and crypto-key routes),
//! the devices, the underlay socket, and the forwarder thread.

use super::devices::open_devices;
use super::forwarder::Forwarder;
use super::peer_endpoints::{self, PeerEndpoints};
use super::underlay::UdpBatchSocket;
use crate::config::{Config, Role};
use crate::keyfile;
use crate::netlink::Netlink;
use anyhow::Context;
use ipnet::IpNet;
use pisek_overlay::forward::{Mtu, Pipeline, PipelineConfig};
use pisek_overlay::packet::Label;
use pisek_overlay::vrf::{InterfaceId, NextHop, TenantId, Vrfs};
use pisek_overlay::wg::{PeerConfig as WgPeerConfig, WgInterface, WgSettings};
use std::net::IpAddr;

/// The forwarding pipeline's parameters for this node's config.
pub fn pipeline_config(config: &Config) -> PipelineConfig {
    let role = match config.node.role {
        Role::Gateway => pisek_overlay::forward::Role::Gateway,
        Role::Edge => pisek_overlay::forward::Role::Edge,
    };
    let mut pipeline =
        PipelineConfig::new(role, config.tunnel.address, config.underlay.mtu as usize);
    pipeline.mtu = Mtu::new(
        config.underlay.mtu as usize,
        config.underlay.listen.is_ipv6(),
        config.tunnel.address.is_ipv6(),
    );
    pipeline
}

/// Builds the pipeline from the config (VRFs with their labels and the node
/// prefixes as local routes, WireGuard peers and crypto-key routes), opens
/// the devices and the underlay socket, and starts the forwarder thread.
/// `learned`: routes the VRFs hold from the first packet on (after a
/// restart, the previous run's learned routes, stale: RFC 4724 §4.1).
pub async fn start(
    config: &Config,
    labels: &[(u32, Label)],
    learned: &[(TenantId, IpNet, NextHop)],
    workloads: &[(u32, IpAddr)],
    host: &Netlink,
) -> anyhow::Result<Forwarder> {
    let pipeline_config = pipeline_config(config);
    let mut vrfs = Vrfs::new();
    for tenant in &config.tenants {
        let (_, label) = labels
            .iter()
            .find(|(t, _)| *t == tenant.id)
            .with_context(|| format!("tenant {} has no label", tenant.name))?;
        let vrf = vrfs.create(TenantId(tenant.id), *label)?;
        // Decapsulated packets for the node's prefix go to the tenant's TUN;
        // the kernel's tenant table delivers them to the workload's veth.
        for prefix in &tenant.prefixes {
            let prefix = IpNet::new(prefix.ip(), prefix.prefix())?.trunc();
            vrf.insert(prefix, NextHop::Local(InterfaceId(tenant.id)));
        }
    }
    for (tenant, prefix, next_hop) in learned {
        match vrfs.get_mut(*tenant) {
            Some(vrf) => {
                vrf.insert(*prefix, *next_hop);
            }
            None => {
                tracing::warn!(tenant = tenant.0, %prefix, "kept route for a tenant no longer configured")
            }
        }
    }
    vrfs.commit_changed();
    let wg = wireguard(config, &peer_endpoints::load(&config.state.dir))?;
    let mut pipeline = Pipeline::new(pipeline_config, vrfs, wg);
    // Workloads that kept running through a restart send from their first
    // packet on: they must not count as spoofed until attach re-publishes.
    for (tenant, address) in workloads {
        if let Err(e) = pipeline.add_workload(TenantId(*tenant), *address) {
            tracing::warn!(tenant, %address, error = %e, "adopted workload not in the data plane");
        }
    }
    let workers = config.dataplane.worker_count();
    tracing::info!(workers, "forwarding workers");
    let devices = open_devices(config, &pipeline_config.mtu, host, workers).await?;
    let udp = UdpBatchSocket::bind(config.underlay.listen)
        .with_context(|| format!("binding the underlay socket {}", config.underlay.listen))?;
    Ok(Forwarder::spawn(pipeline, devices, udp)?)
}

/// The WireGuard interface: this node's key, the configured peers, and
/// crypto-key routes. Each peer owns its tunnel address; on a gateway the
/// whole tunnel network goes to the first edge, failing over to the second
/// (hub and spoke: other gateways are reached through the edge). A peer
/// without a configured endpoint starts at its last known one (`known`).
fn wireguard(config: &Config, known: &PeerEndpoints) -> anyhow::Result<WgInterface> {
    let secret = keyfile::load(&config.wireguard.private_key_file)?;
    let mut wg = WgInterface::new(secret, WgSettings::default());
    let mut ids = Vec::new();
    for peer in &config.wireguard.peers {
        let public_key = keyfile::parse_public_key(&peer.public_key)
            .with_context(|| format!("wireguard peer {}", peer.name))?;
        let id = wg
            .add_peer(WgPeerConfig {
                public_key,
                preshared_key: None,
                endpoint: peer.endpoint.or_else(|| {
                    known
                        .get(&keyfile::encode_key(public_key.as_bytes()))
                        .copied()
                }),
                persistent_keepalive: (peer.keepalive_secs > 0).then_some(peer.keepalive_secs),
            })
            .with_context(|| format!("wireguard peer {}", peer.name))?;
        wg.add_route(IpNet::from(peer.tunnel_address), id, None)?;
        ids.push(id);
    }
    if config.node.role == Role::Gateway
        && let Some(&preferred) = ids.first()
    {
        let network =
            IpNet::new(config.tunnel.network.ip(), config.tunnel.network.prefix())?.trunc();
        wg.add_route(network, preferred, ids.get(1).copied())?;
    }
    Ok(wg)
}
