//! The `CNI_*` variables: any values give an invocation or error 4, never
//! a panic. The input is split into the variables at NUL bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pisek_cni::env::invocation;

const NAMES: [&str; 6] = [
    "CNI_COMMAND",
    "CNI_CONTAINERID",
    "CNI_NETNS",
    "CNI_IFNAME",
    "CNI_ARGS",
    "CNI_PATH",
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let values: Vec<&str> = text.split('\0').collect();
    let get = |name: &str| {
        NAMES
            .iter()
            .position(|n| *n == name)
            .and_then(|i| values.get(i))
            .map(|v| v.to_string())
    };
    if let Err(e) = invocation(&get) {
        assert_eq!(e.code, 4, "{e}");
    }
});
