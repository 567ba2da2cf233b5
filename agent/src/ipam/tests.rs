use super::*;

fn net(s: &str) -> IpNetwork {
    s.parse().expect("prefix")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

/// Allocates a lease for container `c`'s `ifname` that must succeed.
#[track_caller]
fn lease(
    leases: &mut Leases,
    c: &str,
    ifname: &str,
    tenant: &str,
    prefixes: &[IpNetwork],
) -> Lease {
    leases
        .allocate(&WorkloadKey::new(c, ifname), tenant, prefixes)
        .expect("lease")
}

#[test]
fn first_lease_skips_the_network_address() {
    let mut leases = Leases::default();
    let lease = lease(&mut leases, "c1", "eth0", "city", &[net("10.1.1.0/24")]);
    assert_eq!(lease.addresses, vec![ip("10.1.1.1")]);
}

#[test]
fn dual_stack_tenant_gets_one_address_per_prefix() {
    let mut leases = Leases::default();
    let prefixes = [net("10.1.1.0/24"), net("fd00:1:1::/64")];
    let a = lease(&mut leases, "c1", "eth0", "city", &prefixes);
    let b = lease(&mut leases, "c2", "eth0", "city", &prefixes);
    assert_eq!(a.addresses, vec![ip("10.1.1.1"), ip("fd00:1:1::1")]);
    assert_eq!(b.addresses, vec![ip("10.1.1.2"), ip("fd00:1:1::2")]);
}

#[test]
fn repeated_allocate_returns_the_same_lease() {
    let mut leases = Leases::default();
    let key = WorkloadKey::new("c1", "eth0");
    let first = leases
        .allocate(&key, "city", &[net("10.1.1.0/24")])
        .expect("lease");
    let again = leases
        .allocate(&key, "city", &[net("10.1.1.0/24")])
        .expect("lease");
    assert_eq!(first, again);
    assert_eq!(leases.len(), 1);
}

#[test]
fn same_container_with_another_ifname_is_another_lease() {
    let mut leases = Leases::default();
    let a = lease(&mut leases, "c1", "eth0", "city", &[net("10.1.1.0/24")]);
    let b = lease(&mut leases, "c1", "net1", "city", &[net("10.1.1.0/24")]);
    assert_ne!(a.addresses, b.addresses);
}

#[test]
fn tenants_may_use_the_same_addresses() {
    let mut leases = Leases::default();
    let a = lease(&mut leases, "c1", "eth0", "city", &[net("10.1.1.0/24")]);
    let b = lease(
        &mut leases,
        "c2",
        "eth0",
        "conference",
        &[net("10.1.1.0/24")],
    );
    assert_eq!(a.addresses, b.addresses);
}

#[test]
fn full_prefix_is_an_error_and_leases_nothing() {
    let mut leases = Leases::default();
    let prefixes = [net("10.1.1.0/30")];
    for c in ["c1", "c2"] {
        lease(&mut leases, c, "eth0", "city", &prefixes);
    }
    let before = leases.clone();
    let err = leases
        .allocate(&WorkloadKey::new("c3", "eth0"), "city", &prefixes)
        .expect_err("full");
    assert_eq!(
        err.to_string(),
        "tenant `city`: no free address left in 10.1.1.0/30 (2 leased)"
    );
    assert_eq!(leases, before);
}

#[test]
fn full_second_prefix_leases_nothing_from_the_first() {
    let mut leases = Leases::default();
    let prefixes = [net("10.1.1.0/24"), net("fd00::/127")];
    lease(&mut leases, "c1", "eth0", "city", &prefixes);
    let before = leases.clone();
    assert!(matches!(
        leases.allocate(&WorkloadKey::new("c2", "eth0"), "city", &prefixes),
        Err(IpamError::Exhausted { .. })
    ));
    assert_eq!(leases, before);
}

#[test]
fn released_address_is_reused() {
    let mut leases = Leases::default();
    let prefixes = [net("10.1.1.0/24")];
    let k1 = WorkloadKey::new("c1", "eth0");
    leases.allocate(&k1, "city", &prefixes).expect("lease");
    lease(&mut leases, "c2", "eth0", "city", &prefixes);
    assert!(leases.release(&k1).is_some());
    assert!(leases.release(&k1).is_none(), "second release is a no-op");
    let c3 = lease(&mut leases, "c3", "eth0", "city", &prefixes);
    assert_eq!(c3.addresses, vec![ip("10.1.1.1")]);
}

#[test]
fn lease_in_another_tenant_is_refused() {
    let mut leases = Leases::default();
    let key = WorkloadKey::new("c1", "eth0");
    leases
        .allocate(&key, "city", &[net("10.1.1.0/24")])
        .expect("lease");
    assert_eq!(
        leases.allocate(&key, "conference", &[net("10.2.0.0/24")]),
        Err(IpamError::OtherTenant {
            key: key.clone(),
            existing: "city".into()
        })
    );
}

#[test]
fn gc_releases_only_leases_of_gone_containers() {
    let mut leases = Leases::default();
    let prefixes = [net("10.1.1.0/24")];
    for c in ["alive", "gone1", "gone2"] {
        lease(&mut leases, c, "eth0", "city", &prefixes);
    }
    let released = leases.collect_garbage(|k| k.container_id == "alive");
    let mut gone: Vec<_> = released
        .iter()
        .map(|l| l.key.container_id.as_str())
        .collect();
    gone.sort();
    assert_eq!(gone, ["gone1", "gone2"]);
    assert_eq!(leases.len(), 1);
    assert!(leases.get(&WorkloadKey::new("alive", "eth0")).is_some());
}

#[test]
fn ipv4_slash_31_hands_out_its_upper_address() {
    let mut leases = Leases::default();
    let lease = lease(&mut leases, "c1", "eth0", "city", &[net("10.1.1.0/31")]);
    assert_eq!(lease.addresses, vec![ip("10.1.1.1")]);
}

#[test]
fn leases_round_trip_through_json() {
    let mut leases = Leases::default();
    lease(
        &mut leases,
        "c1",
        "eth0",
        "city",
        &[net("10.1.1.0/24"), net("fd00::/64")],
    );
    let json = serde_json::to_string(&leases).expect("serialize");
    let back: Leases = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, leases);
}

fn request(
    leases: &mut Leases,
    c: &str,
    prefixes: &[IpNetwork],
    requested: &[&str],
) -> Result<Lease, IpamError> {
    let requested: Vec<IpAddr> = requested.iter().map(|a| ip(a)).collect();
    leases.allocate_requested(&WorkloadKey::new(c, "eth0"), "city", prefixes, &requested)
}

#[test]
fn requested_address_inside_the_prefix_is_leased_exactly() {
    let mut leases = Leases::default();
    let prefixes = [net("10.1.1.0/24"), net("fd00:1:1::/64")];
    let lease = request(&mut leases, "c1", &prefixes, &["10.1.1.77"]).expect("lease");
    // The IPv6 address still comes from its prefix.
    assert_eq!(lease.addresses, vec![ip("10.1.1.77"), ip("fd00:1:1::1")]);
    // The next allocation does not hand it out again.
    let next = lease_default(&mut leases, "c2", &prefixes);
    assert_eq!(next.addresses, vec![ip("10.1.1.1"), ip("fd00:1:1::2")]);
}

fn lease_default(leases: &mut Leases, c: &str, prefixes: &[IpNetwork]) -> Lease {
    lease(leases, c, "eth0", "city", prefixes)
}

#[test]
fn requested_address_held_by_another_attachment_is_refused() {
    let mut leases = Leases::default();
    let prefixes = [net("10.1.1.0/24")];
    lease_default(&mut leases, "c1", &prefixes);
    let err = request(&mut leases, "c2", &prefixes, &["10.1.1.1"]).expect_err("taken");
    assert_eq!(
        err,
        IpamError::AddressInUse {
            tenant: "city".into(),
            address: ip("10.1.1.1"),
            holder: WorkloadKey::new("c1", "eth0"),
        }
    );
    assert_eq!(leases.len(), 1, "nothing leased on refusal");
    // Stray addresses are unique in the tenant too.
    request(&mut leases, "c3", &prefixes, &["10.1.9.5"]).expect("stray");
    let err = request(&mut leases, "c4", &prefixes, &["10.1.9.5"]).expect_err("taken");
    assert!(matches!(err, IpamError::AddressInUse { .. }), "{err}");
    // Another tenant has its own address space.
    leases
        .allocate_requested(
            &WorkloadKey::new("c5", "eth0"),
            "conference",
            &prefixes,
            &[ip("10.1.9.5")],
        )
        .expect("same address in another tenant");
}

#[test]
fn reserved_addresses_cannot_be_requested() {
    let mut leases = Leases::default();
    let prefixes = [net("10.1.1.0/24"), net("fd00:1:1::/64")];
    for (address, reason) in [
        ("10.1.1.0", "network address of 10.1.1.0/24"),
        ("10.1.1.255", "broadcast address of 10.1.1.0/24"),
        ("fd00:1:1::", "network address of fd00:1:1::/64"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("127.0.0.1", "loopback"),
        ("224.0.0.5", "multicast"),
        ("255.255.255.255", "broadcast"),
    ] {
        let err = request(&mut leases, "c1", &prefixes, &[address]).expect_err(address);
        assert!(
            matches!(&err, IpamError::AddressReserved { .. }) && err.to_string().contains(reason),
            "{address}: {err}"
        );
    }
    assert!(leases.is_empty());
    // A /31 has no broadcast address (RFC 3021): both ends are usable.
    request(&mut leases, "c1", &[net("10.1.1.0/31")], &["10.1.1.1"]).expect("/31");
}

#[test]
fn stray_address_replaces_the_allocation_of_its_family() {
    let mut leases = Leases::default();
    let prefixes = [net("10.1.1.0/24"), net("fd00:1:1::/64")];
    let lease = request(&mut leases, "c1", &prefixes, &["10.1.9.5"]).expect("stray");
    assert_eq!(lease.addresses, vec![ip("10.1.9.5"), ip("fd00:1:1::1")]);
    assert!(is_stray(ip("10.1.9.5"), &prefixes));
    assert!(!is_stray(ip("fd00:1:1::1"), &prefixes));
    // The prefix's first address is still free.
    assert_eq!(
        lease_default(&mut leases, "c2", &prefixes).addresses[0],
        ip("10.1.1.1")
    );
}

#[test]
fn requested_address_of_a_family_the_tenant_does_not_route_is_refused() {
    let mut leases = Leases::default();
    let err = request(&mut leases, "c1", &[net("10.1.1.0/24")], &["fd00:9::5"]).expect_err("v6");
    assert!(
        matches!(err, IpamError::FamilyNotRouted { family: "IPv6", .. }),
        "{err}"
    );
}

#[test]
fn repeated_request_is_idempotent_and_a_different_one_is_refused() {
    let mut leases = Leases::default();
    let prefixes = [net("10.1.1.0/24"), net("fd00:1:1::/64")];
    let first = request(&mut leases, "c1", &prefixes, &["10.1.9.5"]).expect("lease");
    assert_eq!(
        request(&mut leases, "c1", &prefixes, &["10.1.9.5"]),
        Ok(first.clone())
    );
    // Asking for nothing gets what is held.
    assert_eq!(request(&mut leases, "c1", &prefixes, &[]), Ok(first));
    let err = request(&mut leases, "c1", &prefixes, &["10.1.9.6"]).expect_err("other");
    assert!(matches!(err, IpamError::OtherAddresses { .. }), "{err}");
    assert_eq!(leases.len(), 1);
}

#[test]
fn allocation_skips_addresses_learned_from_other_nodes_but_not_requests() {
    let mut leases = Leases::default();
    let prefixes = [net("10.1.1.0/24")];
    let avoid: BTreeSet<IpAddr> = [ip("10.1.1.1"), ip("10.1.1.2")].into();
    let l = leases
        .allocate_avoiding(
            &WorkloadKey::new("a", "eth0"),
            "city",
            &prefixes,
            &[],
            &avoid,
        )
        .expect("lease");
    assert_eq!(l.addresses, [ip("10.1.1.3")]);
    // A workload that moved here asks for its address: it gets it.
    let moved = leases
        .allocate_avoiding(
            &WorkloadKey::new("b", "eth0"),
            "city",
            &prefixes,
            &[ip("10.1.1.1")],
            &avoid,
        )
        .expect("requested");
    assert_eq!(moved.addresses, [ip("10.1.1.1")]);
}
