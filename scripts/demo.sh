#!/usr/bin/env bash
# The appliance's main job on virtual devices, no NIC or hugepages needed:
# installs what is missing, builds release, makes a pcap of Tachyon traffic,
# runs tachyon for a few seconds (pcap replayed forever in, null device out)
# with the live stats line, publishes a small batch through the shared-memory
# bridge (bridge/examples/publish.rs) while it runs, and prints the final
# counters and how many bridge messages arrived.
#   usage: bash scripts/demo.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --quiet --bins
cargo build --release --quiet -p tachyon-bridge --example publish
mkdir -p out
./target/release/tachyon-gen pcap --out out/demo.pcap --frames 20000 --topics 1000 --senders 100 \
  --dist zipf --zipf-s 1.1 --records 1-8 --payload 64 --malformed 0.02 --src-ips 64 --seed 1
echo "demo: running tachyon for ${SECS}s on net_pcap (in) -> net_null (out)"
BRIDGE=/dev/shm/tachyon-tachyon-demo.bridge   # the default path for --file-prefix tachyon-demo
rm -f out/demo-stats.json
./target/release/tachyon -l 0-1 --no-huge -m 1024 --no-pci --file-prefix tachyon-demo \
  --vdev "net_pcap0,rx_pcap=out/demo.pcap,infinite_rx=1" --vdev "net_null0,no-rx=1" \
  -- --config dpdk-config/demo.toml --duration "$SECS" --stats-json out/demo-stats.json &
TACHYON=$!
trap 'kill -INT "$TACHYON" 2>/dev/null || true' INT TERM
# Publish once the appliance has created its region (it says so on stderr).
for _ in $(seq 100); do
  [ -e "$BRIDGE" ] && break
  kill -0 "$TACHYON" 2>/dev/null || break
  sleep 0.1
done
if [ -e "$BRIDGE" ]; then
  ./target/release/examples/publish "$BRIDGE" | sed 's/^/demo: bridge client: /' || echo "demo: bridge client failed"
fi
wait "$TACHYON"
trap - INT TERM
python3 - <<'PY'
import json
t = json.load(open("out/demo-stats.json"))["totals"]
print(f"demo: bridge: {t['bridge_msgs_received']} message(s) published through the bridge arrived, "
      f"{t['bridge_msgs_admitted']} admitted, sent in {t['bridge_frames_sent']} frame(s)")
PY
echo "demo: final counters also in out/demo-stats.json"
