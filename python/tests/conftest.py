"""Shared fixtures: an in-process test appliance on a fresh path, and uvloop for asyncio tests."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pytest
import uvloop

import tachyon
from tachyon._testing import Appliance


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Mapping[str, Callable[[], Any]]:
    """Run every asyncio test on the default loop and on uvloop."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture
def region_path() -> Iterator[str]:
    """A fresh bridge path in /dev/shm, removed afterwards."""
    path = f"/dev/shm/tachyon-pytest-{os.getpid()}-{uuid.uuid4().hex[:8]}.bridge"
    yield path
    if os.path.exists(path):
        os.unlink(path)


@pytest.fixture
def appliance(region_path: str) -> Iterator[Appliance]:
    """A two-shard test appliance."""
    with Appliance(region_path, shards=2) as a:
        yield a


@pytest.fixture
def bridge(appliance: Appliance) -> Iterator[tachyon.Bridge]:
    with tachyon.Bridge(appliance.path) as b:
        yield b


def make_batch(
    n: int, topics: int = 4, sender: int = 1, seed: int = 0, max_len: int = 40
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """n messages on topics 0..topics-1 with distinct payloads (the index in the first 4 bytes)."""
    rng = np.random.default_rng(seed)
    t = (np.arange(n) % topics).astype(np.uint32)
    s = np.full(n, sender, dtype=np.uint32)
    lengths = rng.integers(4, max_len + 1, size=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    payload = rng.integers(0, 256, size=int(offsets[-1]), dtype=np.uint8)
    for i in range(n):  # test data only: stamp the index so payloads are distinct
        payload[offsets[i] : offsets[i] + 4] = np.frombuffer(np.uint32(i).tobytes(), np.uint8)
    return t, s, payload, offsets


def part_bytes(offsets: Any) -> int:
    """Encoded size of a shard part: 16 bytes plus, per message, payload + 12 rounded up to 8."""
    lengths = np.diff(np.asarray(offsets, dtype=np.int64))
    return 16 + int(((lengths + 12 + 7) // 8 * 8).sum())


def part_of(nbytes: int, topic: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One-topic batch whose shard part encodes to the smallest size >= nbytes (sizes step by 8):
    16-byte messages (4-byte payloads stamped with their index), the last one 24 bytes if needed."""
    body = max(nbytes - 16, 16)
    n = body // 16
    lengths = np.full(n, 4, dtype=np.int64)
    if body % 16:
        lengths[-1] = 12  # 24 bytes encoded: covers the 8-byte remainder (or rounds up to it)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    payload = np.zeros(int(offsets[-1]), dtype=np.uint8)
    for i in range(n):
        payload[offsets[i] : offsets[i] + 4] = np.frombuffer(np.uint32(i).tobytes(), np.uint8)
    return np.full(n, topic, np.uint32), np.ones(n, np.uint32), payload, offsets


def messages(t: np.ndarray, s: np.ndarray, payload: Any, offsets: Any) -> list[tuple[int, int, bytes]]:
    """The batch as a list of (topic, sender, payload) (tests only)."""
    raw = bytes(memoryview(payload).cast("B"))
    o = np.asarray(offsets)
    return [(int(t[i]), int(s[i]), raw[o[i] : o[i + 1]]) for i in range(len(t))]


def collect(sub: tachyon.Subscription, count: int, timeout: float = 5.0) -> list[tuple[int, int, bytes]]:
    """Poll until `count` messages arrived (or fail after `timeout`)."""
    got: list[tuple[int, int, bytes]] = []
    import time

    end = time.monotonic() + timeout
    while len(got) < count:
        left = end - time.monotonic()
        assert left > 0, f"only {len(got)} of {count} messages arrived"
        b = sub.poll(left)
        if b is not None:
            got += messages(b.topics, b.senders, b.payloads, b.offsets)
    return got


def by_shard(msgs: list[tuple[int, int, bytes]], shards: int) -> list[list[tuple[int, int, bytes]]]:
    return [[m for m in msgs if m[0] % shards == s] for s in range(shards)]


@pytest.fixture
def real_appliance(tmp_path: Any) -> Iterator[Callable[..., Any]]:
    """Starts the real ``tachyon`` binary (see ``real_appliance.py``): call it with
    ``config=``, ``workers=``, ``env=``; every run is stopped (SIGINT) at teardown.
    Skips with the reason when not root, no binary, or no DPDK."""
    from real_appliance import RealAppliance, unavailable

    reason = unavailable()
    if reason:
        pytest.skip(reason)
    runs: list[RealAppliance] = []

    def start(**kw: Any) -> RealAppliance:
        a = RealAppliance(tmp_path / f"run{len(runs)}", **kw)
        runs.append(a)
        return a

    yield start
    for a in runs:
        a.stop(check=False)
