//! `pisek-collector`: carries sensor readings from MQTT (plain numbers,
//! JSON objects, the IQRF Gateway Daemon's JSON API) into Graphite through
//! a durable on-disk queue. Config reference: docs/collector.md.

use anyhow::Context;
use clap::Parser;
use pisek_collector::config::CollectorConfig;
use std::path::PathBuf;

/// Sensor collector: MQTT -> durable queue -> Graphite (carbon plaintext).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The collector's TOML config.
    #[arg(short, long, default_value = "/etc/pisek/collector.toml")]
    config: PathBuf,
    /// Check the config and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rumqttd=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = CollectorConfig::load(&args.config)
        .with_context(|| format!("config {}", args.config.display()))?;
    if args.check_config {
        println!("{}: ok", args.config.display());
        return Ok(());
    }
    pisek_collector::service::run(config).context("pisek-collector")
}
