"""Rate limiting: one GCRA budget per limit key, shared through Redis or per process.

Semantics (the same for both implementations):

- **GCRA with burst, reservation style.** ``acquire()`` atomically reserves the
  next free slot of the key's budget and sleeps until it; nobody polls. Slots
  are absolute times, so a caller that wakes late does not shift later callers.
- **Burst safety margin.** We use ``burst - margin`` of the target's burst
  (``LimitPolicy.effective_burst``; margin = a third of the burst, at least 1).
  Pacing at exactly the target's rate after draining its whole burst would
  leave its bucket at zero, so any network jitter would draw 429s; the spare
  tokens absorb requests that arrive closer together than they were sent, and
  a first burst that arrives late while the target's bucket is full (its
  refill is lost then). Measured on a loaded 2-core machine (four processes
  against a strict 20/s target): a 15 % or 25 % margin still drew a 429 in
  about one run of ten, each costing seconds of pause and AIMD; a third drew
  none in 14 runs. It costs ``margin / rate`` seconds once per job.
- **Retry-After pause.** ``throttled(retry_after_s)`` sets a shared
  "paused until" time (the later of the existing one and now + Retry-After, or
  a default back-off of 1 s doubling to 30 s when the target sent none).
  Callers that reserved a slot inside the pause re-reserve after it; after a
  pause the budget restarts without a burst.
- **AIMD.** The first 429 of an episode (one that arrives while no pause is in
  force) multiplies the key's rate by 0.5 (floor: 5 % of the configured rate);
  successes raise it again by 5 % of the configured rate per second of
  successes, up to the configured rate.
- **Time** comes from Redis (``TIME`` inside the scripts) for the shared
  limiter, because the clocks of several machines differ, and from
  ``time.monotonic()`` for the in-process one.

Shared limiter: state lives in one Redis hash ``csv-merger:rl:<key>``
(fields ``tat``, ``rate``, ``paused_until``, ``streak``, ``last_ok``) and
every change is one Lua script run (atomic). Processes sharing a key should be
configured with the same rate and burst; each caps the stored rate at its own.
In-process limiter (no Redis): limiters made for the same key in one process
share one budget; other processes do not see it.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from csv_merger.errors import ConfigError, RedisUnavailableError

KEY_PREFIX = "csv-merger:rl:"


@dataclass(frozen=True)
class LimitPolicy:
    """The numbers behind a limiter.

    ``rate``: configured requests/s (the target's rate; Clay: 10/s per
    workspace). ``burst``: the target's burst in requests (Clay: 20).
    ``decrease``: factor applied to the rate on a 429. ``increase``: fraction
    of ``rate`` added per second of successes. ``min_fraction``: floor of the
    lowered rate as a fraction of ``rate``. ``backoff_initial_s`` /
    ``backoff_max_s``: pause when a 429 carries no Retry-After (doubling).
    ``idle_ttl_s``: Redis state expires after this long unused.
    """

    rate: float
    burst: int
    decrease: float = 0.5
    increase: float = 0.05
    min_fraction: float = 0.05
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    idle_ttl_s: float = 120.0

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ConfigError(f"rate must be a positive number of requests/s, got {self.rate!r}")
        if self.burst < 1:
            raise ConfigError(f"burst must be at least 1 request, got {self.burst!r}")

    @property
    def effective_burst(self) -> int:
        """Burst we actually use: the target's burst less a safety margin of
        a third (at least 1 request; none when the burst is 1)."""
        margin = min(self.burst - 1, max(1, math.ceil(self.burst / 3)))
        return self.burst - margin

    @property
    def min_rate(self) -> float:
        return self.rate * self.min_fraction


class RateLimiter(Protocol):
    """What delivery needs from a limiter (both implementations below)."""

    async def acquire(self) -> None:
        """Wait (sleeping, no polling) until this caller may send one request.
        Raises RedisUnavailableError if the shared state cannot be reached."""

    async def throttled(self, retry_after_s: float | None) -> None:
        """Report a 429 (``retry_after_s``: the target's Retry-After in seconds,
        None if absent): pause every caller of the key, lower the rate."""

    async def succeeded(self) -> None:
        """Report a 2xx: let a lowered rate climb back."""

    async def aclose(self) -> None:
        """Release connections."""

    @property
    def current_rate(self) -> float:
        """Requests/s currently allowed for the key (as last seen)."""


# --- in-process limiter ---------------------------------------------------------


class _GcraState:
    """One key's state in this process; times in time.monotonic() seconds.
    The Lua scripts below implement exactly these three operations."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tat = 0.0
        self.rate: float | None = None
        self.paused_until = 0.0
        self.streak = 0
        self.last_ok = 0.0

    def expire(self, p: LimitPolicy, now: float) -> None:
        """Forget a state unused for ``idle_ttl_s`` (as the Redis key expires)."""
        if now > max(self.tat, self.paused_until) + p.idle_ttl_s:
            self.tat, self.rate, self.paused_until, self.streak, self.last_ok = 0.0, None, 0.0, 0, 0.0

    def reserve(self, p: LimitPolicy, now: float) -> tuple[float, float]:
        """Take the next slot; return (seconds to wait, current rate)."""
        self.expire(p, now)
        rate = min(self.rate or p.rate, p.rate)
        interval = 1.0 / rate
        slot = max(now, self.paused_until, self.tat - (p.effective_burst - 1) * interval)
        self.tat = max(self.tat, slot) + interval
        self.rate = rate
        return slot - now, rate

    def throttle(self, p: LimitPolicy, now: float, retry_after_s: float | None) -> tuple[float, float]:
        """Record a 429; return (seconds paused from now, lowered rate)."""
        self.expire(p, now)
        rate = min(self.rate or p.rate, p.rate)
        fresh = now >= self.paused_until  # first 429 of this episode
        if fresh:
            rate = max(p.min_rate, rate * p.decrease)
        if retry_after_s is not None:
            wait = max(0.0, retry_after_s)
        elif fresh:
            wait = min(p.backoff_max_s, p.backoff_initial_s * 2**self.streak)
            self.streak += 1
        else:
            wait = 0.0
        self.paused_until = max(self.paused_until, now + wait)
        self.tat = max(self.tat, self.paused_until + (p.effective_burst - 1) / rate)
        self.rate, self.last_ok = rate, self.paused_until
        return self.paused_until - now, rate

    def succeed(self, p: LimitPolicy, now: float) -> float:
        """Record a 2xx; return the (possibly raised) rate."""
        self.expire(p, now)
        rate = min(self.rate or p.rate, p.rate)
        if now >= self.paused_until and rate < p.rate:
            rate = min(p.rate, rate + p.increase * p.rate * min(1.0, max(0.0, now - self.last_ok)))
        self.rate, self.last_ok, self.streak = rate, max(now, self.paused_until), 0
        return rate


_LOCAL_STATES: dict[str, _GcraState] = {}
_LOCAL_STATES_LOCK = threading.Lock()


class LocalRateLimiter:
    """In-process GCRA limiter (see module docstring). Safe for many
    coroutines and for several event loops in threads of one process; limiters
    made for the same key share one budget. Not shared across processes."""

    def __init__(self, key: str, policy: LimitPolicy):
        self.key, self.policy = key, policy
        with _LOCAL_STATES_LOCK:
            self._state = _LOCAL_STATES.setdefault(key, _GcraState())
        self._rate = policy.rate

    async def acquire(self) -> None:
        while True:
            with self._state.lock:
                wait, self._rate = self._state.reserve(self.policy, time.monotonic())
            if wait <= 0:
                return
            await asyncio.sleep(wait)
            with self._state.lock:
                still_paused = time.monotonic() < self._state.paused_until
            if not still_paused:  # a pause set while we slept: take a slot after it
                return

    async def throttled(self, retry_after_s: float | None) -> None:
        with self._state.lock:
            _, self._rate = self._state.throttle(self.policy, time.monotonic(), retry_after_s)

    async def succeeded(self) -> None:
        if self._rate >= self.policy.rate:
            return
        with self._state.lock:
            self._rate = self._state.succeed(self.policy, time.monotonic())

    async def aclose(self) -> None:
        return None

    @property
    def current_rate(self) -> float:
        return self._rate


# --- shared limiter (Redis) ----------------------------------------------------

# Times are Redis server time in seconds; numbers go back as strings because
# Redis truncates Lua numbers to integers. Formats keep microseconds.
_LUA_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cfg_rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local s = redis.call('HMGET', KEYS[1], 'tat', 'rate', 'paused_until', 'streak', 'last_ok')
local tat = tonumber(s[1]) or 0
local rate = math.min(tonumber(s[2]) or cfg_rate, cfg_rate)
local paused = tonumber(s[3]) or 0
local streak = tonumber(s[4]) or 0
local last_ok = tonumber(s[5]) or 0
local function f(x) return string.format('%.6f', x) end
local function save()
  redis.call('HSET', KEYS[1], 'tat', f(tat), 'rate', f(rate), 'paused_until', f(paused),
             'streak', streak, 'last_ok', f(last_ok))
  redis.call('PEXPIRE', KEYS[1], math.ceil(1000 * (math.max(tat, paused) - now + ttl)))
end
"""

_LUA_RESERVE = _LUA_PRELUDE + """
local interval = 1 / rate
local slot = math.max(now, paused, tat - (burst - 1) * interval)
tat = math.max(tat, slot) + interval
save()
return {f(slot - now), f(rate)}
"""

# ARGV[4]: Retry-After seconds or -1; ARGV[5..8]: decrease, min rate, back-off initial, max.
_LUA_THROTTLE = _LUA_PRELUDE + """
local retry_after = tonumber(ARGV[4])
local fresh = now >= paused
if fresh then rate = math.max(tonumber(ARGV[6]), rate * tonumber(ARGV[5])) end
local wait = 0
if retry_after >= 0 then wait = retry_after
elseif fresh then
  wait = math.min(tonumber(ARGV[8]), tonumber(ARGV[7]) * 2 ^ streak)
  streak = streak + 1
end
paused = math.max(paused, now + wait)
tat = math.max(tat, paused + (burst - 1) / rate)
last_ok = paused
save()
return {f(paused - now), f(rate)}
"""

# ARGV[4]: increase in requests/s per second of successes.
_LUA_SUCCEED = _LUA_PRELUDE + """
if now >= paused and rate < cfg_rate then
  rate = math.min(cfg_rate, rate + tonumber(ARGV[4]) * math.min(1, math.max(0, now - last_ok)))
end
last_ok = math.max(now, paused)
streak = 0
save()
return f(rate)
"""

_LUA_PAUSE_LEFT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local paused = tonumber(redis.call('HGET', KEYS[1], 'paused_until')) or 0
return string.format('%.6f', paused - now)
"""


def _redacted(url: str) -> str:
    """The Redis URL without its password, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}{parts.path}"


class RedisRateLimiter:
    """GCRA limiter whose state is shared by every process using the same
    Redis and key (see module docstring). One instance per event loop."""

    def __init__(self, key: str, policy: LimitPolicy, redis_url: str):
        import redis.asyncio as aioredis

        self.key, self.policy = key, policy
        self._redis_key = KEY_PREFIX + key
        self._where = _redacted(redis_url)
        self._client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=5)
        self._reserve = self._client.register_script(_LUA_RESERVE)
        self._throttle = self._client.register_script(_LUA_THROTTLE)
        self._succeed = self._client.register_script(_LUA_SUCCEED)
        self._pause_left = self._client.register_script(_LUA_PAUSE_LEFT)
        self._rate = policy.rate

    def _args(self, *extra: float) -> list[str]:
        p = self.policy
        return [repr(float(p.rate)), str(p.effective_burst), repr(float(p.idle_ttl_s)), *map(repr, extra)]

    async def _run(self, script, args: list[str]):
        import redis.exceptions as rexc

        try:
            return await script(keys=[self._redis_key], args=args)
        except (rexc.RedisError, OSError) as exc:  # also a wrong db or a non-Redis server
            raise RedisUnavailableError(
                f"Redis at {self._where} stopped answering ({exc.__class__.__name__}); rate limit state is unreachable"
            ) from None

    async def acquire(self) -> None:
        while True:
            wait, rate = await self._run(self._reserve, self._args())
            wait, self._rate = float(wait), float(rate)
            if wait <= 0:
                return
            await asyncio.sleep(wait)
            if float(await self._run(self._pause_left, [])) <= 0:
                return

    async def throttled(self, retry_after_s: float | None) -> None:
        p = self.policy
        retry = -1.0 if retry_after_s is None else max(0.0, float(retry_after_s))
        extra = (retry, p.decrease, p.min_rate, p.backoff_initial_s, p.backoff_max_s)
        _, rate = await self._run(self._throttle, self._args(*extra))
        self._rate = float(rate)

    async def succeeded(self) -> None:
        if self._rate >= self.policy.rate:  # nothing to climb back: skip the round trip
            return
        self._rate = float(await self._run(self._succeed, self._args(self.policy.increase * self.policy.rate)))

    async def aclose(self) -> None:
        await self._client.aclose()

    @property
    def current_rate(self) -> float:
        return self._rate


def make_limiter(key: str, rate: float, burst: int, redis_url: str | None = None) -> RateLimiter:
    """A limiter for ``key`` at ``rate`` requests/s with ``burst`` requests.

    ``redis_url`` None: in-process limiter (per process). Otherwise the state
    is shared in that Redis; the server is pinged first. Raises ConfigError for
    a bad rate, burst or URL, RedisUnavailableError if Redis does not answer.
    """
    policy = LimitPolicy(rate=rate, burst=burst)
    if not key:
        raise ConfigError("limit key must not be empty")
    if redis_url is None:
        return LocalRateLimiter(key, policy)
    import redis
    import redis.exceptions as rexc

    try:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=3)
    except ValueError as exc:
        raise ConfigError(f"invalid Redis URL {_redacted(redis_url)!r}: {exc}") from None
    try:
        client.ping()
    except (rexc.RedisError, OSError) as exc:  # also a wrong db number or a non-Redis server
        raise RedisUnavailableError(f"Redis at {_redacted(redis_url)} does not answer: {exc}") from None
    finally:
        client.close()
    return RedisRateLimiter(key, policy, redis_url)


def default_limit_key(webhook_url: str) -> str:
    """Default limit key for a webhook URL: its lower-cased host (with the port
    when one is given), e.g. ``api.clay.com``.

    Clay's webhook limit (10 records/s, burst 20) is per workspace, and the
    workspace cannot be read from a webhook URL (``/v3/sources/webhook/<id>``
    names one table). Keying on the host makes every job to that host share
    one budget: never too fast, at worst slower than needed when jobs go to
    different workspaces, which ``--limit-key WORKSPACE`` fixes.
    """
    parts = urlsplit(webhook_url)
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"webhook URL {webhook_url!r} has an invalid port") from None
    if not parts.hostname:
        raise ConfigError(f"webhook URL {webhook_url!r} has no host")
    return parts.hostname.lower() + (f":{port}" if port else "")
