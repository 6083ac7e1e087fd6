#!/usr/bin/env bash
# The appliance's main job on virtual devices, no NIC or hugepages needed:
# installs what is missing, builds release, makes a pcap of Tachyon traffic,
# runs tachyon for a few seconds (pcap replayed forever in, null device out)
# with the live stats line, and prints the final counters.
#   usage: bash scripts/demo.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --quiet --bins
mkdir -p out
./target/release/tachyon-gen pcap --out out/demo.pcap --frames 20000 --topics 1000 --senders 100 \
  --dist zipf --zipf-s 1.1 --records 1-8 --payload 64 --malformed 0.02 --src-ips 64 --seed 1
echo "demo: running tachyon for ${SECS}s on net_pcap (in) -> net_null (out)"
./target/release/tachyon -l 0-1 --no-huge -m 1024 --no-pci --file-prefix tachyon-demo \
  --vdev "net_pcap0,rx_pcap=out/demo.pcap,infinite_rx=1" --vdev "net_null0,no-rx=1" \
  -- --config dpdk-config/demo.toml --duration "$SECS" --stats-json out/demo-stats.json
echo "demo: final counters also in out/demo-stats.json"
