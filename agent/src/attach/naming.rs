//! Names of an attachment's interfaces, derived from its key so that an
//! agent that lost its state still finds them, and MAC addresses as text.

use crate::ipam::WorkloadKey;

/// The host-side interface name of an attachment: `pk` and 11 hex digits of a
/// hash of container id and interface name (13 bytes, within IFNAMSIZ). Same
/// inputs, same name, so an agent that lost its state still finds it.
pub fn host_ifname(key: &WorkloadKey) -> String {
    format!("pk{:011x}", fnv1a(&key.as_string()) & 0xfff_ffff_ffff)
}

/// The temporary name of the workload end while it is still in the host
/// namespace (renamed to the requested name inside the workload's).
pub(super) fn peer_temp_ifname(key: &WorkloadKey) -> String {
    format!("pkp{:011x}", fnv1a(&key.as_string()) & 0xfff_ffff_ffff)
}

/// Whether `name` has the shape of [`host_ifname`] or [`peer_temp_ifname`]:
/// the interfaces an attach creates in the host namespace, found by name
/// when no record names them (a crash before the record was written).
pub(super) fn is_attachment_ifname(name: &str) -> bool {
    let hash = name.strip_prefix("pkp").or_else(|| name.strip_prefix("pk"));
    hash.is_some_and(|h| {
        h.len() == 11
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// FNV-1a, 64 bit: stable across Rust versions, unlike `DefaultHasher`.
pub(super) fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

pub(super) fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub(super) fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let bytes: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    <[u8; 6]>::try_from(bytes.as_slice()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ifname_is_stable_and_fits_ifnamsiz() {
        let key = WorkloadKey::new("abc123", "eth0");
        let name = host_ifname(&key);
        assert_eq!(name, host_ifname(&key.clone()));
        assert_eq!(name.len(), 13);
        assert!(name.starts_with("pk"));
        assert_ne!(name, host_ifname(&WorkloadKey::new("abc123", "net1")));
        assert!(peer_temp_ifname(&key).len() <= 15);
    }

    #[test]
    fn attachment_names_are_recognised_and_nothing_else() {
        let key = WorkloadKey::new("abc123", "eth0");
        assert!(is_attachment_ifname(&host_ifname(&key)));
        assert!(is_attachment_ifname(&peer_temp_ifname(&key)));
        for other in [
            "pk",
            "pk0123",
            "pisek-t1",
            "pk0123456789A",
            "pk0123456789ab",
            "eth0",
            "pkq0123456789a",
        ] {
            assert!(!is_attachment_ifname(other), "{other}");
        }
    }

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        // From the FNV reference test suite.
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn mac_round_trips_through_text() {
        let mac = [0x02, 0xab, 0, 1, 0xfe, 0xff];
        assert_eq!(format_mac(mac), "02:ab:00:01:fe:ff");
        assert_eq!(parse_mac("02:ab:00:01:fe:ff"), Some(mac));
        assert_eq!(parse_mac("02:ab"), None);
    }
}
