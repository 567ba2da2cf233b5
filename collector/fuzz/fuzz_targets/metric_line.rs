//! Any topic and payload through a route gives only well-formed Graphite
//! lines: three fields, no empty path level, nothing outside the sanitised set.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pisek_collector::decode::{Decoder, DecoderKind};
use pisek_collector::naming::MetricTemplate;
use pisek_collector::routes::{Route, RouteTable};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let cut = (split as usize).min(rest.len());
    let Ok(topic) = std::str::from_utf8(&rest[..cut]) else { return };
    let payload = &rest[cut..];
    let table = RouteTable::new(vec![Route {
        filter: "#".into(),
        decoder: Decoder::new(DecoderKind::Json, None, None),
        template: MetricTemplate::parse("x.{topic}.{topic.1}.{field}").expect("valid"),
    }]);
    let mut out = Vec::new();
    if table.message_to_lines(topic, payload, 0, &mut out).is_ok() {
        for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let line = std::str::from_utf8(line).expect("utf-8");
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields.len(), 3, "{line:?}");
            assert!(fields[0].split('.').all(|l| !l.is_empty()), "{line:?}");
            assert!(fields[0].bytes().all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b)));
            assert!(fields[1].parse::<f64>().is_ok_and(f64::is_finite), "{line:?}");
        }
    }
});
