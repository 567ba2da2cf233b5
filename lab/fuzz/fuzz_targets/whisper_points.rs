//! Any bytes as a whisper file: an error or points, never a panic; every
//! point returned is inside the asked window.
#![no_main]

#[path = "../../src/sensor_lab/whisper.rs"]
#[allow(dead_code)]
mod whisper;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (since, now) = (1_000, 1_000_000);
    if let Ok(points) = whisper::parse_points(data, since, now) {
        for ts in points.keys() {
            assert!(*ts >= since && *ts > 0);
        }
    }
});
