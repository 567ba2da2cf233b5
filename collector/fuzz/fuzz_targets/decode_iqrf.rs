//! The IQRF daemon decoder never panics and emits only finite values.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pisek_collector::decode::{Decoder, DecoderKind};

fuzz_target!(|data: &[u8]| {
    let d = Decoder::new(DecoderKind::Iqrf, None, None);
    let _ = d.decode(data, &mut |s| assert!(s.value.is_finite()));
});
