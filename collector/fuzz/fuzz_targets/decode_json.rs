//! The JSON-object decoder, with and without a field map, never panics and
//! emits only finite values.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pisek_collector::decode::{Decoder, DecoderKind};
use std::collections::BTreeMap;

fuzz_target!(|data: &[u8]| {
    let all = Decoder::new(DecoderKind::Json, None, Some("ts".into()));
    let _ = all.decode(data, &mut |s| assert!(s.value.is_finite()));
    let map = BTreeMap::from([("t".to_string(), "temperature".to_string())]);
    let mapped = Decoder::new(DecoderKind::Json, Some(map), Some("time".into()));
    let _ = mapped.decode(data, &mut |s| assert!(s.value.is_finite()));
});
