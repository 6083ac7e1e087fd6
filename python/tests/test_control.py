"""Control over a fake DPDK telemetry server (SOCK_SEQPACKET, greeting, one JSON reply per command)."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
from collections.abc import Iterator

import pytest

import tachyon


@pytest.fixture
def telemetry() -> Iterator[tuple[str, list[str]]]:
    d = tempfile.mkdtemp()
    path = os.path.join(d, "dpdk_telemetry.v2")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    srv.bind(path)
    srv.listen(1)
    seen: list[str] = []

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.send(json.dumps({"version": "DPDK 22.11", "pid": 1, "max_output_len": 16384}).encode())
            while data := conn.recv(1024):
                cmd = data.decode()
                seen.append(cmd)
                name, _, params = cmd.partition(",")
                if name == "/tachyon/stats":
                    reply = {name: {"rx_packets": 5, "drops": {"bad_magic": 1}}}
                elif name == "/tachyon/limit":
                    burst = params.split(",")[3]
                    reply = {name: {"refused": "burst must be > 0"} if burst == "0" else {"applied": params}}
                elif name == "/tachyon/reload":
                    reply = {name: {"reloaded": "3 rules"}}
                else:
                    reply = {name: None}
                conn.send(json.dumps(reply).encode())

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    yield path, seen
    srv.close()
    os.unlink(path)
    os.rmdir(d)


def test_control_commands(telemetry: tuple[str, list[str]]) -> None:
    path, seen = telemetry
    with tachyon.Control(socket_path=path) as c:
        assert c.greeting["max_output_len"] == 16384
        assert c.stats() == {"rx_packets": 5, "drops": {"bad_magic": 1}}
        assert c.reload() == {"reloaded": "3 rules"}
        assert c.set_topic_limit(7, 1000, 100) == {"applied": "topic,7,1000,100"}
        assert c.set_sender_limit(9, 50, 5) == {"applied": "sender,9,50,5"}
        with pytest.raises(tachyon.ControlError, match="refused: burst must be > 0"):
            c.set_topic_limit(7, 1000, 0)
        with pytest.raises(tachyon.ControlError, match="does not know or failed '/tachyon/bridge'"):
            c.bridge()
        with pytest.raises(ValueError, match="rate must be a non-negative int"):
            c.set_topic_limit(7, -1, 1)
        assert "open" in repr(c)
    assert c.closed
    assert seen == [
        "/tachyon/stats",
        "/tachyon/reload",
        "/tachyon/limit,topic,7,1000,100",
        "/tachyon/limit,sender,9,50,5",
        "/tachyon/limit,topic,7,1000,0",
        "/tachyon/bridge",
    ]


async def test_async_control(telemetry: tuple[str, list[str]]) -> None:
    path, _ = telemetry
    async with tachyon.AsyncControl(socket_path=path) as c:
        assert (await c.stats())["rx_packets"] == 5
        assert await c.set_topic_limit(1, 2, 3) == {"applied": "topic,1,2,3"}


def test_missing_socket_is_connection_error() -> None:
    with pytest.raises(ConnectionError, match="no appliance telemetry socket at /var/run/dpdk/nope-"):
        tachyon.Control(file_prefix="nope-" + os.urandom(4).hex())
