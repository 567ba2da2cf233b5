//! A criterion measurement of the benchmark thread's CPU time instead of
//! wall-clock time.
//!
//! The benchmark machine is shared (two cores, other builds running), so
//! wall-clock time counts the time the thread waited for a core;
//! `CLOCK_THREAD_CPUTIME_ID` counts only the time it ran (to the nanosecond:
//! the kernel adds the running slice when read).

use criterion::Throughput;
use criterion::measurement::{Measurement, ValueFormatter};

/// Thread CPU time in nanoseconds.
pub struct CpuTime;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the pointer it is given,
    // which points at a live, writable local.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }

    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &NanosecondFormatter
    }
}

struct NanosecondFormatter;

impl ValueFormatter for NanosecondFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical < 1e3 {
            (1.0, "ns")
        } else if typical < 1e6 {
            (1e-3, "µs")
        } else {
            (1e-6, "ms")
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }

    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        match throughput {
            Throughput::Elements(n) => {
                // n elements per `value` ns -> million elements per CPU second.
                values.iter_mut().for_each(|v| *v = *n as f64 * 1e3 / *v);
                "Melem/cpu-s"
            }
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) => {
                values.iter_mut().for_each(|v| *v = *n as f64 / *v);
                "GB/cpu-s"
            }
            _ => "?",
        }
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}
