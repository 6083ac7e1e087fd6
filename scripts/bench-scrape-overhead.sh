#!/usr/bin/env bash
# Does scraping /metrics slow the workers? One tachyon run (release, net_pcap -> net_null,
# -l 0-1), alternating windows with /metrics scraped every 100 ms by curl (pinned to the
# control CPU 0) and without. Per window: packets (from a scrape at each end, in both modes),
# wall time, and the worker thread's own CPU time (schedstat), so time other processes take
# from the worker's CPU does not count against scraping.
#   usage: bash scripts/bench-scrape-overhead.sh        (as root; WIN=secs ROUNDS=n ISOLATE=1)
# ISOLATE=1 makes the worker SCHED_FIFO, as isolcpus would on an appliance: other processes
# then stay off its CPU (for the length of the run).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
T=${CARGO_TARGET_DIR:-target}/release
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
"$T/tachyon-gen" pcap --frames 4096 --out "$W/t.pcap" >/dev/null
PORT=${PORT:-19898}; WIN=${WIN:-6}; ROUNDS=${ROUNDS:-5}
"$T/tachyon" -l 0-1 --no-huge -m 512 --no-pci --log-level lib.eal:error --file-prefix tachyon-bench-$$ \
  --vdev "net_pcap0,rx_pcap=$W/t.pcap,infinite_rx=1" --vdev net_null0,no-rx=1 \
  -- --duration $((ROUNDS * 2 * WIN + 12)) --quiet --metrics 127.0.0.1:$PORT > "$W/live.txt" 2> "$W/err.txt" &
APP=$!
sleep 6
TID=$(grep -l '^rte-worker-1$' /proc/$APP/task/*/comm | cut -d/ -f5)
if [ "${ISOLATE:-0}" = 1 ]; then chrt -f -p 1 "$TID"; fi
mark() { # wall_ns worker_cpu_ns packets_processed
  local rx
  rx=$(curl -s http://127.0.0.1:$PORT/metrics | awk '/^tachyon_packets_processed_total/ {s += $2} END {printf "%d", s}')
  echo "$(date +%s%N) $(cut -d' ' -f1 /proc/$APP/task/$TID/schedstat) $rx"
}
for _ in $(seq "$ROUNDS"); do
  for mode in off on; do
    a=$(mark)
    if [ $mode = on ]; then
      taskset -c 0 bash -c "while :; do curl -s -o /dev/null http://127.0.0.1:$PORT/metrics; sleep 0.1; done" &
      S=$!
    fi
    sleep "$WIN"
    if [ $mode = on ]; then kill $S; wait $S 2>/dev/null || true; fi
    echo "$mode $a $(mark)" >> "$W/windows.txt"
  done
done
wait $APP
python3 - "$W/windows.txt" <<'PY'
import statistics, sys
per = {"off": [], "on": []}
for w in open(sys.argv[1]):
    mode, t0, c0, p0, t1, c1, p1 = w.split()
    packets, wall, cpu = int(p1) - int(p0), int(t1) - int(t0), int(c1) - int(c0)
    per[mode].append((packets / wall * 1e3, packets / cpu * 1e3))
    print(f"{mode:3} {packets / wall * 1e3:7.3f} Mpps wall | {packets / cpu * 1e3:7.3f} Mpps per worker-CPU-second"
          f" | worker had {cpu / wall:6.1%} of its CPU")
for i, name in ((0, "wall clock"), (1, "per worker-CPU-second")):
    off, on = (statistics.median(v[i] for v in per[m]) for m in ("off", "on"))
    print(f"median {name}: no scraping {off:.3f} Mpps, scraped every 100 ms {on:.3f} Mpps, ratio {on / off:.4f}")
offs, ons = [v[1] for v in per["off"]], [v[1] for v in per["on"]]
paired = [on / ((offs[i] + offs[i + 1]) / 2) for i, on in enumerate(ons) if i + 1 < len(offs)]
if paired:
    print("each scraped window against the unscraped ones either side:", " ".join(f"{p:.3f}" for p in paired),
          f"| median {statistics.median(paired):.4f}")
PY
