#!/usr/bin/env python3
"""Minimum-size frames through two tachyon builds, pass-through and governed,
against dpdk-testpmd io and DPDK's l3fwd, in one run, alternating: the
before/after figure of a change, and the line-rate table of issue 12.

One forwarding lcore, net_pcap infinite replay of minimum-size frames (one
8-byte record each, 16,384 frames over 100,000 topics and 10,000 senders,
addressed to 198.18.1.1 so that l3fwd's LPM routes them to port 1) into
net_null. Pass-through runs with an empty config; governed with
dpdk-config/bench-governance.toml (a bucket per topic and per sender, rules);
governed_some_topics with dpdk-config/bench-governance-some-topics.toml (1,000
of the 100,000 topics limited, no default).
l3fwd is built by scripts/build-l3fwd.sh. Prints one JSON line per run, then
a median table with ratios to testpmd io; --out appends the medians as JSON
lines to a file.

  usage: bench-compare.py --before DIR --after DIR [--runs N] [--secs S] [--out FILE]
DIR holds release `tachyon` and `tachyon-gen` binaries.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench

ROOT = Path(__file__).resolve().parent.parent


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True)
    p.add_argument("--after", required=True)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--secs", type=int, default=5)
    p.add_argument("--out", help="append the median of each case as a JSON line to this file")
    args = p.parse_args()
    ns = argparse.Namespace(secs=args.secs, runs=args.runs, short=False, bin_dir=args.after)
    b = bench.Bench(ns)
    l3fwd = (
        subprocess.run(["bash", str(ROOT / "scripts" / "build-l3fwd.sh")], check=True, capture_output=True, text=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    work = Path(tempfile.mkdtemp(prefix="tachyon-compare-"))
    pcap, summary = work / "min.pcap", work / "min.json"
    subprocess.run(
        [
            str(Path(args.after) / "tachyon-gen"),
            "pcap",
            "--out",
            str(pcap),
            "--frames",
            str(bench.PCAP_FRAMES),
            "--summary-json",
            str(summary),
            "--seed",
            "7",
            *bench.MIN_FRAMES,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    vdevs = [f"net_pcap0,rx_pcap={pcap},infinite_rx=1", "net_null0,no-rx=1"]
    empty = work / "empty.toml"
    empty.write_text("")
    governed = bench.GOVERNANCE_CONFIG
    builds = (("before", args.before), ("after", args.after))
    modes = (
        ("pass_through", empty),
        ("governed", governed),
        ("governed_some_topics", bench.SOME_TOPICS_CONFIG),
    )
    cases = {f"{build}_{mode}": (Path(bin_dir), config) for build, bin_dir in builds for mode, config in modes}
    results = {"testpmd_io": [], "l3fwd": [], **{name: [] for name in cases}}
    for run in range(args.runs):  # alternate, so that drift hits every case alike
        results["testpmd_io"].append(b.testpmd("io", pcap))
        results["l3fwd"].append(b.l3fwd(pcap, l3fwd))
        # Each mode's two builds run back to back, the first one swapped every
        # round (ABBA): a host whose speed drifts within a round then favours
        # neither build.
        order = builds if run % 2 == 0 else builds[::-1]
        for mode, _ in modes:
            for build, _ in order:
                name = f"{build}_{mode}"
                b.bin, config = cases[name]
                (pps, _, _), _ = b.tachyon("0@0,1@1", vdevs, config, f"{name}{run}")
                results[name].append(pps)
        print(json.dumps({"run": run, **{k: round(v[-1] / 1e6, 3) for k, v in results.items()}}), flush=True)
    io = statistics.median(results["testpmd_io"])
    print(f"{'case':<28} {'Mpps':>8} {'/ testpmd io':>13} {'paired':>7}")
    lines = []
    for k, v in results.items():
        m = statistics.median(v)
        paired = bench.paired_ratio(v, results["testpmd_io"])
        print(f"{k:<28} {m / 1e6:8.2f} {m / io:13.2f} {paired:7.2f}")
        lines.append(
            {
                "kind": "line_rate",
                "case": k,
                "mpps": m / 1e6,
                "ratio_vs_testpmd_io": m / io,
                "paired_ratio_vs_testpmd_io": paired,
                "runs_mpps": [x / 1e6 for x in v],
                "secs_per_run": args.secs,
                **b.machine,
            }
        )
    if args.out:
        with open(args.out, "a") as f:
            for line in lines:
                f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
