//! TUN devices through `tun-rs` (see docs/benchmarks.md for why not
//! `tun-tap`): layer 3, no packet-information header, non-blocking.

use std::io;

use ipnet::IpNet;
use tun_rs::{DeviceBuilder, SyncDevice};

/// Creates (or, when `persist` was set earlier, re-attaches to) the TUN
/// device `name` with `address`, `mtu`, up, non-blocking. With `offload`
/// the device exchanges TSO/GRO super-packets behind a virtio-net header
/// (IFF_VNET_HDR), so one read or write carries up to 64 KiB of a flow.
pub fn open_tun(name: &str, address: IpNet, mtu: u16, offload: bool) -> io::Result<SyncDevice> {
    let builder = DeviceBuilder::new().name(name).mtu(mtu).with(|b| {
        b.offload(offload);
    });
    let builder = match address {
        IpNet::V4(a) => builder.ipv4(a.addr(), a.prefix_len(), None),
        IpNet::V6(a) => builder.ipv6(a.addr(), a.prefix_len()),
    };
    let dev = builder.build_sync()?;
    dev.set_nonblocking(true)?;
    Ok(dev)
}
