//! BIRD 2 as a peer of the BGP interop tests (`tests/bgp_bird.rs`): in a
//! namespace of its own, joined to the test's namespace by a veth pair,
//! peering over vpn4 and vpn6 channels, driven through `birdc`.

use crate::bgp_speaker::{AS, common_poll};
use crate::netns::{Netns, unique_tag};
use crate::process::{Daemon, run};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};

/// BIRD 2 in a network namespace of its own, joined to the test's (root)
/// namespace by a veth pair on a /29 of 198.18.0.0/15 (RFC 2544's
/// benchmarking range): Pisek is .1 on the root side, BIRD .2, and .3 is the
/// next hop of BIRD's own VPN routes.
pub struct Bird {
    /// BIRD's namespace.
    pub ns: Netns,
    /// The running daemon, if it runs.
    pub daemon: Option<Daemon>,
    /// Its config file.
    pub config: PathBuf,
    /// Its control socket.
    pub socket: PathBuf,
    /// Pisek's address (root namespace side of the veth).
    pub pisek: Ipv4Addr,
    /// BIRD's address.
    pub addr: Ipv4Addr,
    /// The next hop of BIRD's own VPN routes.
    pub gateway: Ipv4Addr,
}

impl Bird {
    /// Builds the namespace and link, and starts BIRD peering with Pisek
    /// over vpn4 and vpn6 channels. `statics4`/`statics6` are `route ...;`
    /// lines for static protocols in the VPN tables.
    pub fn start(dir: &Path, statics4: &[String], statics6: &[String]) -> Bird {
        Bird::start_in_as(dir, statics4, statics6, AS)
    }

    /// [`Bird::start`] with BIRD in AS `bird_as`: an external (eBGP) peer
    /// of Pisek when it is not [`AS`].
    pub fn start_in_as(dir: &Path, statics4: &[String], statics6: &[String], bird_as: u32) -> Bird {
        static NEXT: AtomicU8 = AtomicU8::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = [
            198,
            18 + (std::process::id() % 2) as u8,
            (std::process::id() / 2 % 256) as u8,
            n.wrapping_mul(8),
        ];
        let host = |h: u8| Ipv4Addr::new(base[0], base[1], base[2], base[3] + h);
        let (pisek, addr, gateway) = (host(1), host(2), host(3));
        let ns = Netns::new("bird");
        let root_if = unique_tag("pkb");
        run(
            "ip",
            [
                "link", "add", &root_if, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
            ],
        );
        run(
            "ip",
            ["addr", "add", &format!("{pisek}/29"), "dev", &root_if],
        );
        run("ip", ["link", "set", &root_if, "up"]);
        ns.ip(["addr", "add", &format!("{addr}/29"), "dev", "eth0"]);
        ns.ip(["link", "set", "eth0", "up"]);

        let config = dir.join(format!("bird-{addr}.conf"));
        let socket = dir.join(format!("bird-{addr}.ctl"));
        // "GW" in a route line stands for the gateway address.
        let line = |r: &String| format!("  {}\n", r.replace("GW", &gateway.to_string()));
        let routes4: String = statics4.iter().map(line).collect();
        let routes6: String = statics6.iter().map(line).collect();
        let conf = format!(
            r#"router id {addr};
log "{log}" all;
vpn4 table vpntab4;
vpn6 table vpntab6;
protocol device {{ }}
protocol static static_vpn4 {{
  vpn4 {{ table vpntab4; }};
{routes4}}}
protocol static static_vpn6 {{
  vpn6 {{ table vpntab6; }};
{routes6}}}
protocol bgp pisek {{
  local {addr} as {bird_as};
  neighbor {pisek} as {AS};
  direct;
  hold time 9;
  keepalive time 3;
  connect retry time 1;
  error wait time 1, 2;
  graceful restart on;
  vpn4 mpls {{ table vpntab4; import all; export all; gateway direct; }};
  # VPNv6 over this IPv4 session: IPv4 next hops (RFC 4659 §3.2.1.2, RFC 8950).
  vpn6 mpls {{ table vpntab6; import all; export all; gateway direct; extended next hop on; }};
}}
"#,
            log = dir.join(format!("bird-{addr}.log")).display(),
        );
        std::fs::write(&config, conf).expect("write bird config");
        let mut b = Bird {
            ns,
            daemon: None,
            config,
            socket,
            pisek,
            addr,
            gateway,
        };
        b.restart();
        b
    }

    /// (Re)starts the daemon and waits for its control socket.
    pub fn restart(&mut self) {
        self.daemon = None;
        let child = self
            .ns
            .command("bird")
            .args([
                "-f",
                "-c",
                &self.config.to_string_lossy(),
                "-s",
                &self.socket.to_string_lossy(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start bird");
        self.daemon = Some(Daemon {
            child,
            name: "bird",
        });
        common_poll("BIRD control socket", || {
            self.birdc(&["show", "status"]).ok()
        });
    }

    /// Kills the daemon (as a crash).
    pub fn kill(&mut self) {
        self.daemon = None;
    }

    /// `birdc ARGS`: its output, or the error text.
    pub fn birdc(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("birdc")
            .args(["-s", &self.socket.to_string_lossy()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && !text.contains("Unable to connect") {
            Ok(text)
        } else {
            Err(text + &String::from_utf8_lossy(&out.stderr))
        }
    }

    /// `birdc ARGS`; panics if it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        self.birdc(args)
            .unwrap_or_else(|e| panic!("birdc {args:?}: {e}"))
    }

    /// True when BIRD's session to Pisek is Established.
    pub fn established(&self) -> bool {
        self.birdc(&["show", "protocols", "pisek"])
            .is_ok_and(|s| s.contains("Established"))
    }

    /// `show route all table T` split into one block per route.
    pub fn routes(&self, table: &str) -> Vec<String> {
        let out = self
            .birdc(&["show", "route", "all", "table", table])
            .unwrap_or_default();
        let mut blocks: Vec<String> = Vec::new();
        for line in out.lines().skip(1) {
            if line.starts_with("Table ") || line.trim().is_empty() {
                continue;
            }
            if line.starts_with(|c: char| c.is_ascii_digit()) {
                blocks.push(line.to_string());
            } else if let Some(last) = blocks.last_mut() {
                last.push('\n');
                last.push_str(line.trim());
            }
        }
        blocks
    }
}
