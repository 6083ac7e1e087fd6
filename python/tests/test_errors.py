"""Bad input and missing/dead/foreign appliances raise clear Python errors, never crash."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pytest
from conftest import part_bytes, part_of

import tachyon
from tachyon._testing import Appliance

U32 = np.uint32


def ok() -> tuple[np.ndarray, np.ndarray, bytes, np.ndarray]:
    return np.array([1, 2], U32), np.array([9, 9], U32), b"abcdef", np.array([0, 3, 6], np.int64)


@pytest.mark.parametrize(
    ("arg", "value", "match"),
    [
        ("topics", np.array([1, 2], np.int64), r"topics must be a uint32 array, got ndarray of dtype int64"),
        ("topics", [1, 2], r"topics must be a uint32 array .*got list"),
        ("senders", np.array([1.0, 2.0]), r"senders must be a uint32 array, got ndarray of dtype float64"),
        ("senders", b"\x01\x00\x00\x00\x02\x00\x00\x00", r"senders must be a uint32 array, got bytes"),
        ("payloads", 12345, r"payloads must be a bytes-like object .*got int"),
        ("payloads", "abcdef", r"payloads must be a bytes-like object .*got str"),
        ("offsets", np.array([0.0, 3.0, 6.0]), r"offsets must be an int32, int64, uint32 or uint64 array, got ndarray"),
        ("offsets", np.array([0, 3, 6], np.int16), r"offsets must be an int32, int64, uint32 or uint64 array"),
        ("offsets", None, r"offsets must be .*got NoneType"),
    ],
)
def test_wrong_type_raises_type_error_naming_argument(
    bridge: tachyon.Bridge, arg: str, value: object, match: str
) -> None:
    args = dict(zip(["topics", "senders", "payloads", "offsets"], ok(), strict=True))
    args[arg] = value
    with pytest.raises(TypeError, match=match):
        bridge.publish_batch(**args)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"senders": np.array([9], U32)}, r"senders has 1 elements, topics has 2"),
        ({"offsets": np.array([0, 6], np.int64)}, r"offsets must have len\(topics\) \+ 1 = 3 elements, got 2"),
        ({"offsets": np.array([0, 4, 3], np.int64)}, r"offsets\[2\]=3 < offsets\[1\]=4"),
        ({"offsets": np.array([0, 3, 7], np.int64)}, r"offsets\[2\]=7 is past the end of the 6-byte payload buffer"),
        ({"offsets": np.array([0, -1, 6], np.int32)}, r"offsets\[1\]=-1 is negative"),
        ({"topics": np.array([[1, 2]], U32)}, r"topics must be one-dimensional, got 2 dimensions"),
        ({"topics": np.array([1, 0, 2, 0], U32)[::2]}, r"topics must be C-contiguous"),
    ],
)
def test_bad_values_raise_value_error(
    appliance: Appliance, bridge: tachyon.Bridge, change: dict[str, object], match: str
) -> None:
    args = dict(zip(["topics", "senders", "payloads", "offsets"], ok(), strict=True))
    args.update(change)
    with bridge.subscribe() as sub:
        with pytest.raises(ValueError, match=match):
            bridge.publish_batch(**args)
        assert sub.poll(0.05) is None, "nothing is published when the batch is invalid"


def test_message_over_maximum(region_path: str) -> None:
    with Appliance(region_path, shards=1, max_message_bytes=100) as a, tachyon.Bridge(a.path) as b:
        assert b.max_message_bytes == 100
        b.publish_batch(np.array([1], U32), np.array([1], U32), bytes(100), np.array([0, 100]))
        with pytest.raises(ValueError, match=r"message 1 is 101 bytes, more than max_message_bytes 100"):
            b.publish_batch(np.array([1, 1], U32), np.array([1, 1], U32), bytes(102), np.array([0, 1, 102]))


def test_part_over_max_part_bytes(region_path: str) -> None:
    with (
        Appliance(region_path, shards=2, ingress_ring_bytes=1 << 16, max_message_bytes=1024) as a,
        tachyon.Bridge(a.path) as b,
        b.subscribe() as sub,
    ):
        limit = b.max_part_bytes
        t, s, p, o = part_of(limit + 1)  # parts step by 8 bytes: the smallest one over the limit
        assert part_bytes(o) == limit + 8
        # plus a small part for shard 1: nothing at all is published when one part is too big
        t, s = np.append(t, U32(1)), np.append(s, U32(1))
        p, o = np.append(p, np.frombuffer(b"other", np.uint8)), np.append(o, o[-1] + 5)
        with pytest.raises(ValueError, match=rf"shard 0 part is {limit + 8} bytes .*more than the {limit}-byte limit"):
            b.publish_batch(t, s, p, o)
        assert sub.poll(0.05) is None, "nothing is published when a part is too big"


def test_closed_bridge_and_subscription(bridge: tachyon.Bridge) -> None:
    sub = bridge.subscribe()
    sub.close()
    sub.close()
    with pytest.raises(ValueError, match="closed Subscription"):
        sub.poll(0)
    bridge.close()
    with pytest.raises(ValueError, match="closed Bridge"):
        bridge.publish_batch(*ok())
    with pytest.raises(ValueError, match="closed Bridge"):
        bridge.subscribe()


def test_subscribe_and_poll_arguments(bridge: tachyon.Bridge) -> None:
    with pytest.raises(ValueError, match=r"at most 64 topics, got 65"):
        bridge.subscribe(range(65))
    with pytest.raises(TypeError):
        bridge.subscribe("abc")  # type: ignore[arg-type]
    with bridge.subscribe() as sub, pytest.raises(ValueError, match=r"timeout must be None or >= 0"):
        sub.poll(-1)


def test_publish_arrow_refuses_nulls_and_other_types(bridge: tachyon.Bridge) -> None:
    t, s = np.array([1, 2], U32), np.array([1, 1], U32)
    with pytest.raises(ValueError, match=r"holds 1 null\(s\)"):
        bridge.publish_arrow(t, s, pa.array([b"a", None]))
    with pytest.raises(TypeError, match=r"binary_array must be a pyarrow BinaryArray or LargeBinaryArray"):
        bridge.publish_arrow(t, s, pa.array([1, 2]))


def test_no_appliance_is_connection_error(region_path: str) -> None:
    with pytest.raises(ConnectionError, match=r"no appliance bridge at .*is tachyon running") as e:
        tachyon.Bridge(region_path)
    assert isinstance(e.value, tachyon.ApplianceError)


def test_default_path() -> None:
    assert str(tachyon.Bridge.default_path()) == "/dev/shm/tachyon-rte.bridge"
    assert str(tachyon.Bridge.default_path("x1")) == "/dev/shm/tachyon-x1.bridge"


def test_dead_appliance_is_connection_error(region_path: str) -> None:
    code = (
        "import sys, time\n"
        "from tachyon._testing import Appliance\n"
        f"a = Appliance({region_path!r})\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        with tachyon.Bridge(region_path) as b:  # alive: connects
            assert b.is_alive()
            sub = b.subscribe()
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
            assert os.path.exists(region_path), "a killed appliance leaves its region behind"
            assert not b.is_alive()
            with pytest.raises(tachyon.ApplianceError, match="gone"):
                sub.poll(1)
    finally:
        p.kill()
        p.wait()
        if p.stdout is not None:
            p.stdout.close()
    with pytest.raises(ConnectionError, match=r"appliance that created the bridge is gone"):
        tachyon.Bridge(region_path)


def test_appliance_closing_ends_subscription(region_path: str) -> None:
    a = Appliance(region_path)
    b = tachyon.Bridge(region_path)
    sub = b.subscribe()
    a.close()
    t0 = time.monotonic()
    with pytest.raises(tachyon.ApplianceError):
        sub.poll(5)
    assert time.monotonic() - t0 < 1


def _header(version: int) -> bytes:
    h = bytearray(4096)
    h[0:8] = b"TYBRIDGE"
    h[8:12] = struct.pack("<I", version)
    h[12:16] = struct.pack("<I", 4096)
    return bytes(h)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (
            _header(tachyon.LAYOUT_VERSION + 98),
            rf"bridge layout version {tachyon.LAYOUT_VERSION + 98}, this library speaks",
        ),
        (b"\0" * 4096, r"bad bridge header: magic"),
        (b"TYBRIDGE", r"bad bridge header: file is 8 bytes"),
    ],
)
def test_foreign_region_is_connection_error(region_path: str, content: bytes, match: str) -> None:
    with open(region_path, "wb") as f:
        f.write(content)
    with pytest.raises(tachyon.ApplianceError, match=match):
        tachyon.Bridge(region_path)
