//! The vRouter forwarding pipeline: tenant TUN batches in, WireGuard
//! datagrams out, and back, as a state machine with no I/O.
//!
//! ```text
//! egress  (egress.rs):  tenant TUN batch → link-scoped dropped → anti-spoofing → VRF LPM →
//!                       Local: back to the tenant TUN
//!                       Tunnel: TTL − 1 (ICMP time exceeded back) → MTU check (ICMP too big back) →
//!                       MPLSoUDP / MPLSoGRE encap in place → WireGuard → underlay batch
//!         fabric TUN batch (pisek0) → WireGuard → underlay batch
//! ingress (ingress.rs): underlay batch → WireGuard decrypt (handshake answers out) →
//!                       for us + MPLS: decap → label → link-scoped dropped → VRF → tenant TUN
//!                       for us, other: fabric TUN (kernel)
//!                       for another node (hub role): outer TTL − 1 → WireGuard → underlay
//! timers  (timers.rs):  tick(now) → WireGuard timers, failover → underlay batch
//! ```
//!
//! The agent owns the TUNs and the UDP socket and calls, from its tasks:
//! [`Pipeline::egress_batch`] with what it read from a tenant TUN,
//! [`Pipeline::egress_fabric_batch`] with what it read from `pisek0`,
//! [`Pipeline::ingress_batch`] with what it read from the underlay socket,
//! and [`Pipeline::tick`] every 100-250 ms; each call fills a
//! [`ForwardOutput`]: datagrams for the socket, packets for the TUNs.
//! Every buffer is the caller's and allocated once ([`PacketBatch`]);
//! time is passed in. `docs/dataplane.md` describes the stages.

mod batch;
mod counters;
mod egress;
mod header;
mod icmp_error;
mod ingress;
mod mtu;
mod sink;
mod tenant;
mod timers;

pub use batch::{FILL_MAX, Interface, PacketBatch};
pub use counters::TrafficCounters;
pub use mtu::Mtu;

use crate::drop::{DropCounters, DropReason};
use crate::packet::Encapsulation;
use crate::vrf::{TenantId, Vrfs};
use crate::wg::{WgDropReason, WgInterface};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use tenant::TenantState;

/// The largest datagram WireGuard decrypts: a UDP payload.
const MAX_DATAGRAM: usize = u16::MAX as usize;

/// Whether this node forwards between other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A gateway: packets for another node's tunnel address are dropped
    /// (`NotForThisNode`); bouncing them back to the edge would loop.
    Gateway,
    /// The edge (hub): packets for another node's tunnel address are sent on
    /// to that node's peer without decapsulating MPLS (DESIGN.md "Hub and
    /// spoke").
    Edge,
}

/// The pipeline's fixed parameters.
#[derive(Debug, Clone, Copy)]
pub struct PipelineConfig {
    /// Gateway or edge.
    pub role: Role,
    /// This node's tunnel address (on `pisek0`): the outer source of every
    /// encapsulated packet, and the address tunnel packets arrive for.
    pub tunnel_address: IpAddr,
    /// The overlay's MTUs ([`Mtu::new`]).
    pub mtu: Mtu,
    /// The source of ICMP errors to IPv4 workloads: their link-local
    /// gateway (DESIGN.md: 169.254.1.1).
    pub gateway_v4: Ipv4Addr,
    /// The source of ICMPv6 errors to IPv6 workloads.
    pub gateway_v6: Ipv6Addr,
}

impl PipelineConfig {
    /// A configuration with the link-local gateways of DESIGN.md
    /// (169.254.1.1, fe80::1) and an IPv4 underlay of `underlay_mtu`.
    pub fn new(role: Role, tunnel_address: IpAddr, underlay_mtu: usize) -> PipelineConfig {
        PipelineConfig {
            role,
            tunnel_address,
            mtu: Mtu::new(underlay_mtu, false, tunnel_address.is_ipv6()),
            gateway_v4: Ipv4Addr::new(169, 254, 1, 1),
            gateway_v6: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
        }
    }
}

/// What one call of the pipeline produced, in the caller's batches.
#[derive(Debug, Clone)]
pub struct ForwardOutput {
    /// Datagrams for the underlay socket, each with its endpoint.
    pub underlay: PacketBatch,
    /// Packets for the node's TUNs, each tagged with its [`Interface`].
    pub local: PacketBatch,
}

impl ForwardOutput {
    /// Output batches of `slots` packets each, sized for `mtu`. Handshakes
    /// and ICMP errors take slots too: size `slots` a little above the
    /// input batch.
    pub fn new(slots: usize, mtu: &Mtu) -> ForwardOutput {
        let datagram = mtu.fabric + crate::wg::DATA_OVERHEAD;
        ForwardOutput {
            underlay: PacketBatch::new(slots, datagram.max(crate::wg::MIN_BUFFER_LEN), 0),
            local: PacketBatch::new(slots, mtu.fabric, 0),
        }
    }

    /// Empties both batches once the caller has sent them.
    pub fn clear(&mut self) {
        self.underlay.clear();
        self.local.clear();
    }
}

/// Errors in configuring the pipeline (packets are never errors: they are
/// dropped and counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PipelineError {
    /// The tenant has no VRF.
    #[error("tenant {0} has no VRF")]
    UnknownTenant(TenantId),
}

/// The forwarding pipeline of one node.
pub struct Pipeline {
    config: PipelineConfig,
    vrfs: Vrfs,
    wg: WgInterface,
    tenants: HashMap<TenantId, TenantState>,
    fabric: TrafficCounters,
    drops: DropCounters,
    /// WireGuard decrypts into this.
    scratch: Vec<u8>,
    /// Where a datagram goes when the underlay batch is full.
    overflow: Vec<u8>,
}

impl Pipeline {
    /// A pipeline over `vrfs` and the WireGuard interface `wg` (with its
    /// peers and crypto-key routes already in, or added later through
    /// [`Pipeline::wireguard_mut`]).
    pub fn new(config: PipelineConfig, vrfs: Vrfs, wg: WgInterface) -> Pipeline {
        let tenants = vrfs
            .iter()
            .map(|v| (v.tenant(), TenantState::default()))
            .collect();
        Pipeline {
            config,
            vrfs,
            wg,
            tenants,
            fabric: TrafficCounters::default(),
            drops: DropCounters::new(),
            scratch: vec![0; MAX_DATAGRAM],
            overflow: vec![0; MAX_DATAGRAM],
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// The VRFs.
    pub fn vrfs(&self) -> &Vrfs {
        &self.vrfs
    }

    /// The VRFs, to change routes (call `commit_changed` after a burst).
    /// A tenant whose VRF is added here is known to the pipeline from its
    /// first packet on.
    pub fn vrfs_mut(&mut self) -> &mut Vrfs {
        &mut self.vrfs
    }

    /// The WireGuard interface: peers, their counters and health.
    pub fn wireguard(&self) -> &WgInterface {
        &self.wg
    }

    /// The WireGuard interface, to add peers and crypto-key routes.
    pub fn wireguard_mut(&mut self) -> &mut WgInterface {
        &mut self.wg
    }

    /// Records a workload address of `tenant` on this node: packets from
    /// the tenant's TUN may carry it as their source.
    pub fn add_workload(&mut self, tenant: TenantId, address: IpAddr) -> Result<(), PipelineError> {
        if self.vrfs.get(tenant).is_none() {
            return Err(PipelineError::UnknownTenant(tenant));
        }
        self.tenants
            .entry(tenant)
            .or_default()
            .workloads
            .insert(address);
        Ok(())
    }

    /// Forgets a workload address (on detach). Returns whether it was known.
    pub fn remove_workload(&mut self, tenant: TenantId, address: IpAddr) -> bool {
        self.tenants
            .get_mut(&tenant)
            .is_some_and(|t| t.workloads.remove(&address))
    }

    /// The counters of `tenant`.
    pub fn tenant_counters(&self, tenant: TenantId) -> Option<TrafficCounters> {
        self.tenants.get(&tenant).map(|t| t.counters)
    }

    /// The counters of the fabric TUN (the kernel's own overlay traffic).
    pub fn fabric_counters(&self) -> TrafficCounters {
        self.fabric
    }

    /// Drops by reason, for the whole node (every tenant's included).
    /// WireGuard's finer reasons (replay, bad MAC, no session...) are in
    /// [`WgInterface::drops`] and each peer's metrics.
    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    /// The drops of `tenant`: those that happened once the packet's
    /// tenant was known (from its TUN on egress: spoofed source, no route,
    /// TTL, too big...; after its label on ingress: no route, discard
    /// route...). A bad label, a failed decryption or a relayed packet
    /// belongs to no tenant and is only in [`Pipeline::drops`].
    pub fn tenant_drops(&self, tenant: TenantId) -> Option<&DropCounters> {
        self.tenants.get(&tenant).map(|t| &t.drops)
    }

    /// The encapsulation-independent headroom an egress batch must keep in
    /// front of every packet: the largest outer header any next hop needs.
    pub const HEADROOM: usize = Encapsulation::MAX_HEADROOM;

    /// An input batch for [`Pipeline::egress_batch`]: `slots` packets of up
    /// to the fabric MTU with [`Pipeline::HEADROOM`] in front.
    pub fn egress_input(&self, slots: usize) -> PacketBatch {
        PacketBatch::new(slots, self.config.mtu.fabric, Self::HEADROOM)
    }

    /// An input batch for [`Pipeline::ingress_batch`]: `slots` datagrams
    /// of up to the underlay MTU.
    pub fn ingress_input(&self, slots: usize) -> PacketBatch {
        PacketBatch::new(
            slots,
            self.config.mtu.underlay.max(crate::wg::MIN_BUFFER_LEN),
            0,
        )
    }

    /// Looks up or creates the state of a tenant that has a VRF.
    fn tenant_state(&mut self, tenant: TenantId) -> Option<&mut TenantState> {
        self.vrfs.get(tenant)?;
        Some(self.tenants.entry(tenant).or_default())
    }
}

/// The pipeline's reason for a WireGuard send failure.
fn send_drop_reason(reason: WgDropReason) -> DropReason {
    match reason {
        WgDropReason::NoRoute | WgDropReason::NoEndpoint => DropReason::NoPeer,
        WgDropReason::BadTunnelPacket => DropReason::TooBig,
        _ => DropReason::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipeline_can_move_to_the_forwarder_thread() {
        fn send<T: Send>() {}
        send::<Pipeline>();
        send::<ForwardOutput>();
    }
}
