//! The wire format: what decodes, what is refused and how, what encodes.

use super::*;
use std::path::PathBuf;

fn parse(line: &str) -> Result<Request, String> {
    serde_json::from_str(line).map_err(|e| e.to_string())
}

#[test]
fn attach_request_defaults_ifname_to_eth0() {
    let req =
        parse(r#"{"op":"attach","container_id":"c1","netns":"/run/netns/a","tenant":"city"}"#);
    assert_eq!(
        req,
        Ok(Request::Attach {
            container_id: "c1".into(),
            netns: PathBuf::from("/run/netns/a"),
            ifname: "eth0".into(),
            tenant: "city".into(),
            addresses: Vec::new(),
            mtu: None,
            owner: None,
        })
    );
}

#[test]
fn attach_request_takes_requested_addresses_and_old_requests_stay_valid() {
    let req = parse(
        r#"{"op":"attach","container_id":"c1","netns":"/run/netns/a","tenant":"city","addresses":["10.1.9.5","fd00:9::5"]}"#,
    );
    let Ok(Request::Attach { addresses, .. }) = &req else {
        panic!("{req:?}");
    };
    assert_eq!(addresses.len(), 2);
    // Without requested addresses the encoding is the one of before.
    let plain = Request::Attach {
        container_id: "c1".into(),
        netns: PathBuf::from("/run/netns/a"),
        ifname: "eth0".into(),
        tenant: "city".into(),
        addresses: Vec::new(),
        mtu: None,
        owner: None,
    };
    let text = serde_json::to_string(&plain).expect("encode");
    assert!(!text.contains("addresses"), "{text}");
    let err = parse(
        r#"{"op":"attach","container_id":"c1","netns":"/run/netns/a","tenant":"city","addresses":["10.1.9"]}"#,
    )
    .expect_err("bad address");
    assert!(err.contains("invalid IP address"), "{err}");
}

#[test]
fn unknown_op_names_the_valid_ones() {
    let err = parse(r#"{"op":"atach"}"#).expect_err("unknown op");
    assert!(err.contains("unknown variant `atach`"), "{err}");
    assert!(err.contains("attach"), "{err}");
}

#[test]
fn unknown_field_is_rejected() {
    let err = parse(r#"{"op":"detach","container_id":"c1","ifnme":"eth1"}"#).expect_err("field");
    assert!(err.contains("ifnme"), "{err}");
}

#[test]
fn missing_field_is_named() {
    let err = parse(r#"{"op":"attach","container_id":"c1","tenant":"city"}"#).expect_err("netns");
    assert!(err.contains("netns"), "{err}");
}

#[test]
fn responses_round_trip() {
    let ok = Response::success(GcResult { released: vec![] });
    let text = serde_json::to_string(&ok).expect("encode");
    assert_eq!(text, r#"{"ok":true,"result":{"released":[]}}"#);
    let err = Response::failure("netns_not_found", "no such netns");
    let back: Response =
        serde_json::from_str(&serde_json::to_string(&err).expect("encode")).expect("decode");
    assert_eq!(back, err);
}

#[test]
fn kind_is_the_serialized_op() {
    for request in [
        Request::Detach {
            container_id: "c".into(),
            ifname: "eth0".into(),
        },
        Request::TenantForNamespace {
            namespace: "n".into(),
        },
        Request::Status,
        Request::Endpoints,
        Request::Drops,
    ] {
        let json = serde_json::to_value(&request).expect("encode");
        assert_eq!(json["op"], request.kind());
    }
}
