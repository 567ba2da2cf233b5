//! What a test reads from a running lab: commands in a namespace, pings,
//! the agents' metrics and drop counters, the ICMP counters of a workload.

use super::{Lab, Workload};
use anyhow::{Context, bail};
use std::net::IpAddr;
use std::process::{Command, Output};
use std::time::Duration;

impl Lab {
    /// Runs a program in a namespace.
    pub fn exec(&self, netns: &str, program: &str, args: &[&str]) -> anyhow::Result<Output> {
        Command::new("ip")
            .args(["netns", "exec", netns, program])
            .args(args)
            .output()
            .with_context(|| format!("running {program} in {netns}"))
    }

    /// Runs `python3 -c script` in a namespace and returns its stdout;
    /// panics with its stderr when it fails (a test's sending end).
    pub fn python(&self, netns: &str, script: &str) -> String {
        let out = self
            .exec(netns, "python3", &["-c", script])
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert!(
            out.status.success(),
            "python3 in {netns}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `ping -i 0.05 -c count -W 1` from `from` to `to` in the
    /// background (stdout piped): traffic that runs across a fault.
    pub fn spawn_ping(
        &self,
        from: &Workload,
        to: &Workload,
        count: u32,
    ) -> anyhow::Result<std::process::Child> {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &from.netns,
                "ping",
                "-i",
                "0.05",
                "-W",
                "1",
            ])
            .arg("-c")
            .arg(count.to_string())
            .arg(to.address.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("starting ping in {}", from.netns))
    }

    /// `ping -c count` from `from` to `to` (IPv4 or IPv6): the summary line,
    /// `gobgp ARGS` against the lab's gobgpd (on the edge, API on
    /// 127.0.0.1:50051 there): its stdout, or its stderr as the error.
    pub fn gobgp(&self, args: &[&str]) -> anyhow::Result<String> {
        let edge = &self.nodes.first().context("the lab has no edge")?.netns;
        let mut all = vec!["-u", "127.0.0.1", "-p", "50051"];
        all.extend_from_slice(args);
        let out = self.exec(edge, "gobgp", &all)?;
        if !out.status.success() {
            bail!(
                "gobgp {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// and whether every reply came back.
    pub fn ping(
        &self,
        from: &Workload,
        to: impl Into<IpAddr>,
        count: u32,
    ) -> anyhow::Result<(bool, String)> {
        let to: IpAddr = to.into();
        let out = self.exec(
            &from.netns,
            "ping",
            &[
                "-c",
                &count.to_string(),
                "-i",
                "0.2",
                "-W",
                "1",
                &to.to_string(),
            ],
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        let summary = text
            .lines()
            .filter(|l| l.contains("packets transmitted") || l.starts_with("rtt"))
            .collect::<Vec<_>>()
            .join("; ");
        Ok((out.status.success(), summary))
    }

    /// Node `i`'s Prometheus page (`/metrics` on the agent's default
    /// loopback address, 127.0.0.1:9469, inside the node's namespace).
    pub fn metrics(&self, i: usize) -> anyhow::Result<String> {
        let out = self.exec(
            &self.nodes[i].netns,
            "python3",
            &[
                "-c",
                "import urllib.request,sys;sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:9469/metrics',timeout=5).read().decode())",
            ],
        )?;
        if !out.status.success() {
            bail!(
                "metrics of {}: {}",
                self.nodes[i].name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The value of the first sample on node `i`'s metrics page whose line
    /// starts with `sample` (name and labels), if there is one.
    pub fn metric(&self, i: usize, sample: &str) -> anyhow::Result<Option<u64>> {
        Ok(self
            .metrics(i)?
            .lines()
            .find(|l| l.starts_with(sample))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok()))
    }

    /// Node `i`'s drop counter for `reason`, of `tenant` (`None`: the
    /// node-wide row), from `pisekctl drops --json`.
    pub fn drops(&self, i: usize, tenant: Option<&str>, reason: &str) -> anyhow::Result<u64> {
        let answer = self.json(i, &["drops", "--json"])?;
        answer
            .as_array()
            .and_then(|rows| {
                rows.iter()
                    .find(|d| d["reason"] == reason && d["tenant"].as_str() == tenant)
            })
            .and_then(|d| d["packets"].as_u64())
            .with_context(|| format!("no {reason} row for {tenant:?} on node {i}: {answer}"))
    }

    /// ICMP echo requests the workload's namespace received (`InEchos` of
    /// /proc/net/snmp, per namespace): unlike the interface's packet counter
    /// it does not move with IPv6 neighbour discovery or MLD multicast, so it
    /// shows exactly whether pings arrived.
    pub fn echo_requests_received(&self, workload: &Workload) -> anyhow::Result<u64> {
        let out = self.exec(&workload.netns, "cat", &["/proc/net/snmp"])?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut icmp = text.lines().filter(|l| l.starts_with("Icmp:"));
        let (Some(names), Some(values)) = (icmp.next(), icmp.next()) else {
            bail!("no Icmp lines in /proc/net/snmp of {}", workload.netns);
        };
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == "InEchos")
            .and_then(|(_, v)| v.parse().ok())
            .context("InEchos in /proc/net/snmp")
    }

    /// ICMPv6 echo requests the workload's namespace received
    /// (`Icmp6InEchos` of /proc/net/snmp6, one `name value` line per
    /// counter): the IPv6 twin of [`Lab::echo_requests_received`].
    pub fn echo6_requests_received(&self, workload: &Workload) -> anyhow::Result<u64> {
        let out = self.exec(&workload.netns, "cat", &["/proc/net/snmp6"])?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(char::is_whitespace))
            .find(|(name, _)| *name == "Icmp6InEchos")
            .and_then(|(_, v)| v.trim().parse().ok())
            .with_context(|| format!("Icmp6InEchos in /proc/net/snmp6 of {}", workload.netns))
    }
}

/// The longest run of missing replies in `ping -i <interval>` output, as a
/// duration (the outage a restart caused).
pub fn longest_ping_gap(output: &str, interval: Duration) -> Duration {
    // ping numbers its requests 1..=transmitted; replies missing at the
    // start or the end are a gap too, so the run is bounded by 0 and
    // transmitted + 1 (a path that never came back is not "no gap").
    let transmitted: u64 = output
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .expect("ping's summary line");
    let mut seqs: Vec<u64> = output
        .lines()
        .filter_map(|l| l.split("icmp_seq=").nth(1))
        .filter_map(|s| s.split_whitespace().next()?.parse().ok())
        .collect();
    seqs.push(0);
    seqs.push(transmitted + 1);
    seqs.sort_unstable();
    seqs.dedup(); // DUP! replies
    let gap = seqs
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0] + 1))
        .max()
        .unwrap_or(0);
    interval * gap as u32
}
