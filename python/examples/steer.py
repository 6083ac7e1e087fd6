"""Watch per-topic rates through a subscription and tighten the hottest topic's limit.

Subscribes to every topic, counts messages per topic with NumPy (``bincount`` over
``batch.topics``, no Python object per message) and, once a second, if the hottest topic
ran over ``--budget`` messages/s, sets its limit to the budget over the appliance's
telemetry socket (``/tachyon/limit,topic,ID,RATE,BURST``). Prints what it did.

    python examples/steer.py --file-prefix rte --budget 100000 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np

import tachyon


async def steer(bridge_path: str | None, file_prefix: str, budget: int, duration: float) -> None:
    async with tachyon.AsyncBridge(bridge_path or tachyon.Bridge.default_path(file_prefix)) as bridge:
        control = tachyon.AsyncControl(file_prefix=file_prefix)
        counts = np.zeros(0, dtype=np.int64)
        limited: dict[int, int] = {}
        window = time.monotonic()
        end = window + duration
        async with bridge.subscribe() as sub:
            while (now := time.monotonic()) < end:
                batch = await sub.poll(timeout=max(0.0, min(end, window + 1.0) - now))
                if batch is not None:
                    c = np.bincount(batch.topics)
                    if len(c) > len(counts):
                        counts = np.pad(counts, (0, len(c) - len(counts)))
                    counts[: len(c)] += c
                now = time.monotonic()
                if now - window < 1.0:
                    continue
                rates = counts / (now - window)
                if len(rates):
                    hot = int(np.argmax(rates))
                    rate = float(rates[hot])
                    print(f"{time.strftime('%X')} hottest topic {hot}: {rate:,.0f} msg/s (budget {budget:,})")
                    if rate > budget and limited.get(hot) != budget:
                        try:
                            reply = await control.set_topic_limit(hot, budget, max(1, budget // 10))
                            limited[hot] = budget
                            print(f"  limited topic {hot} to {budget:,} msg/s: {reply}")
                        except tachyon.ControlError as e:
                            print(f"  appliance refused: {e}")
                counts[:] = 0
                window = now
        control.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bridge", help="bridge region path (default: /dev/shm/tachyon-<file-prefix>.bridge)")
    ap.add_argument("--file-prefix", default="rte", help="the appliance's DPDK --file-prefix")
    ap.add_argument("--budget", type=int, default=100_000, help="messages/s a topic may use")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds to run")
    a = ap.parse_args()
    asyncio.run(steer(a.bridge, a.file_prefix, a.budget, a.duration))


if __name__ == "__main__":
    main()
