//! CHECK's comparison of a `prevResult` (any JSON the runtime kept) with an
//! attachment: an answer, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pisek_api::Attachment;
use pisek_cni::result::check_prev_result;
use std::path::{Path, PathBuf};

fuzz_target!(|data: &[u8]| {
    let Ok(prev) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let att = Attachment {
        container_id: "c1".into(),
        ifname: "eth0".into(),
        tenant: "city".into(),
        netns: PathBuf::from("/run/netns/p"),
        host_ifname: "pk0".into(),
        mac: Some("0a:00:00:00:00:01".into()),
        addresses: vec!["10.1.1.2/32".into()],
        gateways: vec!["169.254.1.1".parse().expect("ip")],
        mtu: 1408,
        owner: None,
    };
    let _ = check_prev_result(&prev, &att, "eth0", Path::new("/run/netns/p"));
});
