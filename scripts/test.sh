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
cargo fmt --manifest-path python/Cargo.toml -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
CARGO_TARGET_DIR=target/python cargo clippy --manifest-path python/Cargo.toml --all-targets --quiet -- -D warnings
# The crates' docs (for the people who work on them: private items too) build without a warning.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --document-private-items --quiet
# Python: the package, the benchmarks and the scripts, with the package's ruff settings
# (python/pyproject.toml, extended by ruff.toml at the root).
.venv/bin/ruff check python benches scripts
.venv/bin/ruff format --check python benches scripts
# Benchmarks and examples must compile; the tests below run the rest.
cargo build --all-targets --quiet
log=$(mktemp)
set +e
status=0
# The appliance (unit and integration tests on DPDK vdevs) and the bridge crate.
cargo test --workspace --lib --bins --tests --no-fail-fast 2>&1 | tee "$log" || status=1
# The bridge's claim/commit/unblock protocol, model-checked with loom.
bash bridge/loom.sh 2>&1 | tee -a "$log" || status=1
# The Python package: its own tests (in-process harness), then against the real appliance.
(cd python && ../.venv/bin/python -m pytest -q -p no:cacheprovider 2>&1) | tee -a "$log" || status=1
set -e
# One closing line over every test binary.
# cargo's "test result:" lines and pytest's "N passed[, N failed]" line.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     /^[0-9]+ (passed|failed)/ && / in [0-9.]+s/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit "$status"
