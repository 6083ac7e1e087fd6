#!/usr/bin/env bash
# Soak: the appliance at full rate on virtual devices for DURATION seconds,
# with everything that happens to it in production happening at once:
#   - pcap replay (net_pcap, infinite_rx) into port 0, forwarded to a memif port;
#   - a memif peer (tachyon-gen live, client) that connects, sends, and leaves,
#     over and over (cleanly, or killed with SIGKILL on every other cycle);
#   - rule/limit reloads every 100 ms (SIGHUP, and /tachyon/reload through DPDK
#     telemetry every 2 s), alternating between two governance configs;
#   - /metrics scraped every 500 ms;
#   - bridge publishers with a subscriber (bridge/examples/bench) back to back.
# At the end it stops the appliance (SIGINT) and checks:
#   - received = transmitted + dropped (every reason), in total and per worker;
#   - every mbuf back in its pool;
#   - bridge: what the clients were told was accepted = what the rings
#     accepted = what the workers took + what is still in a ring, and what the
#     workers took = admitted + counted drops (rule/limits/no_route, no mbuf, oversize);
#   - every scrape answered 200, the appliance exited 0;
#   - RSS (VmRSS, sampled every second) flat: the last sample at most
#     max(8 MiB, 5 %) above the sample at the end of the warm-up (a fifth of the run, at most 60 s).
# Prints the figures and "soak: consistent: ..." (exit 0) or "soak: INCONSISTENT: ..." (exit 1).
#
#   usage: scripts/soak.sh DURATION_SECS [--bin-dir DIR] [--keep]
#   10 minutes for people: scripts/soak.sh 600   (builds release binaries first)
#   --bin-dir DIR: use DIR/tachyon, DIR/tachyon-gen and DIR/examples/bench (the tests pass target/debug).
#   --keep: keep the scratch directory (logs, stats, RSS samples) and print its path.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: scripts/soak.sh DURATION_SECS [--bin-dir DIR] [--keep]" >&2; exit 2; }
[ $# -ge 1 ] || usage
DURATION=$1; shift
[[ "$DURATION" =~ ^[0-9]+$ ]] && [ "$DURATION" -ge 5 ] || { echo "soak: DURATION must be a whole number of seconds, at least 5" >&2; exit 2; }
BIN_DIR=""; KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) [ $# -ge 2 ] || usage; BIN_DIR=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) usage ;;
  esac
done
if [ -z "$BIN_DIR" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
  cargo build --release --quiet --bins
  cargo build --release --quiet -p tachyon-bridge --example bench
  BIN_DIR=target/release
fi
TACHYON=$BIN_DIR/tachyon GEN=$BIN_DIR/tachyon-gen BENCH=$BIN_DIR/examples/bench
for b in "$TACHYON" "$GEN" "$BENCH"; do [ -x "$b" ] || { echo "soak: no executable $b" >&2; exit 2; }; done
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3

DIR=$(mktemp -d /tmp/tachyon-soak.XXXXXX)
PREFIX=tachyon-soak-$$
STOP=$DIR/stop
PIDS=()
cleanup() {
  touch "$STOP"
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${TPID:-}" ] && kill -KILL "$TPID" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ "$KEEP" = 1 ]; then echo "soak: files kept in $DIR"; else rm -rf "$DIR"; fi
}
trap cleanup EXIT

# Traffic and configs: port 0 (pcap replay) -> port 1 (memif) -> port 2 (null sink);
# bridge frames leave on port 2. Two governance variants, swapped on every reload.
"$GEN" pcap --frames 4096 --topics 1000 --dist zipf --senders 50 --records 1-4 --malformed 0.02 \
  --out "$DIR/replay.pcap" >/dev/null
write_config() { # $1 = file, $2 = rate of the limited topics
  cat > "$1" <<EOF
[[ports]]
id = 0
egress_port = 1
[[ports]]
id = 1
egress_port = 2
[[ports]]
id = 2
egress_port = 0

[bridge]
egress_port = 2

[governance]
default_action = "allow"
[[governance.topics]]
ids = "1-10"
rate = $2
burst = 1000
EOF
}
write_config "$DIR/a.toml" 200000
write_config "$DIR/b.toml" 300000
cp "$DIR/a.toml" "$DIR/soak.toml"
METRICS=127.0.0.1:$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SOCK=$DIR/memif.sock
BRIDGE=$DIR/soak.bridge

"$TACHYON" --lcores 0@0,1@1 --no-huge -m 512 --no-pci --log-level lib.eal:error --file-prefix "$PREFIX" \
  --vdev "net_pcap0,rx_pcap=$DIR/replay.pcap,infinite_rx=1" \
  --vdev "net_memif0,role=server,socket=$SOCK,socket-abstract=no,secret=soak" \
  --vdev net_null0,no-rx=1 \
  -- --config "$DIR/soak.toml" --metrics "$METRICS" --bridge "$BRIDGE" --quiet \
  --stats-json "$DIR/stats.json" >"$DIR/tachyon.out" 2>"$DIR/tachyon.err" &
TPID=$!
for _ in $(seq 600); do
  [ -S "$SOCK" ] && [ -e "$BRIDGE" ] && curl -sf -o /dev/null "http://$METRICS/metrics" && break
  kill -0 "$TPID" 2>/dev/null || { echo "soak: tachyon did not start:" >&2; cat "$DIR/tachyon.err" >&2; exit 1; }
  sleep 0.1
done
# Clock and naps without a fork (the reload loop runs every 100 ms on a busy machine).
now_us() { echo "${EPOCHREALTIME/./}"; }
START_US=$(now_us)
END_US=$((START_US + DURATION * 1000000))
remaining_ms() { echo $(((END_US - ${EPOCHREALTIME/./}) / 1000)); }
running() { [ ! -e "$STOP" ] && [ "${EPOCHREALTIME/./}" -lt "$END_US" ]; }
exec {NAP_FD}<> <(:)
nap() { read -rt "$1" -u "$NAP_FD" || :; }
echo "soak: $DURATION s, tachyon pid $TPID, metrics http://$METRICS/metrics, files in $DIR"

# RSS every second.
( while [ ! -e "$STOP" ] && kill -0 "$TPID" 2>/dev/null; do
    awk -v t="$(date +%s.%N)" '/^VmRSS:/ { print t, $2 }' "/proc/$TPID/status" >> "$DIR/rss.txt" 2>/dev/null || true
    sleep 1
  done ) & PIDS+=($!)

# Reloads: SIGHUP every 100 ms, the config swapped every second; /tachyon/reload every 2 s.
( n=0
  while running; do
    n=$((n + 1))
    if [ $((n % 10)) = 0 ]; then
      cp "$DIR/$([ $((n % 20)) = 0 ] && echo a || echo b).toml" "$DIR/soak.next" && mv "$DIR/soak.next" "$DIR/soak.toml"
    fi
    if [ $((n % 20)) = 0 ]; then
      echo /tachyon/reload | dpdk-telemetry.py -f "$PREFIX" >/dev/null 2>&1 && echo telemetry >> "$DIR/reloads.txt"
    else
      kill -HUP "$TPID" 2>/dev/null && echo sighup >> "$DIR/reloads.txt"
    fi
    nap 0.1
  done ) & PIDS+=($!)

# Scrapes every 500 ms.
( while running; do
    code=$(curl -s -o /dev/null --max-time 10 -w '%{http_code}' "http://$METRICS/metrics" || true)
    echo "$code" >> "$DIR/scrapes.txt"
    sleep 0.5
  done ) & PIDS+=($!)

# The memif peer: connects, sends ~1 s, leaves; every other cycle killed mid-send.
( n=0
  while running; do
    n=$((n + 1))
    peer=("$GEN" live --lcores 0@0 --no-huge -m 256 --no-pci --log-level lib.eal:error --file-prefix "$PREFIX-peer"
          --vdev "net_memif0,role=client,socket=$SOCK,socket-abstract=no,secret=soak"
          -- --rx-port 0 --drain-ms 0 --quiet --pool-frames 256)
    if [ $((n % 2)) = 1 ]; then
      "${peer[@]}" --duration 1 --stats-json "$DIR/peer.json" >/dev/null 2>>"$DIR/peer.err" \
        && $PY -c "import json; r=json.load(open('$DIR/peer.json')); print('clean', r['tx']['packets'], r['rx']['packets'])" >> "$DIR/peer.txt" \
        || echo "failed" >> "$DIR/peer.txt"
    else
      "${peer[@]}" --duration 30 >/dev/null 2>>"$DIR/peer.err" & p=$!
      sleep 1.5
      kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null || true
      echo "killed" >> "$DIR/peer.txt"
    fi
  done ) & PIDS+=($!)

# Bridge publishers and a subscriber, back to back, each run finished before the end.
( while running; do
    ms=$(($(remaining_ms) - 3000)); [ "$ms" -gt 5000 ] && ms=5000
    [ "$ms" -ge 1000 ] || break
    secs=$((ms / 1000)).$(printf %03d $((ms % 1000)))
    "$BENCH" --path "$BRIDGE" --batch 256 --shape grouped --secs "$secs" --no-half --no-pin --grace-ms 200 \
      --label soak >> "$DIR/bench.jsonl" 2>>"$DIR/bench.err" || echo '{"failed": true}' >> "$DIR/bench.jsonl"
  done ) & PIDS+=($!)

while running; do sleep 1; kill -0 "$TPID" 2>/dev/null || break; done
touch "$STOP"
for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
PIDS=()
ALIVE=1; kill -0 "$TPID" 2>/dev/null || ALIVE=0
TRC=0
if [ "$ALIVE" = 1 ]; then kill -INT "$TPID"; fi
# A shutdown that hangs is a failure too: SIGKILL after 60 s (status 137).
for _ in $(seq 600); do kill -0 "$TPID" 2>/dev/null || break; nap 0.1; done
kill -KILL "$TPID" 2>/dev/null || true
wait "$TPID" || TRC=$?
TPID=""
ELAPSED=$(((${EPOCHREALTIME/./} - START_US) / 1000000))

"$PY" - "$DIR" "$DURATION" "$ELAPSED" "$ALIVE" "$TRC" <<'EOF'
import json, os, sys
d, duration, elapsed, alive, trc = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1", int(sys.argv[5])
problems = []
def lines(name):
    p = os.path.join(d, name)
    return open(p).read().split("\n")[:-1] if os.path.exists(p) else []
if not alive:
    problems.append("tachyon died during the soak")
if trc != 0:
    problems.append(f"tachyon exited with status {trc}")
try:
    s = json.load(open(os.path.join(d, "stats.json")))
    s["totals"]["rx_packets"]
except Exception as e:
    print(open(os.path.join(d, "tachyon.err")).read()[-3000:], file=sys.stderr)
    print(f"soak: INCONSISTENT: no final report ({e})")
    sys.exit(1)

def conserved(name, v):
    dropped = sum(v["drops"].values())
    if v["dropped"] != dropped:
        problems.append(f"{name}: dropped {v['dropped']} != sum of reasons {dropped}")
    if v["rx_packets"] != v["tx_packets"] + dropped:
        problems.append(f"{name}: rx {v['rx_packets']} != tx {v['tx_packets']} + dropped {dropped}")
t = s["totals"]
conserved("total", t)
for i, w in enumerate(s["workers"]):
    conserved(f"worker {i}", w)
for pool in s["mempools"]:
    if pool["in_use_after_shutdown"] != 0:
        problems.append(f"mempool socket {pool['socket']}: {pool['in_use_after_shutdown']} mbufs not returned")

# Bridge: client view = ring view = worker view.
bench = [json.loads(l) for l in lines("bench.jsonl") if l.strip()]
if any(b.get("failed") for b in bench):
    problems.append(f"{sum(1 for b in bench if b.get('failed'))} bridge client run(s) failed")
client_accepted = sum(b.get("accepted", 0) for b in bench)
delivered = sum(b.get("delivered", 0) for b in bench)
overflow = sum(b.get("subscriber_overflow", 0) for b in bench)
shards = s["bridge"]["shards"]
ring_accepted = sum(x["accepted_msgs"] for x in shards)
in_ring = sum(x["ring_depth_msgs"] for x in shards)
taken = t["bridge_msgs_received"]
bridge_dropped = sum(t["bridge_drops"].values()) + t["bridge_msgs_no_mbuf"] + t["bridge_msgs_oversize"]
if client_accepted != ring_accepted:
    problems.append(f"bridge: clients were told {client_accepted} accepted, the rings counted {ring_accepted}")
if ring_accepted != taken + in_ring:
    problems.append(f"bridge: rings accepted {ring_accepted} != taken by workers {taken} + still in rings {in_ring}")
if taken != t["bridge_msgs_admitted"] + bridge_dropped:
    problems.append(f"bridge: taken {taken} != admitted {t['bridge_msgs_admitted']} + counted drops {bridge_dropped}")
if not bench:
    problems.append("no bridge client run")

scrapes = lines("scrapes.txt")
bad_scrapes = [c for c in scrapes if c != "200"]
if bad_scrapes or not scrapes:
    problems.append(f"{len(bad_scrapes)} of {len(scrapes)} scrapes failed ({sorted(set(bad_scrapes))})")
peer = lines("peer.txt")
if "failed" in peer:
    problems.append(f"{peer.count('failed')} clean memif peer cycle(s) failed (see peer.err)")
peer_tx = sum(int(l.split()[1]) for l in peer if l.startswith("clean"))
peer_rx = sum(int(l.split()[2]) for l in peer if l.startswith("clean"))
g = s["governance"]
reload_sent = lines("reloads.txt")

rss = [(float(a), int(b)) for a, b in (l.split() for l in lines("rss.txt"))]
mib = lambda kb: kb / 1024
if len(rss) < 3:
    problems.append("fewer than 3 RSS samples")
    rss_line = "rss: no samples"
else:
    t0 = rss[0][0]
    warm_at = min(60.0, duration / 5)
    warm = next((kb for ts, kb in rss if ts - t0 >= warm_at), rss[-1][1])
    end, peak = rss[-1][1], max(kb for _, kb in rss)
    allowed = max(8 * 1024, warm * 0.05)
    flat = end - warm <= allowed
    rss_line = (f"rss: start {mib(rss[0][1]):.1f} MiB, after warm-up ({warm_at:.0f} s) {mib(warm):.1f} MiB, "
                f"end {mib(end):.1f} MiB, max {mib(peak):.1f} MiB, {len(rss)} samples: "
                + ("flat" if flat else "GROWING"))
    if not flat:
        problems.append(f"RSS grew {mib(end - warm):.1f} MiB after warm-up (allowed {mib(allowed):.1f} MiB)")
    with open(os.path.join(d, "rss.csv"), "w") as f:
        f.writelines(f"{ts - t0:.1f},{kb}\n" for ts, kb in rss)

print(f"soak: {elapsed} s (asked {duration} s); packets rx {t['rx_packets']} tx {t['tx_packets']} "
      f"dropped {t['dropped']}; wire messages received {t['msgs_received']} admitted {t['msgs_admitted']}")
print(f"soak: bridge messages accepted {ring_accepted} (client runs {len(bench)}), admitted {t['bridge_msgs_admitted']}, "
      f"dropped {bridge_dropped}, left in rings {in_ring}; subscriber got {delivered}, overflow {overflow}")
print(f"soak: reloads ok {g['reloads_ok']} failed {g['reloads_failed']} (sent: {reload_sent.count('sighup')} SIGHUP, "
      f"{reload_sent.count('telemetry')} /tachyon/reload); scrapes {len(scrapes)}; memif peer cycles {len(peer)} "
      f"({sum(1 for l in peer if l == 'killed')} killed), peers sent {peer_tx} received {peer_rx}")
print(f"soak: {rss_line}")
if problems:
    for p in problems:
        print(f"soak: INCONSISTENT: {p}")
    sys.exit(1)
print("soak: consistent: rx = tx + dropped (total and per worker), every mbuf back, "
      "bridge accepted = taken + in ring, taken = admitted + counted drops, every scrape answered")
EOF
