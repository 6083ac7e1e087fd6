#!/usr/bin/env bash
# Runs every test: installs what is missing, checks formatting and lints,
# then unit and integration tests (the integration tests start the real
# tachyon binary on DPDK virtual devices, with --no-huge).
#   usage: bash scripts/test.sh     (as root: DPDK needs it)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
# Benchmarks and examples must compile; the tests below run the rest.
cargo build --all-targets --quiet
log=$(mktemp)
set +e
cargo test --lib --bins --tests 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit "$status"
