//! MPLS-in-UDP decapsulation of arbitrary bytes; the checks are in
//! [`mpls_decap`], shared with the other MPLS encapsulation.
#![no_main]

mod mpls_decap;

use libfuzzer_sys::fuzz_target;
use pisek_overlay::packet::Encapsulation;

fuzz_target!(|data: &[u8]| {
    mpls_decap::decapsulate_and_reencapsulate(Encapsulation::MplsOverUdp, data);
});
