#!/usr/bin/env python3
"""Runs the README's performance table on DPDK virtual devices (no NIC, no
hugepages) and writes it as JSON lines plus a PNG chart. Called by
scripts/bench.sh, which builds the release binaries first.

Cases, each as medians over alternating runs:
  throughput  dpdk-testpmd io and macswap, tachyon with governance off and on,
              one forwarding lcore, net_pcap (infinite replay) -> net_null
  scaling     tachyon with 1 worker and with as many as the machine allows,
              one pcap RX queue per worker (same load per worker)
  latency     tachyon-gen live <-> tachyon over net_memif: capacity, then
              P50/P99/P99.9 transit at 10 %, 50 % and 90 % of it
  line_rate   minimum-size frames (one 8-byte record, 100,000 topics uniform,
              10,000 senders): testpmd io, DPDK's l3fwd (scripts/build-l3fwd.sh;
              left out of --short), tachyon pass-through and governed
              (bench-governance.toml), governed again with Zipf 1.1 topics,
              governed with 1,000 topics limited and no default
              (bench-governance-some-topics.toml), one forwarding lcore;
              and governed scaling, 1 and 2 workers
  governance  the governance cost per frame (examples/governance_cost) at 1k,
              100k and 1M topics, Zipf 1.1 and uniform, and at 1-32 records
Only the Python standard library is needed; the chart wants matplotlib.
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOVERNANCE_CONFIG = ROOT / "dpdk-config" / "bench-governance.toml"
# 1,000 of the 100,000 topics limited, no default: the other frames skip the tables.
SOME_TOPICS_CONFIG = ROOT / "dpdk-config" / "bench-governance-some-topics.toml"
PASS_THROUGH_CONFIG = ROOT / "dpdk-config" / "bench-pass-through.toml"
# The traffic of every case: 100,000 topics (Zipf 1.1), 10,000 senders, 1-8 records.
TRAFFIC = [
    "--topics",
    "100000",
    "--dist",
    "zipf",
    "--zipf-s",
    "1.1",
    "--senders",
    "10000",
    "--records",
    "1-8",
    "--payload",
    "64",
    "--src-ips",
    "64",
    "--sticky-flows",
]
# Minimum-size frames, addressed so that l3fwd's LPM routes them to port 1.
MIN_FRAMES = [
    "--topics",
    "100000",
    "--dist",
    "uniform",
    "--senders",
    "10000",
    "--records",
    "1",
    "--payload",
    "8",
    "--src-ips",
    "64",
    "--dst-ip",
    "198.18.1.1",
]
# The governance sweep: (topics, popularity, records per frame).
SWEEP = [(t, d, 1) for t in (1000, 100000, 1000000) for d in ("zipf", "uniform")] + [
    (100000, "zipf", r) for r in (4, 16, 32)
]
# net_pcap keeps the whole capture in mbufs; this leaves room in a 32k pool.
PCAP_FRAMES = 16384
LOADS = [0.1, 0.5, 0.9]
EAL_COMMON = ["--no-huge", "--no-pci", "--log-level", "lib.eal:error"]


def spread_lcores(forwarding):
    """EAL --lcores for a main lcore and `forwarding` lcores: lcore k on CPU k mod cores (so on 2 CPUs the
    second forwarding lcore shares CPU 0 with the mostly sleeping main lcore)."""
    cpus = os.cpu_count() or 2
    return ",".join(f"{k}@{k % cpus}" for k in range(forwarding + 1))


def paired_ratio(runs, peer_runs):
    """Median over alternation rounds of (this run / the peer's run in the same round). On a host whose speed
    drifts between rounds, this pairs each run with the peer measured beside it, where the ratio of medians
    can pair a quiet round of one with a busy round of the other."""
    return statistics.median(r / p for r, p in zip(runs, peer_runs, strict=True))


def stop(proc):
    """SIGINT, as a user would stop a DPDK app; killed if it has not exited within 15 s."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def machine():
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    dpdk = subprocess.run(["pkg-config", "--modversion", "libdpdk"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "dpdk": dpdk,
        "commit": commit,
        "cpu_pressure_avg60_at_start": cpu_pressure(),
    }


def cpu_pressure():
    """Share of time runnable tasks waited for a CPU over the last minute (other tenants, on a VM)."""
    try:
        return float(re.search(r"avg60=([\d.]+)", Path("/proc/pressure/cpu").read_text()).group(1))
    except (OSError, AttributeError):
        return None


def telemetry(sock, command):
    """One DPDK telemetry command over the v2 socket of a running DPDK process."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as c:
        c.settimeout(5)
        c.connect(str(sock))
        c.recv(1 << 16)  # the greeting
        c.send(command.encode())
        return json.loads(c.recv(1 << 20))


def port_packets(sock):
    """(packets received on port 0, packets sent on port 1)."""
    rx = telemetry(sock, "/ethdev/stats,0")["/ethdev/stats"]["ipackets"]
    tx = telemetry(sock, "/ethdev/stats,1")["/ethdev/stats"]["opackets"]
    return rx, tx


class Bench:
    def __init__(self, args):
        self.args = args
        self.bin = Path(args.bin_dir)
        self.work = Path(tempfile.mkdtemp(prefix="tachyon-bench-"))
        self.machine = machine()
        self.prefix_n = 0
        self.lines = []

    def prefix(self, name):
        self.prefix_n += 1
        return f"--file-prefix=bench-{os.getpid()}-{name}-{self.prefix_n}"

    def emit(self, obj):
        obj = {
            **obj,
            "mode": "short" if self.args.short else "full",
            "runs": self.args.runs,
            "secs_per_run": self.args.secs,
            **self.machine,
        }
        self.lines.append(obj)
        log(json.dumps(obj))

    # ---- inputs -------------------------------------------------------------
    def make_pcap(self, name, seed):
        """The mixed-size capture; returns its path and mean records per frame."""
        path, summary = self.generate(name, seed, TRAFFIC)
        return path, summary["messages"] / max(summary["valid_frames"], 1)

    def make_min_pcap(self, name, seed, dist="uniform"):
        """Minimum-size frames; `dist`: the topics' popularity (uniform, or zipf for Zipf 1.1)."""
        frames = list(MIN_FRAMES)
        frames[frames.index("--dist") + 1] = dist
        return self.generate(name, seed, frames)[0]

    def generate(self, name, seed, traffic):
        """A tachyon-gen capture of PCAP_FRAMES frames; returns its path and tachyon-gen's summary."""
        path, summary = self.work / f"{name}.pcap", self.work / f"{name}.json"
        gen = [str(self.bin / "tachyon-gen"), "pcap", "--out", str(path), "--frames", str(PCAP_FRAMES)]
        subprocess.run(
            [*gen, "--summary-json", str(summary), "--seed", str(seed), *traffic],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return path, json.loads(summary.read_text())

    # ---- one run of each program -----------------------------------------------
    def testpmd(self, mode, pcap, cores=1):
        """Mean Rx-pps of port 0 over the measured seconds (the first reading is start-up). With `cores` > 1,
        `pcap` is a list: one RX queue (and forwarding lcore) per capture, lcores placed as tachyon's workers."""
        pcaps = pcap if isinstance(pcap, list) else [pcap]
        rx = ",".join(f"rx_pcap={p}" for p in pcaps)
        cmd = [
            "dpdk-testpmd",
            "--lcores",
            spread_lcores(cores),
            "-m",
            "512",
            *EAL_COMMON,
            self.prefix("testpmd"),
            "--vdev",
            f"net_pcap0,{rx},infinite_rx=1",
            "--vdev",
            "net_null0,no-rx=1",
            "--",
            f"--forward-mode={mode}",
            "--stats-period",
            "1",
            "--total-num-mbufs",
            str(32768 * cores),
            f"--rxq={cores}",
            f"--txq={cores}",
            f"--nb-cores={cores}",
        ]
        readings = []
        port = None
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        deadline = time.monotonic() + self.args.secs + 30
        try:
            for line in proc.stdout:
                m = re.search(r"NIC statistics for port (\d+)", line)
                if m:
                    port = int(m.group(1))
                m = re.search(r"Rx-pps:\s+(\d+)", line)
                if m and port == 0:
                    readings.append(int(m.group(1)))
                    if len(readings) > self.args.secs:
                        break
                if time.monotonic() > deadline:
                    break
        finally:
            stop(proc)
        measured = readings[1:]
        if not measured:
            raise RuntimeError(f"testpmd {mode}: no Rx-pps readings ({' '.join(cmd)})")
        return statistics.mean(measured)

    def l3fwd(self, pcap, binary):
        """Rx pps of DPDK's l3fwd (LPM, one lcore) on port 0, read twice over DPDK telemetry (l3fwd prints
        no rates). The pcap's destination addresses must route to port 1 (198.18.1.0/24). `--parse-ptype`: the
        virtual devices report no packet types, so l3fwd parses them in software, as it would on such a NIC."""
        prefix = self.prefix("l3fwd")
        cmd = [
            binary,
            "-l",
            "1",
            "-m",
            "1024",
            *EAL_COMMON,
            prefix,
            "--vdev",
            f"net_pcap0,rx_pcap={pcap},infinite_rx=1",
            "--vdev",
            "net_null0,no-rx=1",
            "--",
            "-p",
            "0x3",
            "-P",
            "--parse-ptype",
            "--config",
            "(0,0,1),(1,0,1)",
        ]
        sock = Path("/var/run/dpdk") / prefix.split("=", 1)[1] / "dpdk_telemetry.v2"
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        try:
            deadline = time.monotonic() + 30
            while not sock.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"l3fwd did not start: {proc.stderr.read()[-2000:]}")
                time.sleep(0.2)
            time.sleep(1.5)  # start-up, as the first reading of the others is left out
            (rx0, tx0), t0 = port_packets(sock), time.monotonic()
            time.sleep(self.args.secs)
            (rx1, tx1), t1 = port_packets(sock), time.monotonic()
        finally:
            stop(proc)
        if tx1 - tx0 < (rx1 - rx0) * 0.99:
            raise RuntimeError(f"l3fwd did not forward to port 1: rx {rx1 - rx0}, tx {tx1 - tx0}")
        return (rx1 - rx0) / (t1 - t0)

    def tachyon(self, lcores, vdevs, config, tag):
        """(rx pps, msgs in/s, msgs admitted/s) from the live lines, the first left out, and the final stats."""
        stats = self.work / f"{tag}-stats.json"
        cmd = [str(self.bin / "tachyon"), "--lcores", lcores, "-m", "1024", *EAL_COMMON, self.prefix(tag)]
        for v in vdevs:
            cmd += ["--vdev", v]
        cmd += [
            "--",
            "--no-metrics",
            "--config",
            str(config),
            "--duration",
            str(self.args.secs + 1),
            "--stats-json",
            str(stats),
        ]
        out = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=self.args.secs + 60)
        if out.returncode != 0:
            raise RuntimeError(f"tachyon {tag} failed: {out.stderr.strip()[-2000:]}")
        rows = []
        for line in out.stdout.splitlines():
            m = re.search(r"rx\s+([\d.]+) Mpps .*msgs in\s+([\d.]+) M/s, admitted\s+([\d.]+) M/s", line)
            if m:
                rows.append(tuple(float(x) * 1e6 for x in m.groups()))
        measured = rows[1:] or rows
        if not measured:
            raise RuntimeError(f"tachyon {tag}: no live lines in: {out.stdout[-2000:]}")
        return tuple(statistics.mean(col) for col in zip(*measured, strict=True)), json.loads(stats.read_text())

    def loop(self, rate, latency, tag):
        """tachyon-gen live <-> tachyon over memif; returns (gen report, tachyon stats)."""
        sock = self.work / f"{tag}-{self.prefix_n}.sock"
        t_stats, g_stats = self.work / f"{tag}-tachyon.json", self.work / f"{tag}-gen.json"
        tachyon = subprocess.Popen(
            [
                str(self.bin / "tachyon"),
                "--lcores",
                "0@0,1@1",
                "-m",
                "512",
                *EAL_COMMON,
                self.prefix(tag + "-t"),
                "--vdev",
                f"net_memif0,role=server,socket={sock},socket-abstract=no",
                "--",
                "--no-metrics",
                "--config",
                str(self.config_off()),
                "--quiet",
                "--stats-json",
                str(t_stats),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        g_stats.unlink(missing_ok=True)
        gen_cmd = [
            str(self.bin / "tachyon-gen"),
            "live",
            "--lcores",
            "0@0",
            "-m",
            "256",
            *EAL_COMMON,
            self.prefix(tag + "-g"),
            "--vdev",
            f"net_memif0,role=client,socket={sock},socket-abstract=no",
            "--",
            "--rx-port",
            "0",
            "--rate",
            str(int(rate)),
            "--duration",
            str(self.args.secs),
            "--warmup",
            str(min(0.5, self.args.secs / 4)),
            "--quiet",
            "--stats-json",
            str(g_stats),
            "--link-wait",
            "20",
            "--settle-ms",
            "1500",
            "--linger",
            "30",
            *TRAFFIC,
        ]
        if latency:
            # Small bursts: a frame should not wait for 31 others to be built before it leaves.
            gen_cmd += ["--latency", "--burst", "8"]
        gen = None
        try:
            for _ in range(200):  # the server creates its socket once its port is probed
                if sock.exists() or tachyon.poll() is not None:
                    break
                time.sleep(0.05)
            gen = subprocess.Popen(
                gen_cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            # The generator writes its results, then keeps the memif link up until tachyon
            # has stopped polling it (net_memif unmaps the rings of a side that leaves).
            deadline = time.monotonic() + self.args.secs + 60
            while not g_stats.exists() and gen.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            if tachyon.poll() is None:
                tachyon.send_signal(signal.SIGINT)
            _, err = tachyon.communicate(timeout=30)
            if gen is not None:
                _, gen_err = gen.communicate(timeout=60)
        if gen.returncode != 0:
            raise RuntimeError(f"tachyon-gen live {tag} failed: {gen_err.strip()[-2000:]}")
        if tachyon.returncode != 0:
            raise RuntimeError(f"tachyon (memif server) {tag} failed: {err.strip()[-2000:]}")
        return json.loads(g_stats.read_text()), json.loads(t_stats.read_text())

    def config_off(self):
        return PASS_THROUGH_CONFIG

    def governance_refused(self):
        """Why this tachyon build refuses the governance config, or None when it takes it."""
        out = subprocess.run(
            [str(self.bin / "tachyon"), "-l", "0-1", "--", "--config", str(GOVERNANCE_CONFIG), "--plan"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return None if out.returncode == 0 else (out.stderr.strip() or out.stdout.strip())[-500:]

    # ---- cases --------------------------------------------------------------
    def throughput(self):
        pcap, msgs_per_frame = self.make_pcap("traffic", 1)
        pcap_vdevs = [f"net_pcap0,rx_pcap={pcap},infinite_rx=1", "net_null0,no-rx=1"]
        cases = {
            "testpmd-io": lambda: (self.testpmd("io", pcap), None, None),
            "testpmd-macswap": lambda: (self.testpmd("macswap", pcap), None, None),
            "tachyon-governance-off": lambda: self.tachyon("0@0,1@1", pcap_vdevs, self.config_off(), "off")[0],
            "tachyon-governance-on": lambda: self.tachyon("0@0,1@1", pcap_vdevs, GOVERNANCE_CONFIG, "on")[0],
        }
        refused = self.governance_refused()
        if refused:
            # Kept in the output, marked, so the table shows what is missing and why.
            log(f"governance-on case skipped: tachyon refuses {GOVERNANCE_CONFIG.name}: {refused}")
            del cases["tachyon-governance-on"]
            self.emit({"kind": "throughput", "case": "tachyon-governance-on", "skipped": refused})
        runs = {name: [] for name in cases}
        for r in range(self.args.runs):  # alternate the cases so drift hits all of them alike
            for name, run in cases.items():
                runs[name].append(run())
                log(f"throughput run {r + 1}/{self.args.runs} {name}: {runs[name][-1][0] / 1e6:.3f} Mpps")
        io = statistics.median(x[0] for x in runs["testpmd-io"])
        for name, rs in runs.items():
            pps = statistics.median(x[0] for x in rs)
            measured_msgs = rs[0][1] is not None
            msgs = statistics.median(x[1] for x in rs) if measured_msgs else pps * msgs_per_frame
            admitted = statistics.median(x[2] for x in rs) if measured_msgs else msgs
            self.emit(
                {
                    "kind": "throughput",
                    "case": name,
                    "mpps": pps / 1e6,
                    "msgs_per_s": msgs,
                    "msgs_admitted_per_s": admitted,
                    "msgs_measured": measured_msgs,
                    "ns_per_packet": 1e9 / pps,
                    "ratio_vs_testpmd_io": pps / io,
                    "paired_ratio_vs_testpmd_io": paired_ratio([x[0] for x in rs], [x[0] for x in runs["testpmd-io"]]),
                    "runs_mpps": [x[0] / 1e6 for x in rs],
                    "lcores": 1,
                }
            )

    def scaling(self):
        workers_max = max(2, os.cpu_count() or 2)
        pcaps = [self.make_pcap(f"scale-{i}", 10 + i)[0] for i in range(workers_max)]
        self.scale(pcaps, [1, workers_max], Path(self.config_off()), "")

    def scale(self, pcaps, counts, config, name):
        """R(n) for each worker count, one pcap RX queue per worker (same load per worker), and the efficiency
        R(n) / (n R(1)). Worker lcores 1..n; lcore k runs on CPU k mod cores, so on 2 CPUs the second worker
        shares CPU 0 with the (mostly sleeping) control lcore. The peer: testpmd io with as many forwarding
        lcores on the same CPUs and captures, alternating with tachyon, so that what the machine itself loses
        from 1 to n cores (shared caches, memory, the host) shows as testpmd's own efficiency."""
        results = {n: [] for n in counts}
        peer = {n: [] for n in counts}
        for r in range(self.args.runs):
            for n in results:
                lcores = spread_lcores(n)
                cfg = self.work / f"scale-{name}{n}.toml"
                cfg.write_text(
                    config.read_text() + f"\n[workers]\nlcores = {list(range(1, n + 1))}\n\n"
                    "[dataplane]\nmbufs_per_pool = 65535\n"
                )
                rx = ",".join(f"rx_pcap={p}" for p in pcaps[:n])
                vdevs = [f"net_pcap0,{rx},infinite_rx=1", "net_null0,no-rx=1"]
                (pps, _, _), stats = self.tachyon(lcores, vdevs, cfg, f"scale-{name}{n}")
                per_worker = [w["rx_packets"] for w in stats["workers"]]
                if len(per_worker) != n or min(per_worker) == 0:
                    raise RuntimeError(f"scaling {name}{n}: workers did not all carry traffic: {per_worker}")
                results[n].append(pps)
                peer[n].append(self.testpmd("io", pcaps[:n], cores=n))
                log(
                    f"scaling {name}run {r + 1}/{self.args.runs} {n} worker(s): {pps / 1e6:.3f} Mpps, "
                    f"testpmd io {peer[n][-1] / 1e6:.3f} Mpps"
                )
        r1, p1 = statistics.median(results[counts[0]]), statistics.median(peer[counts[0]])
        for n, rs in results.items():
            rn, pn = statistics.median(rs), statistics.median(peer[n])
            efficiency, peer_efficiency = rn / (n * r1), pn / (n * p1)
            self.emit(
                {
                    "kind": "scaling",
                    "case": f"{name}workers-{n}",
                    "workers": n,
                    "mpps": rn / 1e6,
                    "mpps_per_worker": rn / n / 1e6,
                    "efficiency": efficiency,
                    "testpmd_io_mpps": pn / 1e6,
                    "testpmd_io_efficiency": peer_efficiency,
                    "efficiency_vs_testpmd_io": efficiency / peer_efficiency,
                    "runs_mpps": [x / 1e6 for x in rs],
                    "testpmd_io_runs_mpps": [x / 1e6 for x in peer[n]],
                }
            )

    def latency(self):
        caps = []
        for r in range(self.args.runs):
            gen, _ = self.loop(0, False, "capacity")
            caps.append(gen["rx"]["tachyon_frames"] / gen["tx_secs"])
            log(f"capacity run {r + 1}/{self.args.runs}: {caps[-1] / 1e6:.3f} Mpps back")
        capacity = statistics.median(caps)
        self.emit({"kind": "latency", "case": "capacity", "mpps": capacity / 1e6, "runs_mpps": [c / 1e6 for c in caps]})
        per_load = {load: [] for load in LOADS}
        for r in range(self.args.runs):
            for load in LOADS:
                gen, _ = self.loop(capacity * load, True, f"lat{int(load * 100)}")
                lat = gen["latency"]
                if not lat or not lat["count"]:
                    raise RuntimeError(f"latency at {load:.0%}: no timestamped frame came back: {gen}")
                per_load[load].append((lat, gen))
                log(
                    f"latency run {r + 1}/{self.args.runs} at {load:.0%}: p50 {lat['p50_ns']} ns "
                    f"p99 {lat['p99_ns']} ns p99.9 {lat['p999_ns']} ns"
                )
        for load, rs in per_load.items():

            def med(k, rs=rs):
                return statistics.median(x[0][k] for x in rs)

            self.emit(
                {
                    "kind": "latency",
                    "case": f"load-{int(load * 100)}",
                    "load": load,
                    "target_mpps": capacity * load / 1e6,
                    "achieved_mpps": statistics.median(x[1]["tx_pps"] for x in rs) / 1e6,
                    "p50_us": med("p50_ns") / 1e3,
                    "p99_us": med("p99_ns") / 1e3,
                    "p999_us": med("p999_ns") / 1e3,
                    "max_us": max(x[0]["max_ns"] for x in rs) / 1e3,
                    "samples": sum(x[0]["count"] for x in rs),
                    "loss_ratio": statistics.median(x[1]["loss"]["loss_ratio"] for x in rs),
                    "reordered": sum(x[1]["rx"]["reordered"] for x in rs),
                }
            )

    def line_rate(self):
        pcap = self.make_min_pcap("min", 7)
        zipf = self.make_min_pcap("min-zipf", 7, dist="zipf")

        def forward(capture, config, tag):
            vdevs = [f"net_pcap0,rx_pcap={capture},infinite_rx=1", "net_null0,no-rx=1"]
            return self.tachyon("0@0,1@1", vdevs, config, tag)[0][0]

        cases = {
            "min-testpmd-io": lambda: self.testpmd("io", pcap),
            "min-tachyon-pass-through": lambda: forward(pcap, self.config_off(), "min-off"),
            "min-tachyon-governed": lambda: forward(pcap, GOVERNANCE_CONFIG, "min-on"),
            "min-tachyon-governed-zipf": lambda: forward(zipf, GOVERNANCE_CONFIG, "min-zipf"),
            "min-tachyon-governed-some-topics": lambda: forward(pcap, SOME_TOPICS_CONFIG, "min-some"),
        }
        if self.args.short:
            self.emit({"kind": "line_rate", "case": "min-l3fwd", "skipped": "not in --short (builds l3fwd)"})
        else:
            l3fwd = (
                subprocess.run(
                    ["bash", str(ROOT / "scripts" / "build-l3fwd.sh")], check=True, capture_output=True, text=True
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            cases["min-l3fwd"] = lambda: self.l3fwd(pcap, l3fwd)
        runs = {name: [] for name in cases}
        for r in range(self.args.runs):
            for name, run in cases.items():
                runs[name].append(run())
                log(f"line-rate run {r + 1}/{self.args.runs} {name}: {runs[name][-1] / 1e6:.3f} Mpps")
        io = statistics.median(runs["min-testpmd-io"])
        for name, rs in runs.items():
            pps = statistics.median(rs)
            self.emit(
                {
                    "kind": "line_rate",
                    "case": name,
                    "mpps": pps / 1e6,
                    "ns_per_packet": 1e9 / pps,
                    "ratio_vs_testpmd_io": pps / io,
                    "paired_ratio_vs_testpmd_io": paired_ratio(rs, runs["min-testpmd-io"]),
                    "runs_mpps": [x / 1e6 for x in rs],
                    "lcores": 1,
                }
            )
        self.governed_scaling()

    def governed_scaling(self):
        """Governed, 1 and 2 workers, each with its own pcap RX queue of minimum-size frames."""
        pcaps = [self.make_min_pcap(f"min-scale-{i}", 20 + i) for i in range(2)]
        self.scale(pcaps, [1, 2], GOVERNANCE_CONFIG, "governed-")

    def governance(self):
        example = self.bin / "examples" / "governance_cost"
        chunks = "200" if self.args.short else "3000"
        for topics, dist, records in SWEEP:
            rs = []
            for _ in range(self.args.runs):
                out = subprocess.run(
                    [str(example), str(topics), dist, str(records), "1", chunks],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                rs.append(json.loads(out.stdout.strip().splitlines()[-1])["ns_per_frame"])
            ns = statistics.median(rs)
            self.emit(
                {
                    "kind": "governance",
                    "case": f"{topics}-topics-{dist}-{records}-records",
                    "topics": topics,
                    "popularity": dist,
                    "records": records,
                    "ns_per_frame": ns,
                    "ns_per_msg": ns / records,
                    "runs_ns": rs,
                }
            )
            log(f"governance {topics} topics {dist} {records} records: {ns:.1f} ns/frame")

    def run(self):
        out = Path(self.args.out)
        out.mkdir(parents=True, exist_ok=True)
        try:
            for case in self.args.cases:
                getattr(self, case)()
        finally:
            shutil.rmtree(self.work, ignore_errors=True)
        jsonl = out / "results.jsonl"
        jsonl.write_text("".join(json.dumps(x) + "\n" for x in self.lines))
        log(f"wrote {jsonl}")
        if self.args.chart:
            chart(self.lines, out / "results.png")
            chart_governance(self.lines, out / "governance.png")
        print_table(self.lines)


def print_table(lines):
    for x in lines:
        if "skipped" in x:
            print(f"{x['case']:<24} skipped: {x['skipped']}")
        elif x["kind"] == "throughput":
            print(
                f"{x['case']:<24} {x['mpps']:8.3f} Mpps {x['msgs_per_s'] / 1e6:8.3f} M msgs/s "
                f"{x['ns_per_packet']:7.1f} ns/pkt  x{x['ratio_vs_testpmd_io']:.2f} of testpmd-io "
                f"(paired x{x['paired_ratio_vs_testpmd_io']:.2f})"
            )
        elif x["kind"] == "line_rate":
            print(
                f"{x['case']:<24} {x['mpps']:8.3f} Mpps {x['ns_per_packet']:7.1f} ns/pkt  "
                f"x{x['ratio_vs_testpmd_io']:.2f} of testpmd-io (paired x{x['paired_ratio_vs_testpmd_io']:.2f})"
            )
        elif x["kind"] == "governance":
            print(f"{'governance ' + x['case']:<40} {x['ns_per_frame']:7.1f} ns/frame {x['ns_per_msg']:7.2f} ns/msg")
        elif x["kind"] == "scaling":
            print(
                f"{x['case']:<24} {x['mpps']:8.3f} Mpps  efficiency {x['efficiency']:.2f} "
                f"(testpmd io on the same cores: {x['testpmd_io_mpps']:.3f} Mpps, efficiency "
                f"{x['testpmd_io_efficiency']:.2f}; ratio {x['efficiency_vs_testpmd_io']:.2f})"
            )
        elif x["case"] == "capacity":
            print(f"{'memif loop capacity':<24} {x['mpps']:8.3f} Mpps")
        else:
            print(
                f"{'latency ' + x['case']:<24} p50 {x['p50_us']:.2f} us p99 {x['p99_us']:.2f} us "
                f"p99.9 {x['p999_us']:.2f} us (loss {x['loss_ratio']:.2%})"
            )


def pyplot():
    """matplotlib's pyplot drawing to files, or None (said once per chart) when it is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not found (apt-get install python3-matplotlib): no chart")
        return None
    return plt


def chart_governance(lines, path):
    """Governance cost per frame against the topics in use, and against the records per frame."""
    gov = [x for x in lines if x["kind"] == "governance"]
    if not gov:
        return
    plt = pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ax = axes[0]
    for dist in ("zipf", "uniform"):
        pts = sorted((x["topics"], x["ns_per_frame"]) for x in gov if x["popularity"] == dist and x["records"] == 1)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label="Zipf 1.1" if dist == "zipf" else dist)
    ax.set_xscale("log")
    ax.set_xlabel("topics in use (tables at default size)")
    ax.set_ylabel("ns per frame")
    ax.set_title("Governance cost vs topics (1 record a frame)")
    ax.set_ylim(bottom=0)
    ax.legend()
    ax = axes[1]
    pts = sorted(
        (x["records"], x["ns_per_frame"], x["ns_per_msg"])
        for x in gov
        if x["topics"] == 100000 and x["popularity"] == "zipf"
    )
    ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label="per frame")
    ax.plot([p[0] for p in pts], [p[2] for p in pts], "s--", label="per message")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("records per frame (100k topics, Zipf 1.1)")
    ax.set_ylabel("ns")
    ax.set_title("Governance cost vs records per frame")
    ax.set_ylim(bottom=0)
    ax.legend()
    m = gov[0]
    fig.suptitle(
        f"Rules + topic bucket + sender quota, one worker, {m.get('cpu_model', '?')} ({m.get('mode', '')} run)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    log(f"wrote {path}")


def chart(lines, path):
    """Throughput bars, the scaling line, latency percentiles per load; one PNG."""
    plt = pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    tp = [x for x in lines if x["kind"] == "throughput" and "skipped" not in x]
    if tp:
        ax = axes[0]
        bars = ax.bar(
            [x["case"].replace("tachyon-", "tachyon\n").replace("testpmd-", "testpmd\n") for x in tp],
            [x["mpps"] for x in tp],
            color=["#999999", "#bbbbbb", "#4c72b0", "#dd8452"][: len(tp)],
        )
        for b, x in zip(bars, tp, strict=True):
            ax.annotate(
                f"{x['mpps']:.1f}\n×{x['ratio_vs_testpmd_io']:.2f}",  # noqa: RUF001 (a multiplication sign)
                (b.get_x() + b.get_width() / 2, b.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_ylabel("Mpps (one forwarding lcore)")
        ax.set_title("Throughput: pcap → null, medians")
        ax.margins(y=0.25)
    sc = [x for x in lines if x["kind"] == "scaling"]
    if sc:
        ax = axes[1]
        ws = [x["workers"] for x in sc]
        ax.plot(ws, [x["mpps"] for x in sc], "o-", label="measured")
        ax.plot(ws, [sc[0]["mpps"] * w for w in ws], "--", color="grey", label="linear")
        for x in sc:
            ax.annotate(
                f"{x['mpps']:.1f} Mpps\neff {x['efficiency']:.2f}",
                (x["workers"], x["mpps"]),
                textcoords="offset points",
                xytext=(6, -24),
                fontsize=8,
            )
        ax.set_xticks(ws)
        ax.set_xlabel("workers")
        ax.set_ylabel("Mpps")
        ax.set_title("Scaling (same load per worker)")
        ax.legend(loc="upper left")
        ax.margins(x=0.3, y=0.25)
    lat = [x for x in lines if x["kind"] == "latency" and x["case"] != "capacity"]
    if lat:
        ax = axes[2]
        loads = [f"{int(x['load'] * 100)} %" for x in lat]
        pos = range(len(lat))
        for i, (key, label) in enumerate([("p50_us", "P50"), ("p99_us", "P99"), ("p999_us", "P99.9")]):
            ax.bar([p + (i - 1) * 0.27 for p in pos], [x[key] for x in lat], 0.27, label=label)
        ax.set_xticks(list(pos), loads)
        ax.set_xlabel("load (share of the measured memif-loop capacity)")
        ax.set_ylabel("µs")
        ax.set_yscale("log")
        ax.set_ylim(top=max(x["p999_us"] for x in lat) * 20)  # room for the legend above the bars
        ax.set_title("Transit latency, tachyon-gen ↔ tachyon (memif)")
        ax.legend(loc="upper center", ncol=3)
    m = lines[0] if lines else {}
    fig.suptitle(
        f"Tachyon on {m.get('cpu_model', '?')}, {m.get('cores', '?')} cores, DPDK {m.get('dpdk', '')} "
        f"({m.get('mode', '')} run)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    log(f"wrote {path}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--short", action="store_true", help="one run of about a second per case (the test suite's mode)")
    p.add_argument("--runs", type=int, help="alternating runs per case (default 5; 1 with --short)")
    p.add_argument("--secs", type=int, help="measured seconds per run (default 5; 1 with --short)")
    p.add_argument("--out", default=str(ROOT / "docs" / "bench"), help="where results.jsonl and results.png go")
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    p.add_argument("--bin-dir", default=str(target / "release"), help="where tachyon and tachyon-gen are")
    p.add_argument("--no-chart", dest="chart", action="store_false", help="skip the PNG")
    p.add_argument("--chart-only", action="store_true", help="redraw the PNG from OUT/results.jsonl and exit")
    cases = ["throughput", "scaling", "latency", "line_rate", "governance"]
    p.add_argument("--cases", nargs="+", choices=cases, default=cases)
    args = p.parse_args()
    if args.chart_only:
        out = Path(args.out)
        lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
        chart(lines, out / "results.png")
        chart_governance(lines, out / "governance.png")
        return
    args.runs = args.runs or (1 if args.short else 5)
    args.secs = args.secs or (1 if args.short else 5)
    if os.geteuid() != 0:
        sys.exit("bench: DPDK needs root")
    Bench(args).run()


if __name__ == "__main__":
    main()
