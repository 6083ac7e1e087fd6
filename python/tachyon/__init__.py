"""Tachyon: publish to and subscribe from the Tachyon appliance, and steer it.

The appliance (a DPDK data plane governing a message bus) exposes a shared-memory
*bridge*: publishers write whole batches into per-shard ingress rings, subscribers read
what the appliance fans out. Batches cross as NumPy arrays in Arrow binary-column layout
(topics, senders, offsets, payloads), never one Python object per message.

- :class:`Bridge` - synchronous publish/subscribe.
- :class:`AsyncBridge` - the same for asyncio (and uvloop); publishing waits for room.
- :class:`Control` / :class:`AsyncControl` - stats, reloads and limits over the
  appliance's DPDK telemetry socket.

Errors: :class:`ApplianceError` (a ``ConnectionError``) when there is no appliance, it is
gone or it speaks another layout version; :class:`BackpressureError` when a shard's ring is
full (sync API); :class:`ControlError` when the appliance refuses a control command;
``TypeError``/``ValueError`` for bad input.
"""

from ._aio import AsyncBridge, AsyncSubscription
from ._bridge import Bridge
from ._control import AsyncControl, Control, ControlError
from ._tachyon import LAYOUT_VERSION, ApplianceError, BackpressureError, Batch, Subscription

__all__ = [
    "LAYOUT_VERSION",
    "ApplianceError",
    "AsyncBridge",
    "AsyncControl",
    "AsyncSubscription",
    "BackpressureError",
    "Batch",
    "Bridge",
    "Control",
    "ControlError",
    "Subscription",
]
__version__ = "0.1.0"
