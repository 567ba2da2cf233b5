#!/usr/bin/env python3
"""Measures one path between two network namespaces the same way for every
row of examples/overlay_bench (bare veth, wireguard-go, wg_peer, the Pisek
overlay), and prints one line for the example to parse:

  <name> <tcp1 Gbit/s> <tcp4 Gbit/s> <udp64 offered pps> <udp64 received pps>
         <rtt avg ms> <rtt p50 ms> <RSS KiB> <CPU s/GB>

  benches/measure_path.py NAME CLIENT_NS SERVER_NS SERVER_ADDR SECONDS [PID...]

- TCP: iperf3 -t SECONDS, 1 and then 4 streams, receiver side.
- UDP: iperf3 -u -l 64 -b 0 -t SECONDS: offered = datagrams the client
  sent per second, received = those the server got (sent - lost).
- RTT: ping -c 50 -i 0.01, average and median of the replies.
- RSS and CPU: of the PIDs given (the daemons on the path; iperf3 is not
  counted): VmRSS summed after the transfers, and utime + stime from
  /proc/<pid>/stat summed over the PIDs across both TCP runs, divided by
  the gigabytes received in them. No PID (bare veth): RSS 0, CPU nan (the
  kernel's work is in no process).
Root only; every iperf3 it starts is stopped before it returns.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def netns(ns, *argv):
    return ["ip", "netns", "exec", ns, *argv]


def cpu_seconds(pids):
    """utime + stime of every pid, in seconds (fields 14 and 15)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            # The command name may hold spaces: split after its ')'.
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            m = re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M)
        total += int(m.group(1)) if m else 0
    return total


def iperf(client, addr, args):
    """One iperf3 client run; its JSON report (None when it failed)."""
    out = subprocess.run(
        netns(client, "iperf3", "-c", addr, "-J", *args),
        capture_output=True, text=True)
    try:
        report = json.loads(out.stdout)
    except ValueError:
        return None
    return None if out.returncode != 0 or "error" in report else report


def warm_up(client, addr):
    """Waits (at most 15 s) until a 1 s TCP transfer goes through: the
    server listens and the path is up (handshakes done)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if iperf(client, addr, ["-t", "1"]) is not None:
            return
        time.sleep(0.2)
    sys.exit(f"no iperf3 transfer to {addr} within 15 s")


def tcp(client, addr, seconds, streams):
    """(Gbit/s, bytes) at the receiver."""
    r = iperf(client, addr, ["-t", str(seconds), "-P", str(streams)])
    if r is None:
        return 0.0, 0
    s = r["end"]["sum_received"]
    return s["bits_per_second"] / 1e9, s["bytes"]


def udp64(client, addr, seconds):
    """(offered pps, received pps) of 64-byte datagrams, unlimited rate."""
    r = iperf(client, addr, ["-u", "-l", "64", "-b", "0", "-t", str(seconds)])
    if r is None:
        return 0.0, 0.0
    s = r["end"]["sum"]
    sent = s["packets"]
    lost = max(s.get("lost_packets", 0), 0)
    return sent / seconds, (sent - lost) / seconds


def rtt(client, addr):
    out = subprocess.run(
        netns(client, "ping", "-c", "50", "-i", "0.01", "-W", "1", addr),
        capture_output=True, text=True).stdout
    t = [float(x) for x in re.findall(r"time=([0-9.]+) ms", out)]
    return (statistics.mean(t), statistics.median(t)) if t else (float("nan"),) * 2


def main():
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    name, client, server, addr, seconds = sys.argv[1:6]
    seconds = int(seconds)
    pids = [int(p) for p in sys.argv[6:]]
    srv = subprocess.Popen(
        netns(server, "iperf3", "-s", "-B", addr),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        warm_up(client, addr)
        cpu0 = cpu_seconds(pids)
        tcp1, bytes1 = tcp(client, addr, seconds, 1)
        tcp4, bytes4 = tcp(client, addr, seconds, 4)
        cpu = cpu_seconds(pids) - cpu0
        offered, received = udp64(client, addr, seconds)
    finally:
        srv.terminate()
        srv.wait()
    avg, p50 = rtt(client, addr)
    gb = (bytes1 + bytes4) / 1e9
    per_gb = cpu / gb if pids and gb > 0 else float("nan")
    print(f"{name} {tcp1:.3f} {tcp4:.3f} {offered:.0f} {received:.0f} "
          f"{avg:.3f} {p50:.3f} {rss_kib(pids)} {per_gb:.3f}")


if __name__ == "__main__":
    main()
