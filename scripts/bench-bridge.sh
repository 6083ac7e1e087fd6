#!/usr/bin/env bash
# Bridge throughput and latency (README "Performance", "Bridge throughput and
# latency"): builds release tachyon and the bridge's bench client, runs the
# matrix (1 and 2 workers x batch 1/100/1,000/10,000 x grouped/interleaved x
# wire/local, plus the in-process ring as the same-run peer), writes
# docs/bench/bridge.jsonl and prints the tables. As root (DPDK, /dev/shm).
#   usage: bash scripts/bench-bridge.sh [--quick] [--runs N] [--secs S] [--workers 1 2]
#                                       [--batches 1 100 ...] [--out FILE] [--bin-dir DIR]
#   full: 3 alternating repetitions of 1 s phases, about 7 minutes;
#   --quick: one repetition of 0.25 s phases, under a minute (writes bridge-quick.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
if [[ " $* " != *" --bin-dir "* ]]; then
  cargo build --release --quiet --bin tachyon
  cargo build --release --quiet -p tachyon-bridge --example bench
fi
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
exec "$PY" scripts/bench-bridge.py "$@"
