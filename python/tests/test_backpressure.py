"""A full shard raises BackpressureError naming only that shard, with an exact mask."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import collect, make_batch, messages

import tachyon
from tachyon._testing import Appliance


def fill(bridge: tachyon.Bridge, shard: int) -> int:
    """Publish to `shard` only until it refuses; return how many messages went in."""
    t, s, p, o = make_batch(100, topics=1)
    t[:] = shard
    total = 0
    for _ in range(10_000):
        try:
            total += int(bridge.publish_batch(t, s, p, o).sum())
        except tachyon.BackpressureError as e:
            assert e.refused_shards == [shard]
            return total
    raise AssertionError("the shard never filled")


def test_full_shard_names_only_itself(region_path: str) -> None:
    with (
        Appliance(region_path, shards=3, ingress_ring_bytes=1 << 16, max_message_bytes=1024) as a,
        tachyon.Bridge(a.path) as b,
        b.subscribe() as sub,
    ):
        a.pause(1)
        filled = fill(b, 1)
        assert filled > 0
        t, s, p, o = make_batch(300, topics=6, seed=5)
        with pytest.raises(tachyon.BackpressureError, match=r"ingress ring full on shard\(s\) \[1\]") as ei:
            b.publish_batch(t, s, p, o)
        e = ei.value
        assert isinstance(e.accepted, np.ndarray) and e.accepted.dtype == np.uint64
        assert e.accepted.tolist() == [100, 0, 100]
        assert e.refused_shards == [1]
        assert e.mask.dtype == np.bool_ and e.mask.shape == (300,)
        assert (e.mask == (t % 3 != 1)).all()
        sent = messages(t, s, p, o)
        got = collect(sub, 200)
        assert sorted(got) == sorted(m for m, k in zip(sent, e.mask, strict=True) if k)
        # resume: what was filled before arrives, and shard 1 takes the refused part again
        a.resume(1)
        assert len(collect(sub, filled)) == filled
        keep = ~e.mask
        refused = [m for m, k in zip(sent, keep, strict=True) if k]
        payload = b"".join(m[2] for m in refused)
        offsets = np.concatenate([[0], np.cumsum([len(m[2]) for m in refused])])
        assert b.publish_batch(t[keep], s[keep], payload, offsets).tolist() == [0, 100, 0]
        assert sorted(collect(sub, 100)) == sorted(refused)
        assert a.drained().tolist()[1] == filled + 100


def test_backpressure_error_is_an_exception() -> None:
    assert issubclass(tachyon.BackpressureError, Exception)
    assert not issubclass(tachyon.BackpressureError, ConnectionError)
    assert issubclass(tachyon.ApplianceError, ConnectionError)
