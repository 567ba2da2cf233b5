//! The API's request decoding, as the agent's server does it for each line:
//! any bytes on a line must give a `Request` or an error answer, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pisek_api::{Request, Response, codes};

fuzz_target!(|line: &[u8]| {
    match serde_json::from_slice::<Request>(line) {
        // A decoded request encodes back to a request that decodes the same.
        Ok(request) => {
            let text = serde_json::to_vec(&request).expect("encode");
            let again: Request = serde_json::from_slice(&text).expect("round trip");
            assert_eq!(again, request);
        }
        Err(e) => {
            let answer = Response::failure(codes::MALFORMED_REQUEST, e.to_string());
            serde_json::to_vec(&answer).expect("encode error answer");
        }
    }
});
