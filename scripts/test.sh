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
cargo test --all-targets 2>&1 | tee /tmp/tachyon-test.log
