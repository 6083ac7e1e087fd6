"""asyncio API (run on the default loop and on uvloop): waiting publisher, async subscriptions."""

from __future__ import annotations

import asyncio
import math
import time

import numpy as np
from conftest import make_batch, messages, part_bytes, part_of

import tachyon
from tachyon._testing import Appliance


async def gather(sub: tachyon.AsyncSubscription, count: int, timeout: float = 5.0) -> list[tuple[int, int, bytes]]:
    got: list[tuple[int, int, bytes]] = []

    async def run() -> None:
        async for b in sub:
            got.extend(messages(b.topics, b.senders, b.payloads, b.offsets))
            if len(got) >= count:
                return

    await asyncio.wait_for(run(), timeout)
    return got


async def test_async_roundtrip(appliance: Appliance) -> None:
    async with tachyon.AsyncBridge(appliance.path) as b:
        assert b.shards == 2 and "open" in repr(b)
        async with b.subscribe() as sub:
            t, s, p, o = make_batch(1000)
            assert (await b.publish_batch(t, s, p, o)).tolist() == [500, 500]
            got = await gather(sub, 1000)
    assert sorted(got) == sorted(messages(t, s, p, o))
    assert b.closed


async def test_waiting_publisher_resumes_and_idles(region_path: str) -> None:
    with (
        Appliance(region_path, shards=2, ingress_ring_bytes=1 << 16, max_message_bytes=1024) as a,
        tachyon.AsyncBridge(a.path) as b,
        b.subscribe() as sub,
    ):
        a.pause(0)
        filler = make_batch(100, topics=1)
        filled = 0
        while True:  # fill shard 0
            try:
                filled += int(b.bridge.publish_batch(*filler).sum())
            except tachyon.BackpressureError:
                break
        t, s, p, o = make_batch(200, topics=2, seed=9)
        task = asyncio.ensure_future(b.publish_batch(t, s, p, o))
        await asyncio.sleep(0.05)
        # The event loop's thread only: the in-process stand-in's drain thread
        # polls on its own schedule and is not the publisher's waiting.
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        await asyncio.sleep(0.5)
        cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
        assert not task.done(), "shard 0 is full: the publisher must still wait"
        assert cpu < 0.1 * wall, f"waiting used {cpu / wall:.0%} CPU"
        a.resume(0)
        accepted = await asyncio.wait_for(task, 5)
        assert accepted.tolist() == [100, 100]
        got = await gather(sub, filled + 200)
    expected = messages(t, s, p, o)
    assert sorted(m for m in got if m[2] in {e[2] for e in expected}) == sorted(expected)


class CountingPolls:
    """Wraps a real subscription and counts the event loop's polls of it."""

    def __init__(self, sub: tachyon.Subscription) -> None:
        self.sub, self.polls = sub, 0

    def poll(self, timeout: float) -> tachyon.Batch | None:
        self.polls += 1
        return self.sub.poll(timeout)


async def test_async_poll_timeout_and_idle_cpu(appliance: Appliance) -> None:
    from tachyon._aio import BACKOFF_MIN, POLL_BACKOFF_MAX

    async with tachyon.AsyncBridge(appliance.path) as b:
        with b.subscribe([1]) as sub:
            assert sub.topics == [1]
            counted = CountingPolls(sub.subscription)
            sub._sub = counted  # type: ignore[assignment]
            cpu0, wall0 = time.thread_time(), time.perf_counter()
            try:
                assert await sub.poll(0.5) is None
            finally:
                cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
                sub._sub = counted.sub
            assert wall >= 0.49  # loop timers have millisecond granularity
            # Idle means backing off to one poll per POLL_BACKOFF_MAX: the doubling
            # from BACKOFF_MIN adds a handful. A spinning poll would make thousands.
            ramp = math.ceil(math.log2(POLL_BACKOFF_MAX / BACKOFF_MIN)) + 1
            assert counted.polls <= wall / POLL_BACKOFF_MAX + ramp + 2, f"{counted.polls} polls in {wall:.3f} s"
            # The loop's thread only (the in-process stand-in drains on its own thread).
            # What a timer wake-up costs is the platform's: 2 ms sleeps of a bare
            # asyncio loop measured 9% of a vCPU on a Firecracker VM with tick-based
            # CPU accounting. Spinning would be near 100%.
            assert cpu < 0.5 * wall, f"idle polling used {cpu / wall:.0%} CPU"


async def test_async_publish_errors_are_the_sync_ones(appliance: Appliance) -> None:
    async with tachyon.AsyncBridge(appliance.path) as b:
        import pytest

        with pytest.raises(TypeError, match="topics must be a uint32 array"):
            await b.publish_batch(np.array([1], np.int64), np.array([1], np.uint32), b"x", np.array([0, 1]))
        with pytest.raises(ValueError, match="past the end"):
            await b.publish_batch(np.array([1], np.uint32), np.array([1], np.uint32), b"x", np.array([0, 2]))


async def test_async_big_part_waits_for_room(region_path: str) -> None:
    """A part over half the ring (up to max_part_bytes) needs an almost empty ring: the
    waiting publisher retries it until the worker has drained what was in the way."""
    import pytest

    with (
        Appliance(region_path, shards=2, ingress_ring_bytes=1 << 16, max_message_bytes=1024) as a,
        tachyon.AsyncBridge(a.path) as b,
        b.subscribe() as sub,
    ):
        limit = b.max_part_bytes
        assert limit == b.bridge.max_part_bytes > (1 << 16) // 2
        t, s, p, o = part_of(limit)
        a.pause(0)
        b.bridge.publish_batch(*part_of(4096))  # in the way until the worker resumes
        task = asyncio.ensure_future(b.publish_batch(t, s, p, o))
        await asyncio.sleep(0.05)
        assert not task.done(), "the big part cannot fit yet: the publisher must still wait"
        a.resume(0)
        assert (await asyncio.wait_for(task, 5)).tolist() == [len(t), 0]
        got = await gather(sub, len(part_of(4096)[0]) + len(t))
        assert got[-len(t) :] == messages(t, s, p, o)
        over = part_of(limit + 1)
        assert part_bytes(over[3]) == limit + 8
        with pytest.raises(ValueError, match=rf"more than the {limit}-byte limit"):
            await b.publish_batch(*over)  # invalid, not backpressure: raised at once
