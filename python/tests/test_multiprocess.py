"""Two producer processes on one shard: every accepted message arrives exactly once, in order per producer."""

from __future__ import annotations

import multiprocessing as mp
import time

import numpy as np

import tachyon
from tachyon._testing import Appliance

PER_PRODUCER = 30_000
BATCH = 500
TOPIC = 5  # shard 1 of 2


def produce(path: str, sender: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    accepted = 0
    refusals = 0
    with tachyon.Bridge(path) as b:
        for start in range(0, PER_PRODUCER, BATCH):
            seq = np.arange(start, start + BATCH, dtype=np.uint64)
            payload = seq.view(np.uint8)  # 8-byte payload: the sequence number
            offsets = np.arange(0, 8 * BATCH + 1, 8, dtype=np.int64)
            t = np.full(BATCH, TOPIC, np.uint32)
            s = np.full(BATCH, sender, np.uint32)
            while True:
                try:
                    accepted += int(b.publish_batch(t, s, payload, offsets).sum())
                    break
                except tachyon.BackpressureError:  # one shard: nothing of this batch is in
                    refusals += 1
                    time.sleep(0.0002)
    out.put((sender, accepted, refusals))


def test_two_processes_one_shard_exactly_once(region_path: str) -> None:
    ctx = mp.get_context("spawn")
    with (
        Appliance(
            region_path,
            shards=2,
            ingress_ring_bytes=1 << 16,
            subscriber_slots=2,
            subscriber_ring_bytes=1 << 24,
            max_message_bytes=1024,
        ) as a,
        tachyon.Bridge(a.path) as b,
        b.subscribe() as sub,
    ):
        q = ctx.Queue()
        procs = [ctx.Process(target=produce, args=(region_path, sender, q)) for sender in (11, 22)]
        for p in procs:
            p.start()
        senders, seqs = [], []
        total = 0
        deadline = time.monotonic() + 60
        while total < 2 * PER_PRODUCER and time.monotonic() < deadline:
            batch = sub.poll(0.5)
            if batch is None:
                continue
            assert (batch.topics == TOPIC).all()
            assert (np.diff(batch.offsets) == 8).all()
            senders.append(batch.senders.copy())
            seqs.append(batch.payloads.view(np.uint64).copy())
            total += len(batch)
        results = sorted(q.get(timeout=30) for _ in procs)
        for p in procs:
            p.join(10)
            assert p.exitcode == 0
        assert sub.overflow == 0
    assert [r[1] for r in results] == [PER_PRODUCER, PER_PRODUCER]
    s_all, q_all = np.concatenate(senders), np.concatenate(seqs)
    assert len(s_all) == 2 * PER_PRODUCER
    for sender in (11, 22):
        mine = q_all[s_all == sender]
        assert (mine == np.arange(PER_PRODUCER, dtype=np.uint64)).all(), "each exactly once, in order"
