"""asyncio client: :class:`AsyncBridge` and :class:`AsyncSubscription` (uvloop works too)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from ._bridge import Bridge, arrow_columns
from ._closing import Closing
from ._tachyon import BackpressureError, Batch, Subscription

__all__ = ["BACKOFF_MAX", "BACKOFF_MIN", "AsyncBridge", "AsyncSubscription"]

#: First sleep after a refused shard or an empty poll, in seconds.
BACKOFF_MIN = 50e-6
#: Longest sleep between two attempts of a waiting publisher, in seconds.
BACKOFF_MAX = 5e-3
#: Longest sleep between two polls of an idle subscription, in seconds.
POLL_BACKOFF_MAX = 2e-3


def _subset(
    topics: npt.NDArray[np.uint32],
    senders: npt.NDArray[np.uint32],
    payloads: npt.NDArray[np.uint8],
    offsets: npt.NDArray[np.int64],
    keep: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32], npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """The messages selected by ``keep``, repacked into fresh columns (vectorised)."""
    lengths = (offsets[1:] - offsets[:-1])[keep]
    starts = offsets[:-1][keep]
    new_offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    index = np.repeat(starts - new_offsets[:-1], lengths) + np.arange(new_offsets[-1], dtype=np.int64)
    return topics[keep], senders[keep], payloads[index], new_offsets


class AsyncSubscription(Closing):
    """Asynchronous view of a :class:`Subscription`: ``async for batch in sub``.

    Polls without blocking the event loop: an empty poll is followed by
    ``asyncio.sleep`` with back-off from 50 µs doubling to 2 ms, reset when a batch
    arrives. Under load no sleep happens (lowest latency); when idle the loop wakes at most
    about 500 times a second, which costs what the platform charges for 500 timer
    wake-ups (a bare asyncio loop sleeping 2 ms at a time used 9 % of a vCPU on the
    development VM, a Firecracker guest). Batches own their (zero-copy) arrays.
    """

    def __init__(self, sub: Subscription) -> None:
        self._sub = sub

    @property
    def subscription(self) -> Subscription:
        """The underlying synchronous subscription."""
        return self._sub

    @property
    def topics(self) -> list[int] | None:
        """Topics subscribed to (``None`` = every topic)."""
        return self._sub.topics

    @property
    def overflow(self) -> int:
        """Messages dropped for this subscriber because it did not read fast enough."""
        return self._sub.overflow

    async def poll(self, timeout: float | None = None) -> Batch | None:
        """Wait up to ``timeout`` seconds (``None`` = forever) for the next batch; ``None`` on timeout."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        backoff = BACKOFF_MIN
        while True:
            batch = self._sub.poll(0)
            if batch is not None:
                return batch
            if deadline is not None:
                left = deadline - loop.time()
                if left <= 0:
                    return None
                await asyncio.sleep(min(backoff, left))
            else:
                await asyncio.sleep(backoff)
            backoff = min(backoff * 2, POLL_BACKOFF_MAX)

    def __aiter__(self) -> AsyncSubscription:
        return self

    async def __anext__(self) -> Batch:
        batch = await self.poll(None)
        assert batch is not None
        return batch

    def close(self) -> None:
        """Release the subscriber slot. Idempotent."""
        self._sub.close()

    async def aclose(self) -> None:
        """Release the subscriber slot (async-generator style). Idempotent."""
        self.close()

    def __repr__(self) -> str:
        return f"<tachyon.AsyncSubscription of {self._sub!r}>"


class AsyncBridge(Closing):
    """asyncio client of the appliance's bridge (works on the default loop and uvloop).

    ``AsyncBridge(path=None)`` connects like :class:`Bridge`. :meth:`publish_batch` *waits*
    for room instead of raising :class:`BackpressureError`: it retries only the refused
    shards' messages, sleeping with back-off from 50 µs doubling to 5 ms (``asyncio.sleep``,
    never a busy spin). Use ``async with`` or call :meth:`close`.

    Example::

        async with tachyon.AsyncBridge() as bridge:
            await bridge.publish_batch(topics, senders, payloads, offsets)
            async with bridge.subscribe([7]) as sub:
                async for batch in sub:
                    print(len(batch))
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._bridge = Bridge(path)

    @property
    def bridge(self) -> Bridge:
        """The underlying synchronous :class:`Bridge`."""
        return self._bridge

    @property
    def path(self) -> str:
        """Path of the bridge region file."""
        return str(self._bridge.path)

    @property
    def shards(self) -> int:
        """Number of shards; a message goes to shard ``topic % shards``."""
        return self._bridge.shards

    @property
    def max_message_bytes(self) -> int:
        """Largest payload accepted, in bytes."""
        return self._bridge.max_message_bytes

    @property
    def max_part_bytes(self) -> int:
        """Largest shard part accepted, in encoded bytes (see :attr:`Bridge.max_part_bytes`)."""
        return self._bridge.max_part_bytes

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._bridge.closed

    async def publish_batch(self, topics: Any, senders: Any, payloads: Any, offsets: Any) -> npt.NDArray[np.uint64]:
        """Publish a batch, waiting for room in full shards; returns messages accepted per shard.

        Same arguments, validation and errors as :meth:`Bridge.publish_batch`, except that a
        full shard is retried (its messages only, in order) until accepted. A part over
        :attr:`max_part_bytes` raises ``ValueError`` at once (it could never fit); a part
        within it always fits an empty ring, though a big one may wait longer for room. Cancelling the
        task stops the retries: messages of shards not accepted by then are not published.
        """
        try:
            return self._bridge.publish_batch(topics, senders, payloads, offsets)
        except BackpressureError as e:
            total = np.asarray(e.accepted, dtype=np.uint64).copy()
            keep = ~np.asarray(e.mask, dtype=np.bool_)
        t = np.asarray(topics, dtype=np.uint32)
        s = np.asarray(senders, dtype=np.uint32)
        p = np.frombuffer(payloads, dtype=np.uint8)
        o = np.asarray(offsets).astype(np.int64)
        t, s, p, o = _subset(t, s, p, o, keep)
        backoff = BACKOFF_MIN
        while True:
            await asyncio.sleep(backoff)
            try:
                total += self._bridge.publish_batch(t, s, p, o)
                return total
            except BackpressureError as e:
                accepted = np.asarray(e.accepted, dtype=np.uint64)
                total += accepted
                if accepted.any():
                    backoff = BACKOFF_MIN
                    t, s, p, o = _subset(t, s, p, o, ~np.asarray(e.mask, dtype=np.bool_))
                else:
                    backoff = min(backoff * 2, BACKOFF_MAX)

    async def publish_arrow(self, topics: Any, senders: Any, binary_array: Any) -> npt.NDArray[np.uint64]:
        """Publish a pyarrow ``BinaryArray``/``LargeBinaryArray``, waiting for room (see :meth:`publish_batch`)."""
        data, offsets = arrow_columns(binary_array)
        return await self.publish_batch(topics, senders, data, offsets)

    def subscribe(self, topics: Iterable[int] | None = None) -> AsyncSubscription:
        """Subscribe to ``topics`` (``None`` = every topic); ``async for batch in sub``."""
        return AsyncSubscription(self._bridge.subscribe(None if topics is None else list(topics)))

    def close(self) -> None:
        """Unmap the region. Idempotent."""
        self._bridge.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<tachyon.AsyncBridge path={self.path!r} shards={self.shards} {state}>"
