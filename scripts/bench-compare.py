#!/usr/bin/env python3
"""Pass-through throughput of two tachyon builds against dpdk-testpmd io, in one
run, alternating: the before/after figure of a change.


DIR holds a release `tachyon` (and `tachyon-gen` in --after). One forwarding
lcore, net_pcap infinite replay of minimum-size frames (one 8-byte record each,
16,384 frames over 100,000 topics and 10,000 senders) into net_null, no
config; the after build also with the bridge off, to show what the bridge
stage costs a worker that has no bridge traffic.
Prints one JSON line per run and a median table with ratios to testpmd io.
"""

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (scripts/bench.py: the same testpmd and tachyon runners)

MIN_FRAMES = ["--topics", "100000", "--dist", "uniform", "--senders", "10000", "--records", "1",
              "--payload", "8", "--src-ips", "64"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True)
    p.add_argument("--after", required=True)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--secs", type=int, default=5)
    args = p.parse_args()
    ns = argparse.Namespace(secs=args.secs, runs=args.runs, short=False, bin_dir=args.after)
    b = bench.Bench(ns)
    work = Path(tempfile.mkdtemp(prefix="tachyon-compare-"))
    pcap, summary = work / "min.pcap", work / "min.json"
    bench.subprocess.run([str(Path(args.after) / "tachyon-gen"), "pcap", "--out", str(pcap), "--frames",
                          str(bench.PCAP_FRAMES), "--summary-json", str(summary), "--seed", "7", *MIN_FRAMES],
                         check=True, stdout=bench.subprocess.DEVNULL)
    vdevs = [f"net_pcap0,rx_pcap={pcap},infinite_rx=1", "net_null0,no-rx=1"]
    empty = work / "empty.toml"
    empty.write_text("")
    no_bridge = work / "no-bridge.toml"
    no_bridge.write_text("[bridge]\nenabled = false\n")
    cases = (("before", args.before, empty), ("after", args.after, empty), ("after_no_bridge", args.after, no_bridge))
    results = {"testpmd_io": [], **{name: [] for name, _, _ in cases}}
    for run in range(args.runs):
        results["testpmd_io"].append(b.testpmd("io", pcap))
        for name, bin_dir, config in cases:
            b.bin = Path(bin_dir)
            (pps, _, _), _ = b.tachyon("0@0,1@1", vdevs, config, f"{name}{run}")
            results[name].append(pps)
        print(json.dumps({"run": run, **{k: v[-1] for k, v in results.items()}}), flush=True)
    io = statistics.median(results["testpmd_io"])
    print(f"{'case':<12} {'Mpps':>8} {'/ testpmd io':>13}")
    for k, v in results.items():
        m = statistics.median(v)
        print(f"{k:<12} {m / 1e6:8.2f} {m / io:13.2f}")


if __name__ == "__main__":
    main()
