//! The few sysctls the agent needs in its own network namespace. They are
//! per namespace (`/proc/sys/net` shows the writer's namespace), so they are
//! written here and not left to the distribution.

use std::path::Path;

/// Turns on IPv4 and IPv6 forwarding: the host end of every workload veth
/// routes between workloads and towards the tenant TUNs.
pub fn enable_forwarding() -> std::io::Result<()> {
    write("/proc/sys/net/ipv4/ip_forward", "1")?;
    write("/proc/sys/net/ipv6/conf/all/forwarding", "1")
}

/// Turns on strict reverse-path filtering (RFC 3704 §2.2) on a workload's
/// host interface: the kernel's own anti-spoofing for traffic that stays on
/// the node. The reverse lookup runs with the interface as input, so it sees
/// the `iif` rule and the tenant table: a packet whose source is not the
/// workload's own address (another workload's, or one the tenant table does
/// not route back through this interface) is dropped and counted in
/// `TcpExtIPReversePathFilter` (`nstat`). The kernel applies the larger of
/// `all` and the interface's value, so `all = 2` (loose) weakens it.
pub fn enable_strict_rp_filter(ifname: &str) -> std::io::Result<()> {
    write(&format!("/proc/sys/net/ipv4/conf/{ifname}/rp_filter"), "1")
}

/// Keeps the kernel from speaking IPv6 on its own on a point-to-point L3
/// device (the agent's TUNs), as WireGuard's and Calico's devices do:
/// - `addr_gen_mode = 1` (none): no link-local address, so nothing to
///   send DAD, MLD reports or router solicitations from. Routes through
///   the device need none: a TUN has no neighbours to resolve;
/// - `accept_ra = 0`, `router_solicitations = 0`: no router discovery, even
///   if forwarding is turned off later (RFC 4861 §6.3.7 solicitations are
///   for hosts);
/// - `accept_dad = 0`: the addresses the agent puts on a TUN are its own
///   (RFC 4862 §5.4 DAD is for shared links);
/// - `force_mld_version = 1`: MLDv1 sends a Done for a group it left only
///   if it had reported it (RFC 2710 §4), where MLDv2 queues a
///   state-change report (RFC 3810 §6.1) that goes out once the TUN is up:
///   so leaving the all-routers group on a new TUN stays silent.
///
/// IPv6 itself stays on: IPv6 routes through the TUN need it. Without IPv6
/// in this kernel or namespace there is nothing to quiet: success.
pub fn quiet_ipv6_on_point_to_point(ifname: &str) -> std::io::Result<()> {
    let conf = format!("/proc/sys/net/ipv6/conf/{ifname}");
    if !Path::new(&conf).exists() {
        return Ok(());
    }
    for (key, value) in [
        ("addr_gen_mode", "1"),
        ("accept_ra", "0"),
        ("router_solicitations", "0"),
        ("accept_dad", "0"),
        ("force_mld_version", "1"),
    ] {
        write(&format!("{conf}/{key}"), value)?;
    }
    Ok(())
}

/// Whether IPv6 forwarding is on for `ifname` (`None` without IPv6 there).
pub fn ipv6_forwarding(ifname: &str) -> std::io::Result<Option<bool>> {
    let path = format!("/proc/sys/net/ipv6/conf/{ifname}/forwarding");
    match std::fs::read_to_string(&path) {
        Ok(v) => Ok(Some(v.trim() != "0")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(std::io::Error::new(
            e.kind(),
            format!("reading {path}: {e}"),
        )),
    }
}

/// Sets IPv6 forwarding on `ifname` alone. On a multicast-capable device
/// the kernel joins the all-routers groups (ff02::2, ff05::2) when it goes
/// on and leaves them when it goes off; that is its only effect here:
/// whether a packet is forwarded is decided by `all/forwarding`.
pub fn set_ipv6_forwarding(ifname: &str, on: bool) -> std::io::Result<()> {
    write(
        &format!("/proc/sys/net/ipv6/conf/{ifname}/forwarding"),
        if on { "1" } else { "0" },
    )
}

fn write(path: &str, value: &str) -> std::io::Result<()> {
    std::fs::write(Path::new(path), value)
        .map_err(|e| std::io::Error::new(e.kind(), format!("writing {value} to {path}: {e}")))
}
