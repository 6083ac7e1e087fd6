#!/usr/bin/env bash
# Runs every cargo-fuzz (libFuzzer) target for SECONDS each (default 60) and
# prints the executions and crashes per target.
#   usage: bash scripts/fuzz.sh [SECONDS] [TARGET...]
# Seeds come from fuzz/corpus/<target> (committed, written by
# `cargo run --example fuzz_seeds`) and fuzz/regressions/<target>; what the
# fuzzer finds beyond them goes to fuzz/work/<target> (not committed), crashes
# to fuzz/artifacts/<target>/.
# A crash input belongs in fuzz/regressions/<target>/ once fixed: the normal
# `cargo test` (tests/fuzz_regressions.rs) replays it.
# FUZZ_SANITIZER=none|address|... overrides the sanitizer (default address).
# Needs cargo-fuzz (installed if missing); runs on stable through RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(classify classify_segments config bridge_ring)
sanitizer=${FUZZ_SANITIZER:-address}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1

cd fuzz
cargo fuzz build --sanitizer "$sanitizer"
status=0
summary=()
for t in "${targets[@]}"; do
    mkdir -p "work/$t" "artifacts/$t" "regressions/$t"
    log=$(mktemp)
    before=$(find "artifacts/$t" -type f | wc -l)
    set +e
    cargo fuzz run --sanitizer "$sanitizer" "$t" "work/$t" "corpus/$t" "regressions/$t" -- \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    after=$(find "artifacts/$t" -type f | wc -l)
    execs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$log" | tail -1)
    rate=$(awk '/stat::average_exec_per_sec/ { print $2 }' "$log" | tail -1)
    crashes=$((after - before))
    if [ "$rc" -ne 0 ]; then
        status=1
        [ "$crashes" -gt 0 ] || crashes="1 (exit $rc)"
        echo "== $t: libFuzzer exited $rc; its report:" >&2
        grep -E "ERROR|panicked|SUMMARY|Test unit written|artifact" "$log" | head -20 >&2 || tail -20 "$log" >&2
    fi
    summary+=("$(printf '%-18s %14s %12s   %s' "$t" "${execs:-?}" "${rate:-?}" "$crashes")")
    rm -f "$log"
done
printf '%-18s %14s %12s   %s\n' target executions "execs/s" crashes
printf '%s\n' "${summary[@]}"
exit "$status"
