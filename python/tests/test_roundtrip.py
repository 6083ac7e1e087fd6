"""Publish -> subscribe round trips, byte for byte, with every payload type."""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest
from conftest import by_shard, collect, make_batch, messages, part_bytes, part_of

import tachyon
from tachyon._testing import Appliance


@pytest.mark.parametrize("n", [1, 7, 100, 1000, 10000])
def test_roundtrip_numpy(bridge: tachyon.Bridge, n: int) -> None:
    t, s, p, o = make_batch(n, seed=n)
    with bridge.subscribe() as sub:
        accepted = bridge.publish_batch(t, s, p, o)
        assert accepted.dtype == np.uint64
        assert accepted.tolist() == [int((t % 2 == 0).sum()), int((t % 2 == 1).sum())]
        got = collect(sub, n)
        assert sub.overflow == 0
    sent = messages(t, s, p, o)
    # order is kept within a shard; shards interleave in any order
    assert by_shard(got, 2) == by_shard(sent, 2)


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "numpy_u8", "numpy_u64", "pyarrow_buffer"])
@pytest.mark.parametrize("offsets_dtype", [np.int32, np.int64, np.uint32, np.uint64])
def test_payload_and_offset_types(bridge: tachyon.Bridge, kind: str, offsets_dtype: type) -> None:
    t, s, p, o = make_batch(64, seed=3)
    pad = (-len(p)) % 8
    p = np.concatenate([p, np.zeros(pad, np.uint8)])  # so it can be viewed as uint64
    payload = {
        "bytes": lambda: p.tobytes(),
        "bytearray": lambda: bytearray(p.tobytes()),
        "memoryview": lambda: memoryview(p.tobytes()),
        "numpy_u8": lambda: p,
        "numpy_u64": lambda: p.view(np.uint64),
        "pyarrow_buffer": lambda: pa.py_buffer(p.tobytes()),
    }[kind]()
    with bridge.subscribe() as sub:
        bridge.publish_batch(memoryview(t), s, payload, o.astype(offsets_dtype))
        got = collect(sub, 64)
    assert by_shard(got, 2) == by_shard(messages(t, s, p, o), 2)


@pytest.mark.parametrize("large", [False, True])
def test_publish_arrow_respects_slice_offset(bridge: tachyon.Bridge, large: bool) -> None:
    values = [f"message-{i}".encode() * (i % 3 + 1) for i in range(50)]
    arr = pa.array(values, type=pa.large_binary() if large else pa.binary())
    sliced = arr.slice(10, 25)  # .offset == 10: offsets must be read from there
    assert sliced.offset == 10
    t = np.arange(25, dtype=np.uint32)
    s = np.full(25, 3, np.uint32)
    with bridge.subscribe() as sub:
        bridge.publish_arrow(t, s, sliced)
        got = collect(sub, 25)
    assert sorted(got) == sorted((i, 3, values[10 + i]) for i in range(25))


def test_subscription_filters_topics(bridge: tachyon.Bridge) -> None:
    t, s, p, o = make_batch(200, topics=8)
    with bridge.subscribe([3, 6]) as sub:
        assert sub.topics == [3, 6]
        bridge.publish_batch(t, s, p, o)
        got = collect(sub, 50)
        assert sub.poll(0.05) is None
    assert {m[0] for m in got} == {3, 6}


def test_batch_is_owned_and_valid_after_next_poll(bridge: tachyon.Bridge) -> None:
    with bridge.subscribe() as sub:
        bridge.publish_batch(np.array([0], np.uint32), np.array([1], np.uint32), b"first", np.array([0, 5]))
        b1 = sub.poll(2)
        bridge.publish_batch(np.array([0], np.uint32), np.array([1], np.uint32), b"other", np.array([0, 5]))
        b2 = sub.poll(2)
    assert b1 is not None and b2 is not None
    assert b1.payload(0) == b"first" and b2.payload(-1) == b"other"
    assert len(b1) == 1 and b1.offsets.tolist() == [0, 5] and b1.payloads.tobytes() == b"first"
    assert repr(b1) == "<tachyon.Batch len=1 payload_bytes=5>"


def test_poll_is_zero_copy(bridge: tachyon.Bridge) -> None:
    """Each column is the Rust vector the poll gathered into, moved into NumPy: the array does
    not own a NumPy allocation (no copy was made), its base is the Rust container holding the
    vector, and the memory stays the batch's own across later polls."""
    t, s, p, o = make_batch(4000, max_len=200, seed=5)
    with bridge.subscribe() as sub:
        bridge.publish_batch(t, s, p, o)
        b1 = sub.poll(2)
        assert b1 is not None
        cols: list[np.ndarray] = [b1.topics, b1.senders, b1.offsets, b1.payloads]
        for arr in cols:
            assert not arr.flags.owndata, "NumPy did not allocate (copy into) this array"
            assert arr.base is not None and not isinstance(arr.base, np.ndarray)
            assert type(arr.base).__name__ == "PySliceContainer"  # rust-numpy's owner of a moved Vec
            assert arr.flags.c_contiguous and arr.flags.writeable
        assert len({id(a.base) for a in cols}) == 4, "each column owns its own buffer"
        assert b1.payloads is b1.payloads, "the getters hand out the same array, not copies"
        assert np.array(b1.payloads).flags.owndata, "(a real copy, for contrast, owns its data)"
        saved = [a.copy() for a in cols]
        addresses = [a.ctypes.data for a in cols]
        for _ in range(3):  # later polls gather into other memory and leave b1 alone
            bridge.publish_batch(t, s, p, o)
            b2 = sub.poll(2)
            assert b2 is not None
            for a, c in zip(cols, [b2.topics, b2.senders, b2.offsets, b2.payloads], strict=True):
                assert not np.shares_memory(a, c)
        del b2
    assert [a.ctypes.data for a in cols] == addresses
    for a, c in zip(cols, saved, strict=True):
        assert np.array_equal(a, c)
    del b1  # the arrays outlive the batch object and the subscription
    assert messages(cols[0], cols[1], cols[3], cols[2]) == messages(saved[0], saved[1], saved[3], saved[2])


def test_parts_over_half_a_ring_are_delivered(region_path: str) -> None:
    with (
        Appliance(region_path, shards=2, ingress_ring_bytes=1 << 16, max_message_bytes=1024) as a,
        tachyon.Bridge(a.path) as b,
        b.subscribe() as sub,
    ):
        limit = b.max_part_bytes
        assert limit == (1 << 16) - 16 - (1024 + 16)  # ring - block headers - largest message
        assert limit > (1 << 16) // 2
        t, s, p, o = part_of(limit)
        assert part_bytes(o) == limit
        small = part_of(2048)
        assert 2048 + limit > 1 << 16
        # a fresh ring takes the part in one block; after the 2 KiB part it straddles the
        # ring's end (two blocks in one claim). Either way it arrives whole and in order.
        for first in (None, small):
            if first is not None:
                b.publish_batch(*first)
                assert collect(sub, len(first[0])) == messages(*first)
            deadline = time.monotonic() + 5
            while True:  # the worker may not have published its head yet: retry briefly
                try:
                    assert b.publish_batch(t, s, p, o).tolist() == [len(t), 0]
                    break
                except tachyon.BackpressureError:
                    assert time.monotonic() < deadline
                    time.sleep(0.001)
            assert collect(sub, len(t)) == messages(t, s, p, o)
        assert sub.overflow == 0


def test_poll_timeout_returns_none(bridge: tachyon.Bridge) -> None:
    with bridge.subscribe() as sub:
        assert sub.poll(0) is None
        assert sub.poll(0.02) is None


def test_threads_publish_concurrently(bridge: tachyon.Bridge) -> None:
    per_thread, batches = 200, 20
    sent: list[tuple[int, int, bytes]] = []
    with bridge.subscribe() as sub:

        def run(sender: int) -> None:
            for k in range(batches):
                t, s, p, o = make_batch(per_thread, sender=sender, seed=sender * 1000 + k)
                sent.extend(messages(t, s, p, o))
                while True:
                    try:
                        bridge.publish_batch(t, s, p, o)
                        break
                    except tachyon.BackpressureError as e:  # retry only what was refused
                        assert e.mask.sum() == sum(e.accepted)
                        keep = ~e.mask
                        msgs = [m for m, k in zip(messages(t, s, p, o), keep, strict=True) if k]  # refused part
                        t, s = t[keep], s[keep]
                        p = np.frombuffer(b"".join(m[2] for m in msgs) or b"\0", np.uint8)
                        o = np.concatenate([[0], np.cumsum([len(m[2]) for m in msgs])]).astype(np.int64)

        threads = [threading.Thread(target=run, args=(i,)) for i in (1, 2, 3)]
        for th in threads:
            th.start()
        got = collect(sub, 3 * per_thread * batches, timeout=20)
        for th in threads:
            th.join()
    assert {m[1] for m in got} == {1, 2, 3}
    assert Counter(got) == Counter(sent)


def test_reprs(appliance: object, bridge: tachyon.Bridge) -> None:
    assert repr(bridge).startswith('<tachyon.Bridge path="/dev/shm/tachyon-pytest-')
    assert "shards=2" in repr(bridge) and repr(bridge).endswith("open>")
    with bridge.subscribe([5]) as sub:
        assert "topics=[5]" in repr(sub) and "open" in repr(sub)
    assert repr(sub).endswith("closed>")
    bridge.close()
    assert bridge.closed and repr(bridge).endswith("closed>")
    assert "running" in repr(appliance)


def test_a_new_subscriber_gets_what_is_published_right_after_subscribing(bridge: tachyon.Bridge) -> None:
    # A message published after subscribe() returned reaches the subscription, on every
    # shard, however the appliance's drain rounds fall against the two calls. Many short
    # rounds, so a refresh of the subscriber table that runs ahead of the drain shows up.
    t = np.array([0, 1], np.uint32)  # one message per shard
    s = np.array([9, 9], np.uint32)
    p = np.frombuffer(b"ab", np.uint8)
    o = np.array([0, 1, 2], np.uint32)
    for _ in range(5000):
        with subscribe_when_a_slot_is_free(bridge) as sub:
            bridge.publish_batch(t, s, p, o)
            got = collect(sub, 2)
        assert sorted(got) == [(0, 9, b"a"), (1, 9, b"b")]


def subscribe_when_a_slot_is_free(bridge: tachyon.Bridge) -> tachyon.Subscription:
    """A closed subscription's slot is free again once every shard let go of it."""
    end = time.monotonic() + 5.0
    while True:
        try:
            return bridge.subscribe()
        except RuntimeError as e:
            if "no free subscriber slot" not in str(e) or time.monotonic() > end:
                raise
            time.sleep(0.0005)
