"""The shared limiter: GCRA state in one Redis hash, every change one Lua
script run (atomic), time from Redis ``TIME`` (machines' clocks differ)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from csv_merger.errors import RedisUnavailableError
from tasks.deliver.ratelimit.policy import LimitPolicy

KEY_PREFIX = "csv-merger:rl:"


# Times are Redis server time in seconds; numbers go back as strings because
# Redis truncates Lua numbers to integers. Formats keep microseconds.
_LUA_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cfg_rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local s = redis.call('HMGET', KEYS[1], 'tat', 'rate', 'paused_until', 'streak', 'last_ok', 'outage_since', 'probes')
local tat = tonumber(s[1]) or 0
local rate = math.min(tonumber(s[2]) or cfg_rate, cfg_rate)
local paused = tonumber(s[3]) or 0
local streak = tonumber(s[4]) or 0
local last_ok = tonumber(s[5]) or 0
local outage_since = tonumber(s[6]) or 0
local probes = tonumber(s[7]) or 0
local function f(x) return string.format('%.6f', x) end
local function save()
  redis.call('HSET', KEYS[1], 'tat', f(tat), 'rate', f(rate), 'paused_until', f(paused),
             'streak', streak, 'last_ok', f(last_ok), 'outage_since', f(outage_since), 'probes', probes)
  redis.call('PEXPIRE', KEYS[1], math.ceil(1000 * (math.max(tat, paused) - now + ttl)))
end
"""

_LUA_RESERVE = _LUA_PRELUDE + """
local interval = 1 / rate
local slot = math.max(now, paused, tat - (burst - 1) * interval)
tat = math.max(tat, slot) + interval
save()
local age = -1
if outage_since > 0 then age = now - outage_since end
return {f(slot - now), f(rate), f(age)}
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

# ARGV[4], ARGV[5]: first and longest probe wait (s). See GcraState.outage.
_LUA_OUTAGE = _LUA_PRELUDE + """
if outage_since == 0 then outage_since = now; probes = 0 end
if now >= paused then
  paused = now + math.min(tonumber(ARGV[5]), tonumber(ARGV[4]) * 2 ^ probes)
  probes = probes + 1
  tat = math.max(tat, paused + (burst - 1) / rate)
end
save()
return f(now - outage_since)
"""

# ARGV[4]: increase in requests/s per second of successes. A 2xx also ends a target outage.
_LUA_SUCCEED = _LUA_PRELUDE + """
outage_since = 0
probes = 0
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


def redacted(url: str) -> str:
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
        self._where = redacted(redis_url)
        self._client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=5)
        self._reserve = self._client.register_script(_LUA_RESERVE)
        self._throttle = self._client.register_script(_LUA_THROTTLE)
        self._succeed = self._client.register_script(_LUA_SUCCEED)
        self._outage = self._client.register_script(_LUA_OUTAGE)
        self._pause_left = self._client.register_script(_LUA_PAUSE_LEFT)
        self._rate = policy.rate
        self.outage_age: float | None = None  # as last seen: seconds since the target went down

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
            wait, rate, age = await self._run(self._reserve, self._args())
            wait, self._rate = float(wait), float(rate)
            self.outage_age = float(age) if float(age) >= 0 else None
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

    async def outage(self, probe_initial_s: float, probe_max_s: float) -> float:
        """See ``RateLimiter.outage`` (one Lua script run)."""
        self.outage_age = float(await self._run(self._outage, self._args(probe_initial_s, probe_max_s)))
        return self.outage_age

    async def succeeded(self) -> None:
        if self._rate >= self.policy.rate and self.outage_age is None:  # nothing to change: skip the round trip
            return
        self._rate = float(await self._run(self._succeed, self._args(self.policy.increase * self.policy.rate)))
        self.outage_age = None

    async def aclose(self) -> None:
        await self._client.aclose()

    @property
    def current_rate(self) -> float:
        return self._rate
