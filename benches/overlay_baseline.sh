#!/usr/bin/env bash
# The anchors of examples/overlay_bench, measured between two network
# namespaces joined by a veth: the bare veth (the ceiling), wireguard-go at
# both ends, and Pisek's WireGuard alone (examples/wg_peer at both ends).
# One line per path from benches/measure_path.py (TCP 1 and 4 streams,
# 64 B UDP, RTT, RSS, CPU per GB of the daemons on the path).
#
#   benches/overlay_baseline.sh SECONDS WG_PEER_BINARY [PATHS]
#       PATHS: comma-separated subset of veth,wireguard-go,wg_peer (all)
#   (root; iperf3, wireguard-go, wg)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/sbin:/sbin:$PATH"
SECS=${1:-10}
PEER=${2:?the wg_peer binary}
PATHS=${3:-veth,wireguard-go,wg_peer}
TAG="ovb$$"
. benches/lib/two_netns.sh
trap two_netns_cleanup EXIT
two_netns_setup

wanted() { [[ ",$PATHS," == *",$1,"* ]]; }

# The pids of the processes called $1 in both namespaces.
pids_of() {
    local ns pid
    for ns in "$A" "$B"; do
        for pid in $(ip netns pids "$ns"); do
            [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$1" ] && echo "$pid"
        done
    done
    return 0
}

if wanted veth; then
    benches/measure_path.py veth "$A" "$B" 10.98.0.2 "$SECS"
fi
if wanted wireguard-go; then
    wggo_up
    # shellcheck disable=SC2046
    benches/measure_path.py wireguard-go "$A" "$B" 10.9.0.2 "$SECS" $(pids_of wireguard-go)
    stop_all
fi
if wanted wg_peer; then
    wgpeer_up "$PEER"
    # shellcheck disable=SC2046
    benches/measure_path.py wg_peer "$A" "$B" 10.9.0.2 "$SECS" $(pids_of wg_peer)
    stop_all
fi
