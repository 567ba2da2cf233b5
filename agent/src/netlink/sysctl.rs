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

/// Turns off reverse-path filtering on a workload's host interface. The
/// reverse-path lookup does not see the `iif` rule, so it would look the
/// workload's address up in the main table and drop its packets.
/// (The kernel uses the larger of `all` and the interface's value, so `all`
/// must not be 1 either.)
pub fn disable_rp_filter(ifname: &str) -> std::io::Result<()> {
    write(&format!("/proc/sys/net/ipv4/conf/{ifname}/rp_filter"), "0")
}

fn write(path: &str, value: &str) -> std::io::Result<()> {
    std::fs::write(Path::new(path), value)
        .map_err(|e| std::io::Error::new(e.kind(), format!("writing {value} to {path}: {e}")))
}
