//! The metrics endpoint's HTTP request head parser: any bytes must give a
//! request or an error (answered 400), never a panic, and a parsed path is
//! always a prefix of the target the client sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pisek_agent::metrics::http::{MAX_HEAD_BYTES, head_len, parse_request_head, response};

fuzz_target!(|data: &[u8]| {
    // What the server does: cut the head at its CRLF CRLF, within the bound.
    let bounded = &data[..data.len().min(MAX_HEAD_BYTES)];
    let head = match head_len(bounded) {
        Some(len) => &bounded[..len],
        None => bounded,
    };
    match parse_request_head(head) {
        Ok(request) => {
            assert!(request.path.starts_with('/'));
            assert!(head.ends_with(b"\r\n\r\n"));
            let _ = response(200, "text/plain", request.path.as_bytes(), false);
        }
        Err(e) => {
            let _ = response(400, "text/plain", e.to_string().as_bytes(), false);
        }
    }
});
