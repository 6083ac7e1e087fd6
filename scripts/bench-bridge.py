#!/usr/bin/env python3
"""Bridge throughput and latency (README "Performance", "Bridge throughput and
latency"). Called by scripts/bench-bridge.sh, which builds the release binaries.

Client: bridge/examples/bench.rs publishes 16-byte messages (a CLOCK_MONOTONIC
timestamp, a sequence number) at batch sizes 1, 100, 1,000 and 10,000, retrying
refused shards with a short back-off, while a subscriber thread (all topics)
counts deliveries and their publish->subscriber latency; first as fast as
accepted ("full"), then paced at half the accepted rate ("half").

Matrix: 1 and 2 workers x batch sizes x shapes (grouped: runs of 100 of one
topic+sender; interleaved: every message a different topic) x destinations
(wire: bridge frames out of net_null0; local: `[bridge] to_wire = false`,
subscribers only). Peer in the same run: the same client against a region
created in the client's own process, one draining thread per shard (ring plus
subscriber fan-out, no DPDK, framing or governance). Each repetition runs the
peer and the appliance cases for a worker count back to back (alternating which
goes first); figures are medians over repetitions, ratios = appliance / peer.
Standard library only.
"""

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BATCHES = [1, 100, 1000, 10000]
SHAPES = ["grouped", "interleaved"]
DESTS = ["wire", "local"]
EAL_COMMON = ["--no-huge", "-m", "1024", "--no-pci", "--log-level", "lib.eal:error"]
INGRESS_RING = 8 << 20
SUB_RING = 16 << 20


def log(msg):
    print(f"bench-bridge: {msg}", file=sys.stderr, flush=True)


def cpu_pressure():
    try:
        return float(re.search(r"avg60=([\d.]+)", Path("/proc/pressure/cpu").read_text()).group(1))
    except (OSError, AttributeError):
        return None


def machine():
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    dpdk = subprocess.run(["pkg-config", "--modversion", "libdpdk"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = (
        subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
        ).stdout.strip()
        != ""
    )
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "dpdk": dpdk,
        "commit": commit + ("-dirty" if dirty else ""),
        "cpu_pressure_avg60_at_start": cpu_pressure(),
    }


class Appliance:
    """tachyon with the bridge on and net_null0 as its only port."""

    def __init__(self, b, workers, dest, tag):
        self.dir = Path(tempfile.mkdtemp(prefix=f"tbb-{tag}-", dir=b.work))
        self.path = Path(f"/dev/shm/tachyon-bb-{os.getpid()}-{tag}.bridge")
        self.stats = self.dir / "stats.json"
        cfg = self.dir / "bridge.toml"
        text = (
            f"[bridge]\ningress_ring_bytes = {INGRESS_RING}\nsubscriber_ring_bytes = {SUB_RING}\n"
            f"to_wire = {'true' if dest == 'wire' else 'false'}\n"
        )
        if workers > 1:
            text += f"\n[workers]\nlcores = {list(range(1, workers + 1))}\n"
        cfg.write_text(text)
        cpus = os.cpu_count() or 1
        lcores = ",".join(f"{k}@{k % cpus}" for k in range(workers + 1))
        cmd = [
            str(b.bin / "tachyon"),
            "--lcores",
            lcores,
            *EAL_COMMON,
            f"--file-prefix=bb-{os.getpid()}-{tag}",
            "--vdev",
            "net_null0,no-rx=1",
            "--",
            "--config",
            str(cfg),
            "--bridge",
            str(self.path),
            "--duration",
            "3600",
            "--quiet",
            "--no-metrics",
            "--stats-json",
            str(self.stats),
        ]
        # Open for the appliance's whole life (closed in stop), not a with-block's.
        self.err = open(self.dir / "stderr.txt", "w+")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.err)
        deadline = time.time() + 30
        while not self.path.exists():
            if self.proc.poll() is not None or time.time() > deadline:
                self.err.seek(0)
                raise RuntimeError(f"tachyon did not come up: {' '.join(cmd)}\n{self.err.read()}")
            time.sleep(0.05)
        time.sleep(0.3)  # region created before the workers launch: let them start polling

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.err.seek(0)
        if self.proc.returncode != 0:
            raise RuntimeError(f"tachyon exited {self.proc.returncode}: {self.err.read()}")
        return json.loads(self.stats.read_text())


def totals(stats):
    """Bridge counters summed over workers, from --stats-json."""
    keys = [
        "bridge_msgs_received",
        "bridge_msgs_admitted",
        "bridge_frames_sent",
        "bridge_bytes_sent",
        "bridge_frames_tx_full",
        "bridge_msgs_no_mbuf",
        "bridge_msgs_oversize",
    ]
    out = {}
    for k in keys:
        out[k] = sum(w.get(k, 0) for w in stats.get("workers", [])) if "workers" in stats else stats.get(k, 0)
    return out


class Bench:
    def __init__(self, args):
        self.args = args
        self.bin = Path(args.bin_dir)
        self.work = Path(tempfile.mkdtemp(prefix="tachyon-bench-bridge-"))
        self.n = 0
        self.runs = []  # every client JSON line, tagged
        self.appliance_stats = []

    def client(self, extra, **tags):
        cmd = [
            str(self.bin / "examples" / "bench"),
            "--secs",
            str(self.args.secs),
            "--grace-ms",
            str(self.args.grace_ms),
            "--ingress-ring-bytes",
            str(INGRESS_RING),
            "--subscriber-ring-bytes",
            str(SUB_RING),
            *extra,
        ]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {p.stderr}")
        for line in p.stdout.splitlines():
            r = {**json.loads(line), **tags}
            self.runs.append(r)
            if r["phase"] == "full":
                log(
                    f"{tags['rep']} {r['target']:9} w={tags['workers']} {tags['dest']:5} {r['shape']:11} "
                    f"b={r['batch']:<5} {r['accepted_per_s'] / 1e6:7.2f} M/s accepted, "
                    f"{r['delivered_per_s'] / 1e6:7.2f} M/s delivered"
                )
            else:
                log(f"{'':>36} half: p50 {r['lat_p50_us']} us, p99 {r['lat_p99_us']} us")

    def cases(self):
        return [(shape, batch) for shape in SHAPES for batch in self.args.batches]

    def peer(self, workers, rep):
        for shape, batch in self.cases():
            self.client(
                ["--in-process", "--shards", str(workers), "--batch", str(batch), "--shape", shape],
                rep=rep,
                workers=workers,
                dest="inproc",
            )

    def appliance(self, workers, dest, rep):
        self.n += 1
        app = Appliance(self, workers, dest, f"{workers}{dest}{self.n}")
        try:
            for shape, batch in self.cases():
                self.client(
                    ["--path", str(app.path), "--batch", str(batch), "--shape", shape],
                    rep=rep,
                    workers=workers,
                    dest=dest,
                )
        finally:
            stats = app.stop()
        t = totals(stats)
        workers_seen = [w.get("bridge_msgs_received", 0) for w in stats.get("workers", [])]
        self.appliance_stats.append(
            {"rep": rep, "workers": workers, "dest": dest, **t, "msgs_received_per_worker": workers_seen}
        )
        if dest == "local" and t["bridge_frames_sent"] != 0:
            raise RuntimeError(f"to_wire = false but bridge_frames_sent = {t['bridge_frames_sent']}")
        if dest == "wire" and t["bridge_frames_sent"] == 0:
            raise RuntimeError("wire destination but no bridge frame was sent")
        if workers > 1 and min(workers_seen or [0]) == 0:
            raise RuntimeError(f"{workers} workers: some worker drained nothing: {workers_seen}")
        log(f"appliance w={workers} {dest}: {t}")

    def run(self):
        t0 = time.time()
        for rep in range(self.args.runs):
            for workers in self.args.workers:
                steps = [
                    lambda w=workers, r=rep: self.peer(w, r),
                    *((lambda d=d, w=workers, r=rep: self.appliance(w, d, r)) for d in DESTS),
                ]
                if rep % 2 == 1:
                    steps.reverse()
                for s in steps:
                    s()
        log(f"matrix done in {time.time() - t0:.0f} s")


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(b, meta):
    groups = {}
    for r in b.runs:
        key = (r["workers"], r["dest"], r["shape"], r["batch"], r["phase"])
        groups.setdefault(key, []).append(r)
    out = []
    for (workers, dest, shape, batch, phase), rs in sorted(groups.items()):
        out.append(
            {
                "kind": "bridge",
                "workers": workers,
                "dest": dest,
                "shape": shape,
                "batch": batch,
                "phase": phase,
                "accepted_per_s": med(r["accepted_per_s"] for r in rs),
                "delivered_per_s": med(r["delivered_per_s"] for r in rs),
                "offered_per_s": med(r["offered_per_s"] for r in rs),
                "lat_p50_us": med(r["lat_p50_us"] for r in rs),
                "lat_p99_us": med(r["lat_p99_us"] for r in rs),
                "lat_p999_us": med(r["lat_p999_us"] for r in rs),
                "subscriber_overflow": sum(r["subscriber_overflow"] for r in rs),
                "runs": [
                    {
                        k: r[k]
                        for k in (
                            "rep",
                            "accepted_per_s",
                            "delivered_per_s",
                            "lat_p50_us",
                            "lat_p99_us",
                            "refused_parts",
                            "backoff_sleeps",
                            "subscriber_overflow",
                            "secs",
                        )
                    }
                    for r in rs
                ],
            }
        )
    peer = {(o["workers"], o["shape"], o["batch"], o["phase"]): o for o in out if o["dest"] == "inproc"}
    for o in out:
        p = peer.get((o["workers"], o["shape"], o["batch"], o["phase"]))
        if o["dest"] != "inproc" and p and p["accepted_per_s"]:
            o["ratio_to_inproc"] = o["accepted_per_s"] / p["accepted_per_s"]
            if o["delivered_per_s"] and p["delivered_per_s"]:
                o["delivered_ratio_to_inproc"] = o["delivered_per_s"] / p["delivered_per_s"]
    return [{"kind": "meta", **meta}] + out + [{"kind": "appliance_counters", **s} for s in b.appliance_stats]


def m(x):
    return "—" if x is None else f"{x / 1e6:.2f}"


def us(x):
    return "—" if x is None else f"{x:.0f}" if x >= 100 else f"{x:.1f}"


def ratio_note(r):
    return f" ({r['ratio_to_inproc']:.2f})" if "ratio_to_inproc" in r else ""


def print_rows(rows, batches, cell, idx, phase):
    """One markdown table: a row per workers/shape/destination, a column per batch size, `cell(r)` in each."""
    names = {"inproc": "in-process ring (peer)", "wire": "appliance, wire", "local": "appliance, local"}
    print("| workers | shape | destination | " + " | ".join(f"batch {b:,}" for b in batches) + " |")
    print("|---|---|---|" + "---:|" * len(batches))
    for w in sorted({r["workers"] for r in rows}):
        for shape in SHAPES:
            for dest in ["inproc", *DESTS]:
                cells = []
                for bt in batches:
                    r = idx.get((w, dest, shape, bt, phase))
                    cells.append("—" if not r else cell(r))
                print(f"| {w} | {shape} | {names[dest]} | " + " | ".join(cells) + " |")


def table(lines, batches):
    rows = [line for line in lines if line.get("kind") == "bridge"]
    idx = {(r["workers"], r["dest"], r["shape"], r["batch"], r["phase"]): r for r in rows}
    print("\nThroughput: accepted M msgs/s (ratio to the in-process ring) [delivered to the subscriber, M/s]")
    print_rows(
        rows, batches, lambda r: f"{m(r['accepted_per_s'])}{ratio_note(r)} [{m(r['delivered_per_s'])}]", idx, "full"
    )
    print("\nLatency publish -> subscriber at half the accepted rate: P50 / P99 µs")
    print_rows(rows, batches, lambda r: f"{us(r['lat_p50_us'])} / {us(r['lat_p99_us'])}", idx, "half")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one repetition of short phases (< 60 s)")
    ap.add_argument("--runs", type=int, help="repetitions (default 3, quick 1)")
    ap.add_argument("--secs", type=float, help="seconds per phase (default 1.0, quick 0.25)")
    ap.add_argument("--grace-ms", type=int, default=None)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batches", type=int, nargs="+", default=BATCHES)
    ap.add_argument("--out", help="JSON lines (default docs/bench/bridge.jsonl, quick: bridge-quick.jsonl)")
    ap.add_argument("--bin-dir", default=str(ROOT / "target" / "release"))
    a = ap.parse_args()
    a.runs = a.runs or (1 if a.quick else 3)
    a.secs = a.secs or (0.25 if a.quick else 1.0)
    a.grace_ms = a.grace_ms if a.grace_ms is not None else (100 if a.quick else 200)
    out = Path(a.out or ROOT / "docs" / "bench" / ("bridge-quick.jsonl" if a.quick else "bridge.jsonl"))
    meta = {
        **machine(),
        "mode": "quick" if a.quick else "full",
        "runs": a.runs,
        "secs_per_phase": a.secs,
        "payload_bytes": 16,
        "ingress_ring_bytes": INGRESS_RING,
        "subscriber_ring_bytes": SUB_RING,
    }
    b = Bench(a)
    b.run()
    meta["cpu_pressure_avg60_at_end"] = cpu_pressure()
    lines = summarize(b, meta)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(line) + "\n" for line in lines))
    log(f"wrote {out}")
    table(lines, a.batches)


if __name__ == "__main__":
    main()
