//! `pisek-agent`: the gateway daemon.
use clap::Parser;

/// Pisek gateway agent.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Path of the agent's configuration.
    #[arg(long, default_value = "/etc/pisek/agent.toml")]
    config: std::path::PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::bail!(
        "the agent is not built yet (issue 7); config would be {}",
        args.config.display()
    )
}
