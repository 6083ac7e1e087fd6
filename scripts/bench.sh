#!/usr/bin/env bash
# Reproduces README's performance table on DPDK virtual devices (no NIC, no
# hugepages): throughput against dpdk-testpmd, scaling over workers, and
# transit latency through tachyon-gen live. Writes docs/bench/results.jsonl
# (one JSON object per case, with the CPU model and core count) and
# docs/bench/results.png. As root; the full run takes about 17 minutes.
#   usage: bash scripts/bench.sh [--short] [--runs N] [--secs S] [--out DIR]
#                                [--bin-dir DIR] [--no-chart] [--cases throughput scaling latency]
#   --short: one run of about a second per case (what the test suite runs).
#   --bin-dir: use these tachyon/tachyon-gen binaries instead of building release ones.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ " $* " != *" --bin-dir "* ]]; then
  bash scripts/setup.sh
  export PATH="$HOME/.cargo/bin:$PATH"
  cargo build --release --quiet --bins --example governance_cost
fi
# Debian's python3 has python3-matplotlib (from setup.sh) for the chart.
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
exec "$PY" scripts/bench.py "$@"
