//! `pisek-cni`: the CNI plugin. It will parse the runtime's request, ask the
//! agent to attach or detach the workload, and print the result.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("pisek-cni is not built yet")
}
