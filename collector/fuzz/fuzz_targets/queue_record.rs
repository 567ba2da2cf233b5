//! Queue record framing: decoding arbitrary bytes never panics, a valid
//! prefix re-encodes to the same bytes, and every record round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pisek_collector::queue::record::{self, Frame, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let (valid, _) = record::valid_prefix(data);
    let mut again = Vec::new();
    let mut at = 0;
    while let Frame::Complete { payload_len } = record::decode(&data[at..valid]) {
        record::encode(&data[at + HEADER_LEN..at + HEADER_LEN + payload_len], &mut again);
        at += HEADER_LEN + payload_len;
    }
    assert_eq!(&again[..], &data[..valid]);
    if data.len() <= record::MAX_PAYLOAD {
        let mut one = Vec::new();
        record::encode(data, &mut one);
        assert_eq!(record::decode(&one), Frame::Complete { payload_len: data.len() });
    }
});
