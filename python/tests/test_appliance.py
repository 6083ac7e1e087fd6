"""The Python client against the real appliance (``target/*/tachyon`` on DPDK virtual devices).

Each test starts the binary through the ``real_appliance`` fixture (see ``real_appliance.py``)
with its bridge in a temporary directory, and reads ``--stats-json`` and the output pcaps
(parsed with ``struct``) after stopping it with SIGINT. Skipped when not root or without
DPDK or a built binary.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import collect, make_batch, messages, part_bytes, part_of

import tachyon

U32 = np.uint32
STEER = Path(__file__).resolve().parents[1] / "examples" / "steer.py"


def interleaved(first: int, n: int, topics: list[int], sender: int = 9) -> tuple[Any, Any, Any, Any]:
    """``n`` messages cycling over ``topics``; payload = 8-byte index ``first + i`` plus 0-40 bytes."""
    t = np.array([topics[i % len(topics)] for i in range(n)], U32)
    s = np.full(n, sender, U32)
    chunks = [(first + i).to_bytes(8, "little") + bytes([i % 251]) * (i % 41) for i in range(n)]
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum([len(c) for c in chunks], out=offsets[1:])
    return t, s, b"".join(chunks), offsets


def test_round_trip_subscriber_and_wire_byte_for_byte(real_appliance: Any) -> None:
    app = real_appliance(config="[[governance.topics]]\nid = 3\nrate = 1\nburst = 10\n")
    with tachyon.Bridge(app.path) as bridge, bridge.subscribe() as sub:
        assert bridge.shards == 1
        published: list[tuple[int, int, bytes]] = []
        for k in range(4):
            b = make_batch(1500, topics=6, sender=100 + k, seed=k)  # topics 0..5, 1-40 byte payloads
            assert bridge.publish_batch(*b).tolist() == [1500]
            published += messages(*b)
        limited_offered = sum(1 for m in published if m[0] == 3)
        others = [m for m in published if m[0] != 3]
        got = collect(sub, len(others) + 1, timeout=10)  # at least the burst of topic 3 arrives
        time.sleep(0.3)
        while (extra := sub.poll(0.2)) is not None:
            got += messages(extra.topics, extra.senders, extra.payloads, extra.offsets)
    assert app.running
    stats = app.stop()
    assert [m for m in got if m[0] != 3] == others, "every message of an unlimited topic, in publish order"
    got3 = [m for m in got if m[0] == 3]
    assert 1 <= len(got3) < limited_offered
    assert all(m in published for m in got3)
    wire = app.wire()
    assert sorted(wire) == sorted(got), "the wire carries exactly what the subscriber got, byte for byte"
    t = stats["totals"]
    assert t["bridge_msgs_received"] == len(published)
    assert t["bridge_msgs_admitted"] == len(got)
    assert t["bridge_drops"]["topic_limited"] == limited_offered - len(got3) > 0
    assert stats["bridge"]["shards"][0]["accepted_msgs"] == len(published)


def test_backpressure_names_only_the_full_shard_and_loses_nothing(real_appliance: Any) -> None:
    app = real_appliance(
        config="[bridge]\ningress_ring_bytes = 65536\n", workers=2, env={"TACHYON_TEST_PAUSE_BRIDGE_SHARD": "1"}
    )
    accepted: list[tuple[int, int, bytes]] = []
    refusals = 0
    with tachyon.Bridge(app.path) as bridge:
        assert bridge.shards == 2
        for r in range(200):
            time.sleep(0.002)  # paced: the flowing worker keeps up even when it shares a CPU with us
            b = interleaved(r * 100, 100, [1, 2])  # topic 1 -> shard 1 (paused), topic 2 -> shard 0
            msgs = messages(*b)
            try:
                per_shard = bridge.publish_batch(*b)
                accepted += msgs
                assert per_shard.tolist() == [50, 50]
            except tachyon.BackpressureError as e:
                refusals += 1
                assert e.refused_shards == [1], f"round {r}: {e}"
                assert "full on shard(s) [1]:" in str(e), str(e)
                assert e.accepted.tolist() == [50, 0]
                assert e.mask.tolist() == (b[0] % 2 == 0).tolist(), "the mask is exactly shard 0's messages"
                accepted += [m for m, keep in zip(msgs, e.mask, strict=True) if keep]
    assert refusals > 0, "shard 1 never filled"
    time.sleep(0.3)
    stats = app.stop()
    shard0 = [m for m in accepted if m[0] % 2 == 0]
    assert sorted(app.wire()) == sorted(shard0), "every accepted message of the flowing shard left once"
    assert stats["bridge"]["shards"][1]["refused_batches"] == refusals
    assert stats["bridge"]["shards"][0]["refused_batches"] == 0


PER_PRODUCER = 20_000
PRODUCER_BATCH = 500


def _produce(path: str, sender: int, out: Any) -> None:
    accepted = 0
    with tachyon.Bridge(path) as b:
        for start in range(0, PER_PRODUCER, PRODUCER_BATCH):
            seq = np.arange(start, start + PRODUCER_BATCH, dtype=np.uint64)
            t = np.full(PRODUCER_BATCH, 5, U32)
            s = np.full(PRODUCER_BATCH, sender, U32)
            offsets = np.arange(0, 8 * PRODUCER_BATCH + 1, 8, dtype=np.int64)
            while True:
                try:
                    accepted += int(b.publish_batch(t, s, seq.view(np.uint8), offsets).sum())
                    break
                except tachyon.BackpressureError:  # one shard: nothing of this batch is in
                    time.sleep(0.0005)
    out.put((sender, accepted))


def test_two_producer_processes_on_one_shard_exactly_once(real_appliance: Any) -> None:
    app = real_appliance(config="[bridge]\ningress_ring_bytes = 65536\nsubscriber_ring_bytes = 16777216\n")
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    with tachyon.Bridge(app.path) as bridge, bridge.subscribe([5]) as sub:
        procs = [ctx.Process(target=_produce, args=(str(app.path), sender, q)) for sender in (1, 2)]
        for p in procs:
            p.start()
        seen: dict[int, list[np.ndarray]] = {1: [], 2: []}
        received = 0
        end = time.monotonic() + 60
        while received < 2 * PER_PRODUCER and time.monotonic() < end:
            batch = sub.poll(0.5)
            if batch is None:
                if not any(p.is_alive() for p in procs) and received and sub.poll(0.5) is None:
                    break
                continue
            seqs = batch.payloads.view(np.uint64)
            assert np.all(np.diff(batch.offsets) == 8)
            for sender in (1, 2):
                seen[sender].append(seqs[batch.senders == sender].copy())
            received += len(batch)
        for p in procs:
            p.join(30)
            assert p.exitcode == 0
        counts = dict(q.get(timeout=5) for _ in procs)
        assert sub.overflow == 0
    stats = app.stop()
    for sender in (1, 2):
        got = np.concatenate(seen[sender])
        assert counts[sender] == PER_PRODUCER, "the producer retried until everything was in"
        assert len(got) == counts[sender], f"sender {sender}: {len(got)} of {counts[sender]}"
        assert np.array_equal(got, np.arange(PER_PRODUCER, dtype=np.uint64)), "each once, in order"
    assert stats["totals"]["bridge_msgs_received"] == 2 * PER_PRODUCER


def test_bad_inputs_raise_and_the_appliance_keeps_running(real_appliance: Any) -> None:
    app = real_appliance()
    ok = (np.array([1, 2], U32), np.array([9, 9], U32), b"abcdef", np.array([0, 3, 6], np.int64))
    with tachyon.Bridge(app.path) as bridge, bridge.subscribe() as sub:
        cases: list[tuple[dict[str, Any], type[Exception], str]] = [
            ({"topics": np.array([1, 2], np.int64)}, TypeError, r"topics must be a uint32 array"),
            ({"senders": [9, 9]}, TypeError, r"senders must be a uint32 array"),
            ({"payloads": "abcdef"}, TypeError, r"payloads must be a bytes-like object"),
            ({"offsets": np.array([0.0, 3.0, 6.0])}, TypeError, r"offsets must be an int32, int64, uint32 or uint64"),
            ({"senders": np.array([9], U32)}, ValueError, r"senders has 1 elements, topics has 2"),
            ({"offsets": np.array([0, 4, 3], np.int64)}, ValueError, r"offsets\[2\]=3 < offsets\[1\]=4"),
            ({"offsets": np.array([0, 3, 7], np.int64)}, ValueError, r"past the end of the 6-byte payload"),
            ({"offsets": np.array([0, -1, 6], np.int32)}, ValueError, r"offsets\[1\]=-1 is negative"),
        ]
        for change, exc, match in cases:
            args = dict(zip(["topics", "senders", "payloads", "offsets"], ok, strict=True))
            args.update(change)
            with pytest.raises(exc, match=match):
                bridge.publish_batch(**args)
        big = bridge.max_message_bytes + 1
        with pytest.raises(ValueError, match=rf"is {big} bytes, more than max_message_bytes"):
            bridge.publish_batch(np.array([1], U32), np.array([1], U32), bytes(big), np.array([0, big]))
        too_big = part_of(bridge.max_part_bytes + 8)
        assert part_bytes(too_big[3]) > bridge.max_part_bytes
        with pytest.raises(ValueError, match=r"max_part_bytes"):
            bridge.publish_batch(*too_big)
        with pytest.raises(ValueError, match=r"topic"):
            bridge.subscribe([1] * 65)
        with app.control() as ctl:
            with pytest.raises(tachyon.ControlError, match=r"refused: rate must be at least 1"):
                ctl.request("/tachyon/limit,topic,3,0,10")
            with pytest.raises(tachyon.ControlError, match=r"unknown kind 'queue'"):
                ctl.request("/tachyon/limit,queue,3,1,1")
            with pytest.raises(ValueError, match=r"rate must be a non-negative int"):
                ctl.set_topic_limit(3, rate=-1, burst=1)
            with pytest.raises(tachyon.ControlError, match=r"does not know"):
                ctl.request("/tachyon/nonsense")
        assert sub.poll(0.1) is None, "nothing of the refused calls was published"
        assert app.running
        assert bridge.publish_batch(*ok).tolist() == [2]
        assert collect(sub, 2) == messages(*ok)
    stats = app.stop()
    assert stats["totals"]["bridge_msgs_received"] == 2


async def test_async_publisher_waits_for_room_and_everything_arrives(real_appliance: Any) -> None:
    # Shard 0's worker holds off for its first 1.5 s (a test hook), so the ring is
    # full when the publisher starts and room only appears later, whatever the timing.
    app = real_appliance(
        config="[bridge]\ningress_ring_bytes = 65536\nsubscriber_ring_bytes = 16777216\n",
        env={"TACHYON_TEST_PAUSE_BRIDGE_SHARD": "0:1500"},
    )
    n_batches, per_batch, size = 60, 40, 1200  # ~49 KB a batch on one shard: at most one fits the ring
    sent: list[tuple[int, int, bytes]] = []
    async with tachyon.AsyncBridge(app.path) as bridge, bridge.subscribe() as sub:
        with app.control() as ctl:
            refused_before = ctl.bridge()["shard_0"]["refused_batches"]

        async def consume() -> list[tuple[int, int, bytes]]:
            got: list[tuple[int, int, bytes]] = []
            while len(got) < n_batches * per_batch:
                batch = await sub.poll(10)
                assert batch is not None, f"only {len(got)} arrived"
                got += messages(batch.topics, batch.senders, batch.payloads, batch.offsets)
            return got

        consumer = asyncio.create_task(consume())
        for k in range(n_batches):
            t = np.full(per_batch, 4, U32)
            s = np.full(per_batch, 7, U32)
            payload = b"".join((k * per_batch + i).to_bytes(8, "little") + bytes(size - 8) for i in range(per_batch))
            offsets = np.arange(0, size * per_batch + 1, size, dtype=np.int64)
            assert (await bridge.publish_batch(t, s, payload, offsets)).tolist() == [per_batch]
            sent += messages(t, s, payload, offsets)
        got = await asyncio.wait_for(consumer, 20)
        with app.control() as ctl:
            refused = ctl.bridge()["shard_0"]["refused_batches"] - refused_before
    assert got == sent, "every message arrives once, in order"
    assert refused > 0, "the ring was full at times: the publisher waited and resumed"
    stats = app.stop()
    assert stats["totals"]["bridge_msgs_admitted"] == len(sent)


def test_control_against_the_appliance(real_appliance: Any) -> None:
    app = real_appliance()
    with app.control() as ctl, tachyon.Bridge(app.path) as bridge:
        stats = ctl.stats()
        assert stats["workers"] == 1 and "drops" in stats and "rx_packets" in stats
        info = ctl.bridge()
        assert info["path"] == str(app.path)
        assert info["shard_0"]["accepted_msgs"] == 0
        assert "1" in ctl.workers()
        reply = ctl.set_topic_limit(3, rate=1, burst=10)
        assert reply["applied"].startswith("topic 3: rate 1/s burst 10 (generation "), reply
        assert ctl.set_sender_limit(77, rate=1000, burst=100)["applied"].startswith("sender 77: rate 1000/s")
        # Interleaved with topic 4, every message of topic 3 is a frame of its own: a frame
        # is admitted or dropped whole, so one of more messages than the burst never passes.
        bridge.publish_batch(*interleaved(0, 100, [3, 4]))
        time.sleep(0.3)
        info = ctl.bridge()
        assert info["shard_0"]["accepted_msgs"] == 100
        assert info["bridge_msgs_received"] == 100
        assert 50 + 10 <= info["bridge_msgs_admitted"] <= 50 + 11, info
        assert info["drops"]["topic_limited"] == 100 - info["bridge_msgs_admitted"]
        with pytest.raises(tachyon.ControlError, match="no --config file to reload"):
            ctl.reload()
    stats = app.stop()
    assert stats["governance"]["runtime_limits"] == {
        "topic 3": "rate 1/s burst 10",
        "sender 77": "rate 1000/s burst 100",
    }


def _rate_of(bridge: tachyon.Bridge, topic: int, seconds: float) -> float:
    """Messages of ``topic`` delivered to a fresh subscriber per second over ``seconds``."""
    with bridge.subscribe([topic]) as sub:
        while sub.poll(0.01) is not None:
            pass
        count, start = 0, time.monotonic()
        while (left := start + seconds - time.monotonic()) > 0:
            batch = sub.poll(left)
            if batch is not None:
                count += len(batch)
        return count / (time.monotonic() - start)


def test_steer_limits_the_hot_topic_to_its_budget(real_appliance: Any) -> None:
    app = real_appliance()
    hot, cold, budget = 11, [12, 13, 14], 4000
    stop = threading.Event()

    def produce() -> None:  # ~20,000 msg/s on the hot topic, ~1,000 msg/s on each cold one
        with tachyon.Bridge(app.path) as b:
            rng = np.random.default_rng(1)
            k, tick = 0, time.monotonic()
            while not stop.is_set():
                topics = np.array([hot] * 200 + cold * 10, U32)
                rng.shuffle(topics)
                bt = interleaved(k, len(topics), [0])
                b.publish_batch(topics, *bt[1:])
                k += len(topics)
                tick += 0.01
                time.sleep(max(0.0, tick - time.monotonic()))

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    try:
        with tachyon.Bridge(app.path) as bridge:
            before = _rate_of(bridge, hot, 1.0)
            assert before > 3 * budget, f"offered load too low: {before:.0f} msg/s"
            args = ["--bridge", str(app.path), "--file-prefix", app.file_prefix, "--budget", str(budget)]
            steer = subprocess.Popen(
                [sys.executable, "-u", str(STEER), *args, "--duration", "6"],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert steer.stdout is not None
            lines = []
            for line in steer.stdout:
                lines.append(line)
                if f"limited topic {hot} to" in line:
                    break
            else:
                pytest.fail("steer never limited the hot topic:\n" + "".join(lines))
            assert "applied" in lines[-1], lines[-1]
            time.sleep(0.5)
            after = _rate_of(bridge, hot, 1.0)
            cold_after = _rate_of(bridge, cold[0], 1.0)
            rest, _ = steer.communicate(timeout=15)
            assert steer.returncode == 0, "".join(lines) + rest
    finally:
        stop.set()
        producer.join(5)
    assert abs(after - budget) <= 0.2 * budget, f"hot topic {before:.0f} -> {after:.0f} msg/s, limit {budget}"
    assert cold_after > 500, f"the cold topics are untouched: {cold_after:.0f} msg/s"
    stats = app.stop()
    assert stats["governance"]["runtime_limits"] == {f"topic {hot}": f"rate {budget}/s burst {budget // 10}"}
    assert stats["totals"]["bridge_drops"]["topic_limited"] > 0
