//! MPLS-in-GRE decapsulation of arbitrary bytes: never panics, and what it
//! accepts re-encapsulates to a packet that decapsulates to the same inner
//! packet and label.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pisek_overlay::packet::{Encap, MplsOverGre, RxChecksum, TxChecksum};

fuzz_target!(|data: &[u8]| {
    for checksum in [RxChecksum::Verify, RxChecksum::Trust] {
        let Ok(d) = MplsOverGre::decapsulate(data, checksum) else {
            continue;
        };
        assert!(d.inner_range.end <= data.len());
        assert_eq!(&data[d.inner_range.clone()], d.inner);

        let mut encap = Encap::new(d.source, d.destination, d.entry.label);
        encap.checksum = TxChecksum::Full;
        let headroom = 52;
        let mut buf = vec![0u8; headroom + d.inner.len()];
        buf[headroom..].copy_from_slice(d.inner);
        let Ok(range) = MplsOverGre::encapsulate(&encap, &mut buf, headroom..headroom + d.inner.len()) else {
            continue;
        };
        let again = MplsOverGre::decapsulate(&buf[range], RxChecksum::Verify).expect("own packet parses");
        assert_eq!(again.inner, d.inner);
        assert_eq!(again.entry.label, d.entry.label);
    }
});
