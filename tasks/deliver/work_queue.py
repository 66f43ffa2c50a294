"""A job's chunks as a work queue that long-lived delivery consumers pull from.

A consumer ``take``s one chunk at a time under a **lease** of ``lease_s``
seconds, ``renew``s it while it delivers (every ``lease_s / 3``), and marks
it ``done``. A consumer that dies (SIGKILL, machine lost) stops renewing:
its lease expires and the next ``take`` by any consumer puts the chunk back
first in line. The rows that consumer had acknowledged are in the job's
ledger, so the new owner sends only the rest, plus at most its in-flight
rows again, each with the same Idempotency-Key (at-least-once).

- ``LocalChunkQueue``: in-process (embedded runs: consumers are tasks of one
  flow run, so a lease never needs to expire).
- ``RedisChunkQueue``: shared by every process and machine on the Redis
  (fan-out); every state change is one Lua script run, time from Redis
  ``TIME`` (machines' clocks differ). Keys ``csv-merger:queue:<job_id>:*``,
  expiring with the job's chunks (``settings.chunk_ttl_s``).

Both have a ``cancel`` flag that every consumer of the job watches, and a
heartbeat per consumer, so the parent of a fan-out can tell a consumer whose
process died (its flow run stays Running: nobody is left to report it).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Protocol

from csv_merger.errors import RedisUnavailableError
from tasks.deliver.chunks import ChunkRef


class ChunkQueue(Protocol):
    """What a consumer needs from a job's queue. Redis errors raise RedisUnavailableError."""

    async def put(self, refs: list[ChunkRef]) -> None:
        """Queue ``refs`` in order (once per job, before consumers start)."""

    async def take(self, consumer: str) -> tuple[ChunkRef, int] | None:
        """Lease the next chunk to ``consumer``: (ref, how many times it was taken, 1 the first
        time), or None when none is free now (all done, or all leased)."""

    async def renew(self, ref: ChunkRef, consumer: str) -> bool:
        """Extend ``consumer``'s lease on ``ref``; False when it was lost (expired, taken again)."""

    async def done(self, ref: ChunkRef, consumer: str) -> None:
        """Mark ``ref`` finished (every row delivered, dead-lettered or skipped)."""

    async def release(self, ref: ChunkRef, consumer: str) -> None:
        """Give ``ref`` back unfinished (first in line), e.g. after an error or a cancel."""

    async def remaining(self) -> tuple[int, int]:
        """(chunks waiting, chunks leased); (0, 0) when the job's queue is drained."""

    async def cancel(self) -> None:
        """Ask every consumer of the job to stop."""

    async def cancelled(self) -> bool: ...

    async def heartbeat(self, consumer: str, finished: bool = False) -> None:
        """Record that ``consumer`` is alive (every ``lease_s / 3`` while it runs); ``finished``: its
        last one, sent when it stops pulling chunks (its run is ending, not its process dying)."""

    async def silent_for(self) -> dict[str, tuple[float, bool]]:
        """Consumer -> (seconds since its last heartbeat, whether that one was its finished one), for
        the consumers that sent one."""

    async def aclose(self) -> None: ...


class LocalChunkQueue:
    """In-process queue; safe to use from several threads and event loops."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: deque[ChunkRef] = deque()
        self._leased: dict[int, str] = {}
        self._taken: dict[int, int] = {}
        self._cancelled = False
        self._seen: dict[str, tuple[float, bool]] = {}

    async def put(self, refs: list[ChunkRef]) -> None:
        with self._lock:
            self._waiting.extend(refs)

    async def take(self, consumer: str) -> tuple[ChunkRef, int] | None:
        with self._lock:
            if not self._waiting:
                return None
            ref = self._waiting.popleft()
            self._leased[ref.index] = consumer
            self._taken[ref.index] = self._taken.get(ref.index, 0) + 1
            return ref, self._taken[ref.index]

    async def renew(self, ref: ChunkRef, consumer: str) -> bool:
        with self._lock:
            return self._leased.get(ref.index) == consumer

    async def done(self, ref: ChunkRef, consumer: str) -> None:
        with self._lock:
            self._leased.pop(ref.index, None)

    async def release(self, ref: ChunkRef, consumer: str) -> None:
        with self._lock:
            if self._leased.pop(ref.index, None) is not None:
                self._waiting.appendleft(ref)

    async def remaining(self) -> tuple[int, int]:
        with self._lock:
            return len(self._waiting), len(self._leased)

    async def cancel(self) -> None:
        self._cancelled = True

    async def cancelled(self) -> bool:
        return self._cancelled

    async def heartbeat(self, consumer: str, finished: bool = False) -> None:
        self._seen[consumer] = (time.monotonic(), finished)

    async def silent_for(self) -> dict[str, tuple[float, bool]]:
        now = time.monotonic()
        return {c: (now - t, finished) for c, (t, finished) in self._seen.items()}

    async def aclose(self) -> None:
        pass


# KEYS: waiting (list of indexes), leases (zset index -> expiry), refs (hash index -> JSON),
# owners (hash index -> consumer), taken (hash index -> count). Numbers go back as strings.
_LUA_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl = tonumber(ARGV[2])
local function keep() for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ttl) end end
"""

# ARGV: consumer, ttl, lease_s
_LUA_TAKE = _LUA_NOW + """
for _, idx in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
  redis.call('ZREM', KEYS[2], idx)
  redis.call('HDEL', KEYS[4], idx)
  redis.call('LPUSH', KEYS[1], idx)
end
local idx = redis.call('LPOP', KEYS[1])
if not idx then return false end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), idx)
redis.call('HSET', KEYS[4], idx, ARGV[1])
local taken = redis.call('HINCRBY', KEYS[5], idx, 1)
keep()
return {redis.call('HGET', KEYS[3], idx), taken}
"""

# ARGV: consumer, ttl, index, lease_s
_LUA_RENEW = _LUA_NOW + """
if redis.call('HGET', KEYS[4], ARGV[3]) ~= ARGV[1] or not redis.call('ZSCORE', KEYS[2], ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[2], 'XX', now + tonumber(ARGV[4]), ARGV[3])
keep()
return 1
"""

# ARGV: consumer, ttl, index, "done" or "release". A chunk finished by a consumer whose lease
# had expired is done all the same (its rows are in the ledger): drop it from every list.
_LUA_FINISH = _LUA_NOW + """
local mine = redis.call('HGET', KEYS[4], ARGV[3]) == ARGV[1]
if ARGV[4] == 'done' then
  redis.call('LREM', KEYS[1], 0, ARGV[3])
  if mine then redis.call('ZREM', KEYS[2], ARGV[3]); redis.call('HDEL', KEYS[4], ARGV[3]) end
elseif mine then
  redis.call('ZREM', KEYS[2], ARGV[3])
  redis.call('HDEL', KEYS[4], ARGV[3])
  redis.call('LPUSH', KEYS[1], ARGV[3])
end
keep()
return 1
"""


# KEYS: alive (hash consumer -> Redis time, with " finished" on the last one); ARGV: consumer, ttl, suffix
_LUA_BEAT = _LUA_NOW + """
redis.call('HSET', KEYS[1], ARGV[1], string.format('%.6f', now) .. ARGV[3])
keep()
return 1
"""


class RedisChunkQueue:
    """A job's queue in Redis (see the module docstring). ``lease_s``: seconds a taken chunk
    stays leased without a renew; ``ttl_s``: seconds the queue's keys live after the last change.
    Raises RedisUnavailableError when Redis fails."""

    def __init__(self, redis_url: str, job_id: str, *, lease_s: float, ttl_s: int):
        import redis.asyncio as aioredis

        prefix = f"csv-merger:queue:{job_id}:"
        self.keys = [prefix + k for k in ("waiting", "leases", "refs", "owners", "taken")]
        self.cancel_key, self.alive_key = prefix + "cancel", prefix + "alive"
        self.lease_s, self.ttl_s = lease_s, ttl_s
        self.client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=10)
        self._take = self.client.register_script(_LUA_TAKE)
        self._renew = self.client.register_script(_LUA_RENEW)
        self._finish = self.client.register_script(_LUA_FINISH)
        self._beat = self.client.register_script(_LUA_BEAT)

    async def _call(self, coro):
        import redis

        try:
            return await coro
        except (redis.RedisError, OSError) as exc:
            raise RedisUnavailableError(f"Redis work queue failed: {exc}") from None

    async def put(self, refs: list[ChunkRef]) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(*self.keys, self.cancel_key, self.alive_key)  # a new run of the job starts a new queue
            if refs:
                pipe.hset(self.keys[2], mapping={str(r.index): r.model_dump_json() for r in refs})
                pipe.rpush(self.keys[0], *(str(r.index) for r in refs))
                for key in self.keys[:3]:
                    pipe.expire(key, self.ttl_s)
            await self._call(pipe.execute())

    async def take(self, consumer: str) -> tuple[ChunkRef, int] | None:
        got = await self._call(self._take(keys=self.keys, args=[consumer, self.ttl_s, self.lease_s]))
        return (ChunkRef.model_validate_json(got[0]), int(got[1])) if got else None

    async def renew(self, ref: ChunkRef, consumer: str) -> bool:
        return bool(await self._call(self._renew(keys=self.keys, args=[consumer, self.ttl_s, ref.index, self.lease_s])))

    async def done(self, ref: ChunkRef, consumer: str) -> None:
        await self._call(self._finish(keys=self.keys, args=[consumer, self.ttl_s, ref.index, "done"]))

    async def release(self, ref: ChunkRef, consumer: str) -> None:
        await self._call(self._finish(keys=self.keys, args=[consumer, self.ttl_s, ref.index, "release"]))

    async def remaining(self) -> tuple[int, int]:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.llen(self.keys[0])
            pipe.zcard(self.keys[1])
            waiting, leased = await self._call(pipe.execute())
        return int(waiting), int(leased)

    async def cancel(self) -> None:
        await self._call(self.client.set(self.cancel_key, 1, ex=self.ttl_s))

    async def cancelled(self) -> bool:
        return bool(await self._call(self.client.exists(self.cancel_key)))

    async def heartbeat(self, consumer: str, finished: bool = False) -> None:
        await self._call(self._beat(keys=[self.alive_key], args=[consumer, self.ttl_s, " finished" if finished else ""]))

    async def silent_for(self) -> dict[str, tuple[float, bool]]:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.hgetall(self.alive_key)
            (secs, micros), seen = await self._call(pipe.execute())
        now = secs + micros / 1e6
        return {c.decode(): (now - float(t.split()[0]), t.endswith(b" finished")) for c, t in seen.items()}

    async def aclose(self) -> None:
        try:
            await self.client.aclose()
        except Exception:  # closing a dead connection must not hide the real error
            pass


def open_chunk_queue(job_id: str, *, redis_url: str | None, lease_s: float, ttl_s: int) -> ChunkQueue:
    """``RedisChunkQueue`` when ``redis_url`` is set (consumers in several processes), else a
    ``LocalChunkQueue`` (consumers in this process only)."""
    if redis_url:
        return RedisChunkQueue(redis_url, job_id, lease_s=lease_s, ttl_s=ttl_s)
    return LocalChunkQueue()
