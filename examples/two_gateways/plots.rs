//! The lab's pictures: PNG plots of the sensor readings that reached
//! Graphite (per gateway, over time) and of each tenant's overlay traffic
//! and RTT (gw1 -> gw2, from the live view's rounds), rewritten while the
//! lab runs and at the end.

use super::png::{drawing_error, register_sans_serif, white_png};
use pisek_lab::sensor_lab::SensorLab;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One series: (seconds since start, value).
type Series = Vec<(f64, f64)>;

/// What the live view measured, and where the PNGs go.
pub struct Plots {
    dir: PathBuf,
    started: Instant,
    rtt_ms: BTreeMap<String, Series>,
    kbit_s: BTreeMap<String, Series>,
}

impl Plots {
    /// Plots written into `dir` (created).
    pub fn new(dir: &Path) -> anyhow::Result<Plots> {
        std::fs::create_dir_all(dir)?;
        register_sans_serif()?;
        Ok(Plots {
            dir: dir.to_path_buf(),
            started: Instant::now(),
            rtt_ms: BTreeMap::new(),
            kbit_s: BTreeMap::new(),
        })
    }

    /// One round of `tenant`: its RTT gw1 -> gw2 (none when the ping
    /// failed) and its traffic through gw1's agent.
    pub fn record(&mut self, tenant: &str, ping_line: &str, kbit_s: f64) {
        let t = self.started.elapsed().as_secs_f64();
        if let Some(avg) = rtt_avg(ping_line) {
            self.rtt_ms
                .entry(tenant.to_string())
                .or_default()
                .push((t, avg));
        }
        self.kbit_s
            .entry(tenant.to_string())
            .or_default()
            .push((t, kbit_s));
    }

    /// Writes `readings.png` (every room's temperature on every gateway, as
    /// carbon stored it since `since`), `traffic.png` and `rtt.png`.
    pub fn write(&self, sensors: &SensorLab<'_>, since: i64) -> anyhow::Result<()> {
        let mut readings = BTreeMap::new();
        for g in sensors.gateways() {
            for (metric, points) in sensors.stored(&g.gateway, since)? {
                if metric.ends_with(".temperature") && !metric.contains(".iqrf.") {
                    let short = metric.trim_start_matches("pisek.").to_string();
                    let series: Series = points
                        .iter()
                        .map(|(ts, v)| ((ts - since) as f64, *v))
                        .collect();
                    readings.insert(short, series);
                }
            }
        }
        chart(
            &self.dir.join("readings.png"),
            "Temperatures in Graphite, per gateway and room",
            "seconds",
            "degrees Celsius",
            &readings,
        )?;
        chart(
            &self.dir.join("traffic.png"),
            "Overlay traffic out of gw1, per tenant",
            "seconds",
            "kbit/s",
            &self.kbit_s,
        )?;
        chart(
            &self.dir.join("rtt.png"),
            "RTT gw1 -> edge -> gw2, per tenant",
            "seconds",
            "ms",
            &self.rtt_ms,
        )
    }

    /// Where the PNGs are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// `rtt min/avg/max/mdev = 0.1/0.2/0.3/0.0 ms` -> 0.2.
fn rtt_avg(line: &str) -> Option<f64> {
    line.split("rtt min/avg/max/mdev = ")
        .nth(1)?
        .split('/')
        .nth(1)?
        .parse()
        .ok()
}

/// One line chart of `series` into `path`.
fn chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &BTreeMap<String, Series>,
) -> anyhow::Result<()> {
    let points = series.values().flatten();
    let x_max = points.clone().map(|p| p.0).fold(1.0, f64::max);
    let y_max = points.clone().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let y_min = points.map(|p| p.1).fold(f64::INFINITY, f64::min).min(y_max) * 0.9;
    let y_min = if y_min.is_finite() { y_min } else { 0.0 };
    let root = white_png(path, (960, 540))?;
    let draw = drawing_error(path);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, y_min..y_max)
        .map_err(draw)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(draw)?;
    for (i, (name, s)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(s.iter().copied(), color.stroke_width(2)))
            .map_err(draw)?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(draw)?;
    root.present().map_err(draw)?;
    Ok(())
}
