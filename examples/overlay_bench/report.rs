//! The benchmark's output: the table (with each figure's ratio to
//! wireguard-go's) and a PNG of it.

use super::png::{drawing_error, register_sans_serif, white_png};
use super::rows::Row;
use plotters::prelude::*;
use std::path::Path;

/// The figures of the table: title, unit, getter, whether more is better.
type Metric = (&'static str, &'static str, fn(&Row) -> f64, bool);

const METRICS: [Metric; 8] = [
    ("TCP, 1 stream", "Gbit/s", |r| r.tcp1_gbps, true),
    ("TCP, 4 streams", "Gbit/s", |r| r.tcp4_gbps, true),
    (
        "64 B UDP received (-w 2M)",
        "kpps",
        |r| r.udp_received_pps / 1e3,
        true,
    ),
    (
        "64 B UDP offered",
        "kpps",
        |r| r.udp_offered_pps / 1e3,
        true,
    ),
    (
        "64 B UDP, daemons' CPU",
        "us/packet",
        |r| r.udp_cpu_us,
        false,
    ),
    (
        "64 B UDP received, default buffer",
        "kpps",
        |r| r.udp_default_received_pps / 1e3,
        true,
    ),
    ("RTT (median)", "ms", |r| r.rtt_p50_ms, false),
    ("CPU per GB (TCP)", "s/GB", |r| r.cpu_s_per_gb, false),
];

fn wireguard_go(rows: &[Row]) -> Option<&Row> {
    rows.iter().find(|r| r.path.starts_with("wireguard-go"))
}

/// Prints the table; each figure is followed by its ratio to
/// wireguard-go's (for RTT and CPU, lower is better).
pub fn print_table(rows: &[Row], seconds: u32) {
    let anchor = wireguard_go(rows);
    let ratio = |r: &Row, get: fn(&Row) -> f64| match anchor {
        Some(a) if get(a) > 0.0 && get(r).is_finite() => format!("{:.2}x", get(r) / get(a)),
        _ => "-".into(),
    };
    println!();
    println!(
        "iperf3 -t {seconds} (TCP receiver side; UDP -u -l 64 -b 0 -w 2M, then without -w), \
         ping -c 50 -i 0.01; (x) = ratio to wireguard-go"
    );
    println!(
        "{:<34} {:>15} {:>15} {:>17} {:>8} {:>13} {:>23} {:>9} {:>17} {:>10} {:>15} {:>9}",
        "path",
        "TCP1 Gbit/s",
        "TCP4 Gbit/s",
        "UDP64 rx kpps",
        "offered",
        "CPU us/pkt",
        "default buf: rx kpps",
        "sink drop",
        "RTT p50 (avg) ms",
        "RTT x",
        "CPU s/GB",
        "RSS MiB"
    );
    for r in rows {
        let cpu = if r.cpu_s_per_gb.is_finite() {
            format!("{:.2} {:>6}", r.cpu_s_per_gb, ratio(r, |r| r.cpu_s_per_gb))
        } else {
            "-".into()
        };
        let udp_cpu = if r.udp_cpu_us.is_finite() {
            format!("{:.2} {:>5}", r.udp_cpu_us, ratio(r, |r| r.udp_cpu_us))
        } else {
            "-".into()
        };
        println!(
            "{:<34} {:>8.3} {:>6} {:>8.3} {:>6} {:>10.1} {:>6} {:>8.1} {:>13} {:>16.1} {:>6} {:>9.1} {:>8.3} ({:.3}) {:>10} {:>15} {:>9.1}",
            r.path,
            r.tcp1_gbps,
            ratio(r, |r| r.tcp1_gbps),
            r.tcp4_gbps,
            ratio(r, |r| r.tcp4_gbps),
            r.udp_received_pps / 1e3,
            ratio(r, |r| r.udp_received_pps),
            r.udp_offered_pps / 1e3,
            udp_cpu,
            r.udp_default_received_pps / 1e3,
            ratio(r, |r| r.udp_default_received_pps),
            r.udp_default_sink_drops_pps / 1e3,
            r.rtt_p50_ms,
            r.rtt_avg_ms,
            ratio(r, |r| r.rtt_p50_ms),
            cpu,
            r.rss_kib as f64 / 1024.0
        );
    }
    println!(
        "CPU and RSS: the daemons on the path (2 wireguard-go, 2 wg_peer, 3 pisek-agent); \
         iperf3 is not counted. Sink drop: kpps of what the path delivered that the \
         sink's socket dropped (default buffer)."
    );
}

/// Draws one bar chart per figure into a PNG at `path`. The bare veth is
/// left out: at 30x the others it would flatten every bar.
pub fn plot(rows: &[Row], path: &Path) -> anyhow::Result<()> {
    register_sans_serif()?;
    let rows: Vec<&Row> = rows
        .iter()
        .filter(|r| !r.path.starts_with("bare"))
        .collect();
    let draw = drawing_error(path);
    let root = white_png(path, (1900, 900))?;
    let root = root
        .titled(
            "Pisek data plane vs wireguard-go (same run; bare veth in the table only)",
            ("sans-serif", 26),
        )
        .map_err(draw)?;
    for ((title, unit, get, higher_better), area) in METRICS.iter().zip(root.split_evenly((2, 4))) {
        let values: Vec<f64> = rows.iter().map(|r| get(r)).collect();
        let top = values
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max)
            .max(1e-9)
            * 1.25;
        let better = if *higher_better {
            "higher is better"
        } else {
            "lower is better"
        };
        let mut chart = ChartBuilder::on(&area)
            .caption(format!("{title}, {unit} ({better})"), ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(10)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..rows.len() as f64, 0.0..top)
            .map_err(draw)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .disable_x_axis()
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(draw)?;
        for (i, (row, v)) in rows.iter().zip(&values).enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let x = i as f64;
            let v = if v.is_finite() { *v } else { 0.0 };
            chart
                .draw_series([Rectangle::new(
                    [(x + 0.15, 0.0), (x + 0.85, v)],
                    color.filled(),
                )])
                .map_err(draw)?;
            chart
                .draw_series([Text::new(
                    format!("{v:.2}"),
                    (x + 0.3, v + top * 0.04),
                    ("sans-serif", 14),
                )])
                .map_err(draw)?;
            let name = short_name(&row.path);
            chart
                .draw_series([Text::new(name, (x + 0.15, top * 0.97), ("sans-serif", 12))])
                .map_err(draw)?;
        }
    }
    root.present().map_err(draw)?;
    Ok(())
}

/// A name short enough for a bar.
fn short_name(path: &str) -> &'static str {
    if path.starts_with("Pisek overlay") {
        "overlay"
    } else if path.starts_with("Pisek WireGuard") {
        "wg_peer"
    } else if path.starts_with("wireguard-go") {
        "wireguard-go"
    } else {
        "other"
    }
}
