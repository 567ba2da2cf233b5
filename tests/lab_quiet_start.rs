//! A node start and the lab's attaches count no `spoofed-source` drop.
//!
//! The kernel speaks on its own on every new interface: IPv6 duplicate
//! address detection, MLD reports, router solicitations, from `::` or a
//! `fe80::` source to `ff02::` groups. On the agent's TUNs those packets
//! reach the pipeline as if a workload had sent them. Operators alert on
//! `spoofed-source` (a workload lying about its address), so a node start
//! must leave it at zero: the agent keeps the kernel quiet on its TUNs, and
//! whatever link-scoped packet still comes is counted as `link-local`.
//!
//! Proves, in the two-gateway lab (`pisek_lab::lab`, three real agents with
//! dual-stack tenants and their workloads attached): once the overlay
//! carries a ping from gw1 to gw2 over IPv4 and IPv6 in `city`,
//! `pisekctl drops --json` on every node shows zero `spoofed-source` and
//! zero `link-scoped`, node-wide and for every tenant, and no TUN has an
//! IPv6 link-local address (the kernel's source of the chatter). Then gw1's
//! agent restarts and adopts a tenant TUN left noisy (link-local address,
//! multicast on, all-routers group joined): the same holds after the
//! restart, and the TUN is point-to-point without multicast or group.

use pisek_lab::{Lab, TENANTS};
use std::net::IpAddr;
use std::time::Duration;

#[test]
fn a_node_start_and_a_restart_count_no_spoofed_source() {
    if !pisek_lab::require(
        "a_node_start_and_a_restart_count_no_spoofed_source",
        &["ip", "ping"],
    ) {
        return;
    }
    let tag = pisek_lab::unique_tag("qs");
    let lab = Lab::start(&tag, pisek_lab::lab_binaries()).expect("the lab starts");
    lab.wait_until_ready(Duration::from_secs(20))
        .expect("peers, sessions and routes come up");

    // Routes in the VRFs are not yet a working path: wait until a ping
    // crosses the overlay both ways, in both families.
    let src = lab.workload("gw1", "city", 1).clone();
    let dst = lab.workload("gw2", "city", 1).clone();
    for to in [IpAddr::V4(dst.address), IpAddr::V6(dst.address_v6)] {
        pisek_lab::poll_until(
            &format!("a ping from gw1 to gw2 ({to}) in city"),
            Duration::from_secs(10),
            || lab.ping(&src, to, 1).ok().filter(|(ok, _)| *ok).map(|_| ()),
        );
    }

    for i in 0..lab.nodes.len() {
        assert_quiet(&lab, i, "after start and attach");
    }

    // Addresses of gw2's prefix that no workload holds (an unused one, the
    // directed broadcast, an unused IPv6 one) end in gw2's tenant table
    // (blackhole for the node prefix), not back in its data plane as a
    // packet from no local workload. gw2's tenant counters show the probes
    // arrived; a real ping after them proves a later snapshot was published.
    let gw2 = 2;
    let city_in = "pisek_tenant_packets_total{tenant=\"city\",direction=\"in\"}";
    let arrived = |lab: &Lab| lab.metric(gw2, city_in).expect("metrics").unwrap_or(0);
    let before = arrived(&lab);
    for probe in ["10.1.2.77", "10.1.2.255", "fd00:10:1:2::77"] {
        let probe: IpAddr = probe.parse().expect("address");
        let (ok, line) = lab.ping(&src, probe, 2).expect("ping");
        assert!(!ok, "{probe} answered: {line}");
    }
    pisek_lab::poll_until("gw2 counted the probes", Duration::from_secs(5), || {
        (arrived(&lab) >= before + 6).then_some(())
    });
    let probed = arrived(&lab);
    let (ok, line) = lab.ping(&src, IpAddr::V4(dst.address), 1).expect("ping");
    assert!(ok, "{line}");
    pisek_lab::poll_until(
        "gw2 published a later snapshot",
        Duration::from_secs(5),
        || (arrived(&lab) > probed).then_some(()),
    );
    assert_quiet(&lab, gw2, "after probes of unused addresses");

    // Adoption: gw1's agent stops (its TUNs stay) and finds pisek-t1 as an
    // older agent left it: a link-local address, multicast on, the
    // all-routers group joined, MLDv2. Restarted, it must quiet the TUN
    // before the carrier comes up: its counters (new since the restart)
    // show nothing either.
    let gw1 = 1;
    lab.stop_agent(gw1).expect("gw1's agent stops");
    let conf = "/proc/sys/net/ipv6/conf/pisek-t1";
    let noisy = format!(
        "ip link set pisek-t1 multicast on && ip addr add fe80::1234/64 dev pisek-t1 && \
         echo 0 > {conf}/addr_gen_mode && echo 0 > {conf}/force_mld_version && \
         echo 0 > {conf}/forwarding && echo 1 > {conf}/forwarding"
    );
    let out = lab
        .exec(&lab.nodes[gw1].netns, "sh", &["-c", &noisy])
        .expect("sh");
    assert!(
        out.status.success(),
        "making pisek-t1 noisy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let groups = lab
        .exec(
            &lab.nodes[gw1].netns,
            "ip",
            &["-6", "maddr", "show", "dev", "pisek-t1"],
        )
        .expect("ip maddr");
    assert!(
        String::from_utf8_lossy(&groups.stdout).contains("ff02::2"),
        "the all-routers group is joined before the restart"
    );
    lab.start_agent(gw1).expect("gw1's agent restarts");
    lab.wait_until_ready(Duration::from_secs(30))
        .expect("peers, sessions and routes come back");
    for to in [IpAddr::V4(dst.address), IpAddr::V6(dst.address_v6)] {
        pisek_lab::poll_until(
            &format!("a ping from gw1 to gw2 ({to}) in city after the restart"),
            Duration::from_secs(10),
            || lab.ping(&src, to, 1).ok().filter(|(ok, _)| *ok).map(|_| ()),
        );
    }
    assert_quiet(&lab, gw1, "after a restart that adopted a noisy TUN");
    let link = lab
        .exec(
            &lab.nodes[gw1].netns,
            "ip",
            &["-o", "link", "show", "dev", "pisek-t1"],
        )
        .expect("ip link");
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(
        link.contains("POINTOPOINT") && !link.contains("MULTICAST"),
        "pisek-t1 is point-to-point without multicast: {link}"
    );
    let groups = lab
        .exec(
            &lab.nodes[gw1].netns,
            "ip",
            &["-6", "maddr", "show", "dev", "pisek-t1"],
        )
        .expect("ip maddr");
    let groups = String::from_utf8_lossy(&groups.stdout);
    assert!(
        !groups.contains("ff02::2"),
        "pisek-t1 left the all-routers group: {groups}"
    );
}

/// Node `i` counts no `spoofed-source` and no `link-scoped` drop, node-wide
/// and in every tenant, and none of its TUNs has an IPv6 link-local address.
fn assert_quiet(lab: &Lab, i: usize, when: &str) {
    let node = &lab.nodes[i];
    let rows = std::iter::once(None).chain(TENANTS.iter().map(|(t, _)| Some(*t)));
    for tenant in rows {
        for reason in ["spoofed-source", "link-scoped"] {
            assert_eq!(
                lab.drops(i, tenant, reason).expect("drops"),
                0,
                "{}: {reason} for {} {when}\nlogs:\n{}",
                node.name,
                tenant.unwrap_or("the node"),
                lab.logs()
            );
        }
    }

    // The cause, not only the symptom: no TUN has a link-local address to
    // send DAD, MLD or router solicitations from.
    for tun in ["pisek0", "pisek-t1", "pisek-t2"] {
        let out = lab
            .exec(&node.netns, "ip", &["-6", "-o", "addr", "show", "dev", tun])
            .expect("ip addr");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}: {tun} exists", node.name);
        assert!(
            !text.contains("fe80:"),
            "{}: {tun} has a link-local address {when}: {text}",
            node.name
        );
    }
}
