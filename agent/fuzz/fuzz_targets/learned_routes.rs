//! `learned-routes.json` (the VRFs' learned routes kept across a restart):
//! any bytes give routes or an error, never a panic; what parses encodes
//! and parses back to the same routes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pisek_agent::state::{encode_learned_routes, parse_learned_routes};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(routes) = parse_learned_routes(bytes) {
        let encoded = encode_learned_routes(&routes).expect("routes encode");
        let again = parse_learned_routes(&encoded).expect("encoded routes parse");
        assert_eq!(again, routes);
    }
});
