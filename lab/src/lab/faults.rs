//! Faults a running lab takes on demand (from a second terminal, through
//! the lab's control socket): cut a node's WAN for a while, restart an
//! agent, stop and start carbon. Parsing is here; the example that runs
//! the lab carries them out between two rounds of its live view.

use super::Lab;
use anyhow::{Context, bail};
use std::time::{Duration, Instant};

/// One fault, as the control socket takes it (one line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// `cut-wan <node> <seconds>`: the node's WAN link down, then up.
    CutWan {
        /// `edge`, `gw1`, ...
        node: String,
        /// How long.
        duration: Duration,
    },
    /// `restart <node>`: SIGTERM the node's agent and start it again.
    Restart {
        /// `edge`, `gw1`, ...
        node: String,
    },
    /// `stop-carbon`: Graphite away; the collectors queue.
    StopCarbon,
    /// `start-carbon`: Graphite back; the queues drain.
    StartCarbon,
}

impl std::str::FromStr for Fault {
    type Err = String;

    fn from_str(line: &str) -> Result<Fault, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["cut-wan", node, secs] => {
                let secs: u64 = secs
                    .parse()
                    .ok()
                    .filter(|s| (1..=3600).contains(s))
                    .ok_or_else(|| format!("cut-wan: `{secs}` is not 1-3600 seconds"))?;
                Ok(Fault::CutWan {
                    node: node.to_string(),
                    duration: Duration::from_secs(secs),
                })
            }
            ["restart", node] => Ok(Fault::Restart {
                node: node.to_string(),
            }),
            ["stop-carbon"] => Ok(Fault::StopCarbon),
            ["start-carbon"] => Ok(Fault::StartCarbon),
            _ => Err(format!(
                "unknown fault `{}`: cut-wan <node> <seconds>, restart <node>, stop-carbon, start-carbon",
                line.trim()
            )),
        }
    }
}

impl Lab {
    /// The index of node `name`.
    pub fn node_index(&self, name: &str) -> anyhow::Result<usize> {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .with_context(|| format!("no node `{name}` in this lab"))
    }

    /// Sets node `name`'s WAN link (the router's end of it) down or up.
    pub fn set_wan(&self, name: &str, up: bool) -> anyhow::Result<()> {
        self.node_index(name)?;
        let wan = self
            .nodes
            .first()
            .and_then(|edge| edge.netns.strip_suffix("-edge"))
            .map(|tag| format!("{tag}-wan"))
            .context("the lab has no edge")?;
        let state = if up { "up" } else { "down" };
        let out = self.exec(&wan, "ip", &["link", "set", &format!("to-{name}"), state])?;
        if !out.status.success() {
            bail!(
                "setting {name}'s WAN {state}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Restarts node `name`'s agent; returns how long it was away.
    pub fn restart_agent(&self, name: &str) -> anyhow::Result<Duration> {
        let i = self.node_index(name)?;
        let started = Instant::now();
        self.stop_agent(i)?;
        self.start_agent(i)?;
        Ok(started.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_and_bad_ones_say_what_is_allowed() {
        assert_eq!(
            "cut-wan gw1 10".parse(),
            Ok(Fault::CutWan {
                node: "gw1".into(),
                duration: Duration::from_secs(10)
            })
        );
        assert_eq!(
            " restart edge\n".parse(),
            Ok(Fault::Restart {
                node: "edge".into()
            })
        );
        assert_eq!("stop-carbon".parse(), Ok(Fault::StopCarbon));
        for bad in [
            "",
            "cut-wan gw1",
            "cut-wan gw1 0",
            "cut-wan gw1 x",
            "reboot gw1",
        ] {
            let e = bad.parse::<Fault>().expect_err(bad);
            assert!(e.contains("cut-wan") || e.contains("seconds"), "{e}");
        }
    }
}
