#!/usr/bin/env bash
# TCP throughput workload to workload across the whole overlay (gw1 -> edge ->
# gw2: TUN + VRF + MPLSoUDP + WireGuard, relayed by the edge) in the
# two-gateway lab, followed in the same run by the anchors of
# benches/wg_throughput.sh (bare veth, wireguard-go, Pisek's WireGuard alone).
#
#   benches/overlay_throughput.sh [seconds]      (root; iperf3, wireguard-go, wg)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:/usr/sbin:/sbin:$PATH"
SECS=${1:-10}
cargo build --release -q -p pisek-agent --bins
cargo build --release -q --example two_gateways
TARGET=${CARGO_TARGET_DIR:-target}
echo "== overlay, two gateways through the edge"
"$TARGET/release/examples/two_gateways" --no-build --iperf "$SECS" | grep iperf3
echo "== anchors (same run)"
benches/wg_throughput.sh "$SECS"
