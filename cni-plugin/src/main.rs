//! `pisek-cni`: the CNI plugin. It will parse the runtime's request, ask the
//! agent to attach or detach the workload, and print the result.

// The plugin talks to the agent through the API crate (it is built on it next).
use pisek_api as _;

fn main() -> anyhow::Result<()> {
    anyhow::bail!("pisek-cni is not built yet")
}
