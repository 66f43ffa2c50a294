"""The chunk work queue (tasks.deliver.work_queue): order, leases, take-over after a lease expires,
release, cancel and heartbeats, on a real Redis and in-process."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from tasks.deliver.chunks import ChunkRef
from tasks.deliver.work_queue import LocalChunkQueue, RedisChunkQueue


def _refs(n: int) -> list[ChunkRef]:
    return [ChunkRef(job_id="j", index=i, first_row=10 * i + 1, last_row=10 * i + 10, rows=10, location=f"x{i}")
            for i in range(n)]


@pytest.fixture(params=["local", "redis"])
def make_queue(request, redis_url):
    def make(lease_s: float = 30.0):
        if request.param == "local":
            return LocalChunkQueue()
        return RedisChunkQueue(redis_url, f"q-{os.getpid()}-{time.monotonic_ns()}", lease_s=lease_s, ttl_s=60)
    return make


def test_chunks_are_taken_in_order_once_each_and_the_queue_drains(make_queue):
    async def scenario():
        queue = make_queue()
        await queue.put(_refs(3))
        first, second = await queue.take("a"), await queue.take("b")
        assert (first[0].index, first[1], second[0].index) == (0, 1, 1)
        assert await queue.remaining() == (1, 2)
        await queue.done(first[0], "a")
        await queue.release(second[0], "b")  # given back: first in line again, taken a second time
        again = await queue.take("a")
        assert (again[0].index, again[1]) == (1, 2)
        third = await queue.take("a")
        assert third[0].index == 2 and await queue.take("b") is None
        await queue.done(again[0], "a")
        await queue.done(third[0], "a")
        assert await queue.remaining() == (0, 0)
        await queue.aclose()
    asyncio.run(scenario())


def test_an_expired_lease_is_taken_over_and_a_renewed_one_is_not(redis_url):
    async def scenario():
        queue = RedisChunkQueue(redis_url, f"lease-{os.getpid()}-{time.monotonic_ns()}", lease_s=0.6, ttl_s=60)
        await queue.put(_refs(2))
        dead, alive = (await queue.take("dead"))[0], (await queue.take("alive"))[0]
        for _ in range(4):  # 1.2 s: "alive" renews every 0.3 s, "dead" never does
            await asyncio.sleep(0.3)
            assert await queue.renew(alive, "alive")
        taken = await queue.take("other")
        assert (taken[0].index, taken[1]) == (dead.index, 2)  # only the dead consumer's chunk
        assert await queue.take("other") is None
        assert not await queue.renew(dead, "dead")  # its lease is gone: it learns so at its next renew
        await queue.done(dead, "dead")  # a late finish takes nothing from the new owner's lease
        await queue.done(alive, "alive")
        assert await queue.remaining() == (0, 1)
        await queue.done(taken[0], "other")
        assert await queue.remaining() == (0, 0)
        await queue.aclose()
    asyncio.run(scenario())


def test_cancel_flag_and_heartbeats_are_shared_by_every_handle(redis_url, make_queue):
    async def scenario():
        queue = make_queue()
        await queue.put(_refs(1))
        assert not await queue.cancelled()
        await queue.heartbeat("c1")
        await asyncio.sleep(0.2)
        silent = await queue.silent_for()
        assert set(silent) == {"c1"} and 0.1 < silent["c1"][0] < 5 and not silent["c1"][1]
        await queue.heartbeat("c1", finished=True)  # its last one: it stopped pulling chunks
        assert (await queue.silent_for())["c1"][1]
        await queue.cancel()
        assert await queue.cancelled()
        await queue.aclose()
    asyncio.run(scenario())


def test_a_new_run_of_the_job_starts_a_fresh_queue(redis_url):
    async def scenario():
        job = f"fresh-{os.getpid()}-{time.monotonic_ns()}"
        old = RedisChunkQueue(redis_url, job, lease_s=30, ttl_s=60)
        await old.put(_refs(2))
        await old.take("a")
        await old.cancel()
        new = RedisChunkQueue(redis_url, job, lease_s=30, ttl_s=60)
        await new.put(_refs(3))
        assert await new.remaining() == (3, 0) and not await new.cancelled()
        await old.aclose()
        await new.aclose()
    asyncio.run(scenario())
