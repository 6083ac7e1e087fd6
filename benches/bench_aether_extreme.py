#!/usr/bin/env python3
"""Python client benchmark: tachyon bridge (asyncio and uvloop) against pyzmq over ipc://.

By default starts the real appliance itself, like the Python tests' fixture
(``python/tests/real_appliance.py``: ``target/release/tachyon`` if built, else
``target/debug``, or ``$TACHYON_BIN``; ``--no-huge``, one worker, bridge frames sent to a
``net_null`` sink, needs root) and stops it at the end (its ``--stats-json`` totals are the
last line). ``--bridge PATH`` connects to an appliance you run yourself; ``--harness`` uses
the in-process test appliance (``tachyon._testing``: drains and fans out, no governance, no wire).
Every message is 16 bytes; the first 8 hold the producer's ``time.monotonic_ns()`` and the
subscriber reads them with NumPy to get end-to-end latency. Cases, for batch sizes 1, 100,
1000, 10000:

- ``bridge``: one asyncio producer (``AsyncBridge.publish_batch``, waits on backpressure)
  and one consumer (``async for batch in subscribe()``) in the same process, on the default
  loop and on uvloop: accepted and delivered msgs/s, latency P50/P99;
- ``publish_call``: time of one synchronous ``publish_batch`` of 10,000 messages (P50/P99);
- ``naive``: one message per call, building the arrays per message (the baseline);
- ``zmq``: PUSH (child process) -> PULL over ``ipc://``, ``send_multipart`` of ``batch``
  16-byte frames, same stamps.

Output: one JSON object per line on stdout (or ``--out FILE``). ``--quick`` keeps the whole
run under a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np

import tachyon

MSG = 16
TOPICS = 8


def pct(lat: np.ndarray, q: float) -> float | None:
    return float(np.percentile(lat, q)) / 1e3 if len(lat) else None  # microseconds


def make_columns(batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    topics = (np.arange(batch) % TOPICS).astype(np.uint32)
    senders = np.ones(batch, np.uint32)
    payload = np.zeros((batch, MSG), np.uint8)
    offsets = np.arange(0, batch * MSG + 1, MSG, dtype=np.int64)
    return topics, senders, payload, offsets


def stamp(payload: np.ndarray) -> None:
    payload[:, :8].view(np.uint64)[:, 0] = time.monotonic_ns()


def latencies_ns(batch: tachyon.Batch) -> np.ndarray:
    now = time.monotonic_ns()
    p = batch.payloads.reshape(-1, MSG)  # every message is MSG bytes
    return now - p[:, :8].copy().view(np.uint64)[:, 0].astype(np.int64)


async def bridge_case(path: str, batch: int, total: int, seconds: float) -> dict[str, Any]:
    async with tachyon.AsyncBridge(path) as b:
        sub = b.subscribe()
        topics, senders, payload, offsets = make_columns(batch)
        accepted = 0
        delivered = 0
        lats: list[np.ndarray] = []
        done = asyncio.Event()

        async def produce() -> None:
            nonlocal accepted
            end = time.perf_counter() + seconds
            while accepted < total and time.perf_counter() < end:
                stamp(payload)
                accepted += int((await b.publish_batch(topics, senders, payload, offsets)).sum())
                await asyncio.sleep(0)  # let the consumer run on the same loop
            done.set()

        async def consume() -> None:
            nonlocal delivered
            while True:
                got = await sub.poll(0.2 if done.is_set() else 1.0)
                if got is None:
                    if done.is_set():
                        return
                    continue
                delivered += len(got)
                lats.append(latencies_ns(got))
                if done.is_set() and delivered >= accepted:
                    return

        t0 = time.perf_counter()
        await asyncio.gather(produce(), consume())
        wall = time.perf_counter() - t0
        overflow = sub.overflow
        sub.close()
    lat = np.concatenate(lats) if lats else np.zeros(0)
    return {
        "accepted": accepted,
        "delivered": delivered,
        "overflow": overflow,
        "accepted_msgs_s": accepted / wall,
        "delivered_msgs_s": delivered / wall,
        "lat_p50_us": pct(lat, 50),
        "lat_p99_us": pct(lat, 99),
        "wall_s": wall,
    }


def publish_call_case(path: str, calls: int) -> dict[str, Any]:
    topics, senders, payload, offsets = make_columns(10_000)
    times = []
    refused = 0
    with tachyon.Bridge(path) as b:
        for _ in range(calls):
            t0 = time.perf_counter_ns()
            try:
                b.publish_batch(topics, senders, payload, offsets)
            except tachyon.BackpressureError:
                refused += 1
            times.append(time.perf_counter_ns() - t0)
            time.sleep(0.002)  # let the appliance drain
    t = np.array(times)
    return {"calls": calls, "refused_calls": refused, "call_p50_us": pct(t, 50), "call_p99_us": pct(t, 99)}


def naive_case(path: str, total: int, seconds: float) -> dict[str, Any]:
    sent = 0
    with tachyon.Bridge(path) as b:
        t0 = time.perf_counter()
        end = t0 + seconds
        while sent < total and time.perf_counter() < end:
            msg = time.monotonic_ns().to_bytes(8, "little") + bytes(8)
            try:
                b.publish_batch(np.array([sent % TOPICS], np.uint32), np.array([1], np.uint32), msg, np.array([0, MSG]))
                sent += 1
            except tachyon.BackpressureError:
                time.sleep(0.0001)
        wall = time.perf_counter() - t0
    return {"accepted": sent, "accepted_msgs_s": sent / wall, "wall_s": wall}


def zmq_push(addr: str, batch: int, total: int, seconds: float) -> None:
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.PUSH)
    s.setsockopt(zmq.SNDHWM, 1000)
    s.connect(addr)
    sent = 0
    end = time.perf_counter() + seconds
    zeros = bytes(8)
    while sent < total and time.perf_counter() < end:
        ts = time.monotonic_ns().to_bytes(8, "little") + zeros
        s.send_multipart([ts] * batch)
        sent += batch
    s.send_multipart([b"END"])
    s.close(linger=-1)  # deliver everything, END included
    ctx.term()


def zmq_case(batch: int, total: int, seconds: float) -> dict[str, Any]:
    import zmq

    addr = f"ipc://{tempfile.gettempdir()}/tachyon-bench-{os.getpid()}.ipc"
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.RCVHWM, 1000)
    pull.setsockopt(zmq.RCVTIMEO, 200)  # never hang the run if END goes missing
    pull.bind(addr)
    proc = mp.get_context("spawn").Process(target=zmq_push, args=(addr, batch, total, seconds))
    t0 = time.perf_counter()
    proc.start()
    got = 0
    lats = []
    t_last = time.perf_counter()
    while True:
        try:
            frames = pull.recv_multipart(copy=True)
        except zmq.Again:
            if proc.exitcode is not None or time.perf_counter() - t0 > seconds + 30:
                break  # the pusher is done (or stuck): take what arrived
            continue
        if frames == [b"END"]:
            break
        now = time.monotonic_ns()
        arr = np.frombuffer(b"".join(frames), np.uint8).reshape(-1, MSG)
        lats.append(now - arr[:, :8].copy().view(np.uint64)[:, 0].astype(np.int64))
        got += len(frames)
        t_last = time.perf_counter()
    wall = t_last - t0
    proc.join(10)
    pull.close(linger=0)
    ctx.term()
    lat = np.concatenate(lats) if lats else np.zeros(0)
    return {
        "delivered": got,
        "delivered_msgs_s": got / wall,
        "lat_p50_us": pct(lat, 50),
        "lat_p99_us": pct(lat, 99),
        "wall_s": wall,
    }


def run_loop(kind: str, coro: Any) -> Any:
    if kind == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bridge", help="bridge region of a running appliance (default: the rte prefix's)")
    ap.add_argument("--harness", action="store_true", help="run against the in-process test appliance")
    ap.add_argument("--quick", action="store_true", help="short cases (whole run < 60 s)")
    ap.add_argument("--out", help="write JSON lines here instead of stdout")
    ap.add_argument("--batch-sizes", default="1,100,1000,10000")
    ap.add_argument("--no-zmq", action="store_true", help="skip the pyzmq comparison")
    args = ap.parse_args()
    if args.out:
        with open(args.out, "w") as out:
            return run(args, out)
    return run(args, sys.stdout)


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Every case against one bridge (harness, given path, or a started appliance), as JSON lines on `out`."""
    seconds = 1.5 if args.quick else 10.0
    total = 2_000_000 if args.quick else 50_000_000
    sizes = [int(x) for x in args.batch_sizes.split(",")]
    appliance = None
    real = None
    if args.harness:
        from tachyon._testing import Appliance

        path = f"/dev/shm/tachyon-bench-{os.getpid()}.bridge"
        appliance = Appliance(
            path, shards=2, ingress_ring_bytes=1 << 22, subscriber_slots=4, subscriber_ring_bytes=1 << 24
        )
    elif args.bridge:
        path = args.bridge
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python" / "tests"))
        from real_appliance import RealAppliance, tachyon_bin, unavailable

        reason = unavailable()
        if reason:
            print(f"bench: cannot start the appliance: {reason} (or pass --bridge PATH / --harness)", file=sys.stderr)
            return 2
        real = RealAppliance(
            Path(tempfile.mkdtemp(prefix="tachyon-bench-")),
            config="[bridge]\ningress_ring_bytes = 4194304\nsubscriber_ring_bytes = 16777216\n",
            sink="null",
            duration=24 * 3600,
        )
        path = str(real.path)
        print(f"bench: started {tachyon_bin()} (file prefix {real.file_prefix}), bridge {path}", file=sys.stderr)
    target = "harness" if args.harness else "appliance"

    def emit(case: str, **kw: Any) -> None:
        rec = {"case": case, "target": target, "msg_bytes": MSG, **kw}
        out.write(json.dumps(rec) + "\n")
        out.flush()

    try:
        for loop in ("asyncio", "uvloop"):
            for n in sizes:
                emit("bridge", loop=loop, batch=n, **run_loop(loop, bridge_case(path, n, total, seconds)))
        emit("publish_call", batch=10_000, **publish_call_case(path, 100 if args.quick else 1000))
        emit("naive", batch=1, **naive_case(path, total, seconds))
        if not args.no_zmq:
            for n in sizes:
                emit("zmq", transport="ipc", batch=n, **zmq_case(n, total, seconds))
    finally:
        if appliance is not None:
            appliance.close()
        if real is not None:
            real.stop(check=False)
            stats = json.loads(real.stats_path.read_text()) if real.stats_path.exists() else {}
            totals = stats.get("totals", {})
            emit("appliance_totals", **{k: v for k, v in totals.items() if k.startswith("bridge_")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
