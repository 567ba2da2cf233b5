//! The Grafana dashboard (`deploy/grafana/pisek.json`, issue 16) queries
//! only what a running lab has: every Graphite target matches a metric
//! carbon stored points for, and every Prometheus series an expression
//! names is on the agents' `/metrics`.
use pisek_lab::Lab;
use pisek_lab::sensor_lab::{SensorLab, SensorPlan, unix_now};
use std::collections::BTreeSet;
use std::time::Duration;

/// Graphite's wildcard match, component by component (`*` only).
fn matches(pattern: &str, metric: &str) -> bool {
    let (p, m): (Vec<&str>, Vec<&str>) =
        (pattern.split('.').collect(), metric.split('.').collect());
    p.len() == m.len() && p.iter().zip(&m).all(|(p, m)| *p == "*" || p == m)
}

/// The series path of a target (`aliasByNode(path, ...)` or a bare path).
fn series(target: &str) -> &str {
    target
        .strip_prefix("aliasByNode(")
        .and_then(|rest| rest.split(',').next())
        .unwrap_or(target)
        .trim()
}

/// Every `pisek_*` name an expression uses.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("pisek_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        names.push(name);
    }
    names
}

#[test]
fn every_panel_of_the_dashboard_has_data_in_a_running_lab() {
    if !pisek_lab::require(
        "every_panel_of_the_dashboard_has_data_in_a_running_lab",
        &["ip", "carbon-cache", "python3"],
    ) {
        return;
    }
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/pisek.json"),
    )
    .expect("the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());

    let lab = Lab::start(&pisek_lab::unique_tag("gd"), pisek_lab::lab_binaries()).expect("lab");
    lab.wait_until_ready(Duration::from_secs(30))
        .expect("ready");
    let first = unix_now() - 600;
    let sensors = SensorLab::start(
        &lab,
        &pisek_lab::workspace_binary("pisek-collector"),
        SensorPlan::series(first, 5, Duration::from_millis(20)),
    )
    .expect("sensors");
    let stored = pisek_lab::poll_until("readings in Graphite", Duration::from_secs(30), || {
        let mut metrics = BTreeSet::new();
        for gw in ["gw1", "gw2"] {
            let s = sensors.stored(gw, first).ok()?;
            metrics.extend(s.into_iter().filter(|(_, p)| !p.is_empty()).map(|(m, _)| m));
        }
        (metrics.len() >= 24).then_some(metrics)
    });
    let pages = [
        lab.metrics(0).expect("edge metrics"),
        lab.metrics(1).expect("gw1 metrics"),
    ];

    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("?");
        for target in panel["targets"].as_array().expect("targets") {
            if let Some(t) = target["target"].as_str() {
                let path = series(t);
                assert!(
                    stored.iter().any(|m| matches(path, m)),
                    "panel `{title}`: no Graphite metric matches {path}; stored: {stored:?}"
                );
            }
            if let Some(expr) = target["expr"].as_str() {
                let names = metric_names(expr);
                assert!(!names.is_empty(), "panel `{title}`: {expr}");
                for name in names {
                    assert!(
                        pages.iter().any(|p| p.lines().any(|l| {
                            l.starts_with(&format!("{name}{{"))
                                || l.starts_with(&format!("{name} "))
                        })),
                        "panel `{title}`: no series {name} on the agents' /metrics"
                    );
                }
            }
        }
    }
}
