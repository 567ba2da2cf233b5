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

fn write(path: &str, value: &str) -> std::io::Result<()> {
    std::fs::write(Path::new(path), value)
        .map_err(|e| std::io::Error::new(e.kind(), format!("writing {value} to {path}: {e}")))
}
