//! One read from an offload TUN: any header and packet bytes give one
//! packet inside the read, segments that fit their buffers, or an error,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pisek_agent::dataplane::tun_read::{TunRead, split_read};

fuzz_target!(|data: &[u8]| {
    let mut read = data.to_vec();
    let mut segments = vec![vec![0u8; 1500]; 64];
    let mut sizes = vec![0; 64];
    match split_read(&mut read, &mut segments, &mut sizes) {
        Ok(TunRead::Packet(range)) => assert!(range.end == data.len() && range.start < range.end),
        Ok(TunRead::Segments(n)) => {
            assert!(n <= segments.len());
            assert!(sizes[..n].iter().all(|&len| len <= 1500));
        }
        Err(_) => {}
    }
});
