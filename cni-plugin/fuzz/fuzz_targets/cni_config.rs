//! The network configuration on stdin: any bytes give a config or an error
//! with a code the spec or docs/cni.md defines, never a panic; the error
//! object is always JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pisek_cni::config::NetConf;

fuzz_target!(|stdin: &[u8]| {
    if let Err(e) = NetConf::parse(stdin) {
        assert!(matches!(e.code, 1..=7), "{e}");
        let text = e.to_json("1.1.0");
        serde_json::from_str::<serde_json::Value>(&text).expect("error object is JSON");
    }
});
