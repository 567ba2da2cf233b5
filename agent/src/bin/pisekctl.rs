//! `pisekctl`: the operator's command line for a running agent.
use clap::Parser;

/// Pisek operator CLI.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Path of the agent's API socket.
    #[arg(long, default_value = "/run/pisek/agent.sock")]
    socket: std::path::PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::bail!(
        "the agent API is not built yet (issue 7); socket would be {}",
        args.socket.display()
    )
}
