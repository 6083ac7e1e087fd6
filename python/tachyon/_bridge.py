"""Synchronous client: :class:`Bridge`."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from . import _tachyon

__all__ = ["Bridge", "arrow_columns"]


def arrow_columns(array: Any) -> tuple[Any, npt.NDArray[Any]]:
    """Return ``(data_buffer, offsets)`` of a pyarrow ``BinaryArray``/``LargeBinaryArray``
    (or string arrays, or a ``ChunkedArray`` of them) without copying the payloads.

    The offsets are a NumPy view of the array's offsets buffer (int32 or int64), starting
    at ``array.offset``; they need not start at 0. Raises ``ValueError`` if the array holds
    nulls and ``TypeError`` if it is not a binary/string array.
    """
    if hasattr(array, "combine_chunks"):  # ChunkedArray
        array = array.combine_chunks()
    typ = getattr(array, "type", None)
    name = str(typ)
    if name in ("binary", "string"):
        dtype: type[np.signedinteger[Any]] = np.int32
    elif name in ("large_binary", "large_string"):
        dtype = np.int64
    else:
        raise TypeError(
            f"binary_array must be a pyarrow BinaryArray or LargeBinaryArray, got {type(array).__name__} of type {typ}"
        )
    if array.null_count:
        raise ValueError(f"binary_array holds {array.null_count} null(s); Tachyon messages cannot be null")
    n = len(array)
    _validity, offsets_buf, data = array.buffers()[:3]
    itemsize = np.dtype(dtype).itemsize
    if offsets_buf is None:
        offsets = np.zeros(n + 1, dtype=dtype)
    else:
        offsets = np.frombuffer(offsets_buf, dtype=dtype, count=n + 1, offset=array.offset * itemsize)
    return (data if data is not None else b""), offsets


class Bridge(_tachyon.Bridge):
    """A connection to the appliance's shared-memory bridge.

    ``Bridge(path=None)`` maps the region the appliance created (default
    ``Bridge.default_path("rte")``, i.e. ``/dev/shm/tachyon-rte.bridge``). Raises
    :class:`ApplianceError` (a ``ConnectionError``) when there is no appliance at ``path``,
    it is gone, or it speaks another layout version.

    Thread-safe: several threads may publish through one Bridge at once (the GIL is released
    while Rust copies a batch). Use it as a context manager or call :meth:`close`.

    Example::

        with tachyon.Bridge() as bridge:
            topics = np.array([7, 8], dtype=np.uint32)
            senders = np.array([1, 1], dtype=np.uint32)
            bridge.publish_batch(topics, senders, b"helloworld", np.array([0, 5, 10]))
    """

    def publish_arrow(self, topics: Any, senders: Any, binary_array: Any) -> npt.NDArray[np.uint64]:
        """Publish a pyarrow ``BinaryArray``/``LargeBinaryArray`` (one message per element),
        read straight from its buffers (no copy on the Python side).

        ``topics`` and ``senders`` are uint32 arrays of ``len(binary_array)``. Honours
        ``binary_array.offset`` (slices); refuses nulls with ``ValueError``. Returns and
        raises like :meth:`publish_batch`.
        """
        data, offsets = arrow_columns(binary_array)
        return self.publish_batch(topics, senders, data, offsets)
