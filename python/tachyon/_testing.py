"""Test-only helpers: an in-process stand-in for the appliance.

``Appliance(path, shards=1, ...)`` creates a bridge region at ``path`` and runs a
background thread that drains every shard's ingress ring and delivers every message to the
matching subscribers, like the appliance's workers (without governance or the wire).
``pause(shard)``/``resume(shard)`` stop and restart draining one shard (to provoke
backpressure); ``drained()`` counts messages drained per shard; ``close()`` stops the
thread and removes the region file. Not part of the public API.
"""

from ._tachyon import _Appliance as Appliance

__all__ = ["Appliance"]
