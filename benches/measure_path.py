#!/usr/bin/env python3
"""Measures one path between two network namespaces the same way for every
row of examples/overlay_bench (bare veth, wireguard-go, wg_peer, the Pisek
overlay), and prints one line for the example to parse:

  <name> <tcp1 Gbit/s> <tcp4 Gbit/s> <udp64 offered pps> <udp64 received pps>
         <udp64 CPU us/packet> <default buffer: offered pps> <received pps>
         <dropped at the sink pps> <rtt avg ms> <rtt p50 ms> <RSS KiB> <CPU s/GB>

  benches/measure_path.py NAME CLIENT_NS SERVER_NS SERVER_ADDR SECONDS [PID...]

- TCP: iperf3 -t SECONDS, 1 and then 4 streams, receiver side.
- UDP: iperf3 -u -l 64 -b 0 -t SECONDS: offered = datagrams the client
  sent per second, received = those the server got (sent - lost). Twice:
  first with a 2 MiB socket buffer at both ends (-w 2M: a receive buffer
  at the sink that outlasts its waits for a CPU; capped by
  net.core.rmem_max, warned about when lower), then with the
  default buffer (net.core.rmem_default, 208 KiB: about 270 datagrams of
  64 B, 1-2 ms of the stream). With the default, part of what the path
  delivered is dropped at the sink's own socket while iperf3 waits for a
  CPU (a 2-core machine runs the sender, the sink and the daemons at
  once): "dropped at the sink" counts them (the drops column of
  /proc/net/udp for the sink's port, sampled every 0.2 s while the test
  runs, so a lower bound), which measures the sink and the scheduler, not
  the path. CPU per packet: utime + stime of the PIDs over the first run,
  divided by the datagrams received in it.
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
import threading
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


# The sink's socket buffer for the 64-byte test (see the docstring).
SINK_BUFFER = 2 << 20
SINK_PORT = 5201


def sink_drops(server_pid):
    """Datagrams dropped so far by the UDP sockets on SINK_PORT in the
    namespace of `server_pid` (receive buffer full). Read from its /proc,
    without starting a process: the watch runs during the measurement."""
    total = 0
    for table in ("udp", "udp6"):
        try:
            with open(f"/proc/{server_pid}/net/{table}") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 12 and fields[1].endswith(f":{SINK_PORT:04X}"):
                total += int(fields[-1])
    return total


def udp64(client, addr, seconds, buffer=None, server_pid=None):
    """(offered pps, received pps, dropped at the sink pps) of 64-byte
    datagrams at an unlimited rate; `buffer`: both ends' socket buffer;
    with `server_pid` the sink's drops are watched (else 0)."""
    args = ["-u", "-l", "64", "-b", "0", "-t", str(seconds)]
    if buffer:
        args += ["-w", str(buffer)]
    drops = [0]
    done = threading.Event()

    def watch():
        # The test's socket (and its counter) goes when the test ends.
        while not done.wait(0.2):
            drops[0] = max(drops[0], sink_drops(server_pid))

    watcher = threading.Thread(target=watch) if server_pid else None
    if watcher:
        watcher.start()
    try:
        r = iperf(client, addr, args)
    finally:
        done.set()
        if watcher:
            watcher.join()
    if r is None:
        return 0.0, 0.0, 0.0
    s = r["end"]["sum"]
    sent = s["packets"]
    lost = max(s.get("lost_packets", 0), 0)
    return sent / seconds, (sent - lost) / seconds, drops[0] / seconds


def check_rmem_max():
    with open("/proc/sys/net/core/rmem_max") as f:
        rmem_max = int(f.read())
    if rmem_max < SINK_BUFFER:
        print(f"measure_path: net.core.rmem_max is {rmem_max}, below the "
              f"{SINK_BUFFER} B sink buffer; the 64 B test gets {rmem_max}",
              file=sys.stderr)


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
        check_rmem_max()
        cpu0 = cpu_seconds(pids)
        offered, received, _ = udp64(client, addr, seconds, SINK_BUFFER)
        udp_cpu = cpu_seconds(pids) - cpu0
        # `ip netns exec` execs iperf3: the pid is the server's.
        d_offered, d_received, d_dropped = udp64(
            client, addr, seconds, server_pid=srv.pid)
    finally:
        srv.terminate()
        srv.wait()
    avg, p50 = rtt(client, addr)
    gb = (bytes1 + bytes4) / 1e9
    per_gb = cpu / gb if pids and gb > 0 else float("nan")
    packets = received * seconds
    per_packet = udp_cpu / packets * 1e6 if pids and packets > 0 else float("nan")
    print(f"{name} {tcp1:.3f} {tcp4:.3f} {offered:.0f} {received:.0f} {per_packet:.3f} "
          f"{d_offered:.0f} {d_received:.0f} {d_dropped:.0f} "
          f"{avg:.3f} {p50:.3f} {rss_kib(pids)} {per_gb:.3f}")


if __name__ == "__main__":
    main()
