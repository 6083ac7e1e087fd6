"""Steering the appliance over its DPDK telemetry socket: :class:`Control`, :class:`AsyncControl`."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
from typing import Any

from ._closing import Closing

__all__ = ["AsyncControl", "Control", "ControlError"]


class ControlError(Exception):
    """The appliance refused a control command, or answered something unexpected."""


def default_socket_path(file_prefix: str = "rte") -> str:
    """``/var/run/dpdk/<file_prefix>/dpdk_telemetry.v2`` (the DPDK telemetry socket)."""
    return f"/var/run/dpdk/{file_prefix}/dpdk_telemetry.v2"


class Control(Closing):
    """Synchronous client of the appliance's telemetry socket (``AF_UNIX``, ``SOCK_SEQPACKET``).

    ``Control(file_prefix="rte", socket_path=None)`` connects to
    ``/var/run/dpdk/<file_prefix>/dpdk_telemetry.v2`` (or ``socket_path``) and reads the
    greeting. Each method sends one command and returns the reply's payload (a dict).
    Raises ``ConnectionError`` when the socket is missing and :class:`ControlError` when a
    command is refused or unknown. Thread-safe (one request at a time).

    Example::

        with tachyon.Control() as ctl:
            print(ctl.stats()["rx_packets"])
            ctl.set_topic_limit(7, rate=1000, burst=100)
    """

    def __init__(
        self, file_prefix: str = "rte", socket_path: str | os.PathLike[str] | None = None, timeout: float = 5.0
    ):
        self.socket_path = os.fspath(socket_path) if socket_path is not None else default_socket_path(file_prefix)
        self._lock = threading.Lock()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.settimeout(timeout)
        try:
            sock.connect(self.socket_path)
            greeting = json.loads(sock.recv(65536))
        except (FileNotFoundError, ConnectionRefusedError) as e:
            sock.close()
            raise ConnectionError(f"no appliance telemetry socket at {self.socket_path}: {e}") from e
        except (OSError, ValueError) as e:
            sock.close()
            raise ConnectionError(f"telemetry socket {self.socket_path} did not greet: {e}") from e
        self._sock: socket.socket | None = sock
        #: The server's greeting (``version``, ``pid``, ``max_output_len``).
        self.greeting: dict[str, Any] = greeting
        self._bufsize = max(int(greeting.get("max_output_len", 16384)), 16384)

    def request(self, command: str) -> Any:
        """Send ``command`` (e.g. ``"/tachyon/stats"`` or ``"/tachyon/limit,topic,7,1000,100"``)
        and return the value under the command's name in the reply."""
        with self._lock:
            if self._sock is None:
                raise ValueError("operation on a closed Control")
            try:
                self._sock.send(command.encode())
                raw = self._sock.recv(self._bufsize)
            except OSError as e:
                raise ConnectionError(f"telemetry socket {self.socket_path}: {e}") from e
        if not raw:
            raise ConnectionError(f"telemetry socket {self.socket_path} closed the connection")
        reply = json.loads(raw)
        name = command.split(",", 1)[0]
        if not isinstance(reply, dict) or name not in reply:
            raise ControlError(f"unexpected reply to {command!r}: {raw[:200]!r}")
        value = reply[name]
        if value is None:
            raise ControlError(f"the appliance does not know or failed {command!r}")
        if isinstance(value, dict) and "refused" in value:
            raise ControlError(f"{command!r} refused: {value['refused']}")
        return value

    def stats(self) -> dict[str, Any]:
        """Totals over every worker and drops by reason (``/tachyon/stats``)."""
        return dict(self.request("/tachyon/stats"))

    def workers(self) -> dict[str, Any]:
        """Counters of each worker, keyed by lcore (``/tachyon/workers``)."""
        return dict(self.request("/tachyon/workers"))

    def rules(self) -> dict[str, Any]:
        """Governance: hits per rule and the last reconciliation (``/tachyon/rules``)."""
        return dict(self.request("/tachyon/rules"))

    def bridge(self) -> dict[str, Any]:
        """Bridge statistics: rings, subscribers (``/tachyon/bridge``)."""
        return dict(self.request("/tachyon/bridge"))

    def reload(self) -> dict[str, Any]:
        """Reload rules and limits from the appliance's ``--config`` (``/tachyon/reload``)."""
        return dict(self.request("/tachyon/reload"))

    def _limit(self, kind: str, ident: int, rate: int, burst: int) -> dict[str, Any]:
        for name, v in (("id", ident), ("rate", rate), ("burst", burst)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be a non-negative int, got {v!r}")
        return dict(self.request(f"/tachyon/limit,{kind},{ident},{rate},{burst}"))

    def set_topic_limit(self, topic: int, rate: int, burst: int) -> dict[str, Any]:
        """Limit ``topic`` to ``rate`` messages/s with bursts of ``burst`` (``/tachyon/limit,topic,...``)."""
        return self._limit("topic", topic, rate, burst)

    def set_sender_limit(self, sender: int, rate: int, burst: int) -> dict[str, Any]:
        """Limit ``sender`` to ``rate`` messages/s with bursts of ``burst`` (``/tachyon/limit,sender,...``)."""
        return self._limit("sender", sender, rate, burst)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._sock is None

    def close(self) -> None:
        """Close the socket. Idempotent."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def __repr__(self) -> str:
        return f"<tachyon.Control socket={self.socket_path!r} {'closed' if self.closed else 'open'}>"


class AsyncControl(Closing):
    """asyncio variant of :class:`Control`: every method is a coroutine that runs the
    blocking socket call in the loop's default executor (requests are tiny and rare)."""

    def __init__(
        self, file_prefix: str = "rte", socket_path: str | os.PathLike[str] | None = None, timeout: float = 5.0
    ):
        self._ctl = Control(file_prefix, socket_path, timeout)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def request(self, command: str) -> Any:
        """See :meth:`Control.request`."""
        return await self._run(self._ctl.request, command)

    async def stats(self) -> dict[str, Any]:
        """See :meth:`Control.stats`."""
        return dict(await self._run(self._ctl.stats))

    async def workers(self) -> dict[str, Any]:
        """See :meth:`Control.workers`."""
        return dict(await self._run(self._ctl.workers))

    async def rules(self) -> dict[str, Any]:
        """See :meth:`Control.rules`."""
        return dict(await self._run(self._ctl.rules))

    async def bridge(self) -> dict[str, Any]:
        """See :meth:`Control.bridge`."""
        return dict(await self._run(self._ctl.bridge))

    async def reload(self) -> dict[str, Any]:
        """See :meth:`Control.reload`."""
        return dict(await self._run(self._ctl.reload))

    async def set_topic_limit(self, topic: int, rate: int, burst: int) -> dict[str, Any]:
        """See :meth:`Control.set_topic_limit`."""
        return dict(await self._run(self._ctl.set_topic_limit, topic, rate, burst))

    async def set_sender_limit(self, sender: int, rate: int, burst: int) -> dict[str, Any]:
        """See :meth:`Control.set_sender_limit`."""
        return dict(await self._run(self._ctl.set_sender_limit, sender, rate, burst))

    def close(self) -> None:
        """Close the socket. Idempotent."""
        self._ctl.close()

    def __repr__(self) -> str:
        return f"<tachyon.AsyncControl socket={self._ctl.socket_path!r} {'closed' if self._ctl.closed else 'open'}>"
