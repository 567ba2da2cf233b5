#!/usr/bin/env bash
# The anchors of examples/overlay_bench, measured between two network
# namespaces joined by a veth: the bare veth (the ceiling) and wireguard-go
# at both ends. One line per path, for the example to parse:
#
#   <path> <Gbit/s> <rtt avg ms> <rtt p50 ms> <RSS KiB of both ends' daemons>
#
#   benches/overlay_baseline.sh [seconds]     (root; iperf3, wireguard-go, wg)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/sbin:/sbin:$PATH"
SECS=${1:-10}
TAG="ovb$$"
. benches/lib/two_netns.sh
trap two_netns_cleanup EXIT
two_netns_setup

echo "veth $(measure 10.98.0.2) $(rtt 10.98.0.2) 0"

wggo_up
gbps=$(measure 10.9.0.2)
ping_ms=$(rtt 10.9.0.2)
rss=$(( $(rss_kib "$A" wireguard-go) + $(rss_kib "$B" wireguard-go) ))
echo "wireguard-go $gbps $ping_ms $rss"
stop_all
