"""The shared limiter: GCRA state and the learner in one Redis hash, every
change atomic (GCRA: one Lua script run; learner: compare-and-set), time from
Redis ``TIME`` (machines' clocks differ)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import fields

from csv_merger.errors import RedisUnavailableError
from csv_merger.redis_check import masked
from tasks.deliver.ratelimit import adaptive
from tasks.deliver.ratelimit.adaptive import Learning
from tasks.deliver.ratelimit.policy import LimitPolicy

KEY_PREFIX = "csv-merger:rl:"
MEMORY_PREFIX = "csv-merger:rl-learned:"  # + key: the learned rate kept for the next job (string, with a TTL)
_LEARNING = [f.name for f in fields(Learning)]


# Times are Redis server time in seconds; numbers go back as strings because
# Redis truncates Lua numbers to integers. Formats keep microseconds.
# ARGV[1..4]: configured rate, burst, idle TTL (s), rate while the learner has written none.
_LUA_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cfg_rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local s = redis.call('HMGET', KEYS[1], 'tat', 'rate', 'paused_until', 'streak', 'outage_since', 'probes')
local tat = tonumber(s[1]) or 0
local rate = math.min(tonumber(s[2]) or tonumber(ARGV[4]), cfg_rate)
local paused = tonumber(s[3]) or 0
local streak = tonumber(s[4]) or 0
local outage_since = tonumber(s[5]) or 0
local probes = tonumber(s[6]) or 0
local function f(x) return string.format('%.6f', x) end
local function save()
  redis.call('HSET', KEYS[1], 'tat', f(tat), 'paused_until', f(paused), 'streak', streak,
             'outage_since', f(outage_since), 'probes', probes)
  redis.call('PEXPIRE', KEYS[1], math.ceil(1000 * (math.max(tat, paused) - now + ttl)))
end
"""

# ARGV[5]: horizon (s). Returns {wait, rate, outage age or -1, 1 if reserved else 0} (see GcraState.reserve).
_LUA_RESERVE = _LUA_PRELUDE + """
local interval = 1 / rate
local slot = math.max(now, paused, tat - (burst - 1) * interval)
local age = -1
if outage_since > 0 then age = now - outage_since end
local horizon = tonumber(ARGV[5])
if slot - now > horizon then return {f(slot - now - horizon), f(rate), f(age), 0} end
tat = math.max(tat, slot) + interval
save()
return {f(slot - now), f(rate), f(age), 1}
"""

# ARGV[5]: Retry-After seconds or -1; ARGV[6], ARGV[7]: back-off initial, max. Returns 1 for the
# first 429 of an episode (no pause was in force), else 0. The learner lowers the rate (see _LUA_LEARN).
_LUA_THROTTLE = _LUA_PRELUDE + """
local retry_after = tonumber(ARGV[5])
local fresh = now >= paused
local wait = 0
if retry_after >= 0 then wait = retry_after
elseif fresh then
  wait = math.min(tonumber(ARGV[7]), tonumber(ARGV[6]) * 2 ^ streak)
  streak = streak + 1
end
paused = math.max(paused, now + wait)
tat = math.max(tat, paused + (burst - 1) / rate)
save()
if fresh then return 1 end
return 0
"""

# ARGV[5], ARGV[6]: first and longest probe wait (s). See GcraState.outage.
_LUA_OUTAGE = _LUA_PRELUDE + """
if outage_since == 0 then outage_since = now; probes = 0 end
if now >= paused then
  paused = now + math.min(tonumber(ARGV[6]), tonumber(ARGV[5]) * 2 ^ probes)
  probes = probes + 1
  tat = math.max(tat, paused + (burst - 1) / rate)
end
save()
return f(now - outage_since)
"""

# The learner's state: read (with the time, the pause and a version), decide in Python, write if
# the version is unchanged (compare-and-set; another process wrote first: read again).
_LUA_LEARN_READ = """
local t = redis.call('TIME')
local vals = redis.call('HMGET', KEYS[1], 'learn_v', 'paused_until', unpack(ARGV))
table.insert(vals, 1, string.format('%.6f', tonumber(t[1]) + tonumber(t[2]) / 1000000))
return vals
"""

# ARGV[1]: expected version; ARGV[2]: 1 for successes (they end a target outage and the back-off
# streak); ARGV[3]: idle TTL (ms); ARGV[4]: the rate until now if none is stored; ARGV[5]: the new
# rate; ARGV[6], ARGV[7]: effective burst and configured rate (for LimitPolicy.burst_at);
# ARGV[8..]: field, value pairs. Returns 1 if written, 0 if not. The slots promised past the
# pause keep their count at the new rate (see GcraState.relearn).
_LUA_LEARN_WRITE = """
local s = redis.call('HMGET', KEYS[1], 'learn_v', 'rate', 'tat', 'paused_until')
if (s[1] or '0') ~= ARGV[1] then return 0 end
local t = redis.call('TIME')
local base = math.max(tonumber(t[1]) + tonumber(t[2]) / 1000000, tonumber(s[4]) or 0)
local old, new, tat = tonumber(s[2]) or tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(s[3]) or 0
local eb, cfg = tonumber(ARGV[6]), tonumber(ARGV[7])
local function burst_at(r) return math.max(1, math.floor(eb * math.min(1, r / cfg) + 0.5)) end
if tat > base then
  local owed = (tat - base) * old - (burst_at(old) - 1)
  redis.call('HSET', KEYS[1], 'tat', string.format('%.6f', base + math.max(0, owed + burst_at(new) - 1) / new))
end
redis.call('HSET', KEYS[1], 'learn_v', tostring(tonumber(ARGV[1]) + 1), 'rate', ARGV[5], unpack(ARGV, 8))
if ARGV[2] == '1' then redis.call('HSET', KEYS[1], 'outage_since', '0', 'probes', 0, 'streak', 0) end
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1
"""

_LUA_PAUSE_LEFT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local paused = tonumber(redis.call('HGET', KEYS[1], 'paused_until')) or 0
return string.format('%.6f', paused - now)
"""

SUCCESS_FLUSH_S = 0.5  # successes are folded into the shared learner at most this often per process


class RedisRateLimiter:
    """GCRA limiter whose state and learner are shared by every process using
    the same Redis and key (see module docstring). One instance per event loop.
    ``remembered``: the learned rate kept from an earlier job (None: none)."""

    def __init__(self, key: str, policy: LimitPolicy, redis_url: str, remembered: float | None = None):
        import redis.asyncio as aioredis

        self.key, self.policy = key, policy
        self._redis_key = KEY_PREFIX + key
        self._where = masked(redis_url)
        self._client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=5)
        self._reserve = self._client.register_script(_LUA_RESERVE)
        self._throttle = self._client.register_script(_LUA_THROTTLE)
        self._outage = self._client.register_script(_LUA_OUTAGE)
        self._learn_read = self._client.register_script(_LUA_LEARN_READ)
        self._learn_write = self._client.register_script(_LUA_LEARN_WRITE)
        self._pause_left = self._client.register_script(_LUA_PAUSE_LEFT)
        self._initial = adaptive.start(policy.rate, remembered, policy.adaptive)
        self._rate = self._initial.rate
        self._learned: float | None = self._initial.ceiling or None
        self._unreported = 0  # successes not yet folded into the shared learner
        self._flushed_at = time.monotonic()
        self.outage_age: float | None = None  # as last seen: seconds since the target went down

    def _args(self, *extra: float) -> list[str]:
        p = self.policy
        return [repr(float(p.rate)), str(p.burst_at(self._rate)), repr(float(p.idle_ttl_s)), repr(self._initial.rate),
                *map(repr, extra)]

    async def _run(self, script, args: list[str], keys: list[str] | None = None):
        import redis.exceptions as rexc

        try:
            return await script(keys=keys or [self._redis_key], args=args)
        except (rexc.RedisError, OSError) as exc:  # also a wrong db or a non-Redis server
            raise RedisUnavailableError(
                f"Redis at {self._where} stopped answering ({exc.__class__.__name__}); rate limit state is unreachable"
            ) from None

    async def _learn(self, step: Callable[[Learning, float, bool], Learning], success: bool) -> Learning:
        """Apply ``step(learning, redis_now, paused)`` to the shared learner atomically (compare-and-set)."""
        while True:
            now, version, paused, *values = await self._run(self._learn_read, _LEARNING)
            learning = Learning.from_fields(dict(zip(_LEARNING, values))) or self._initial
            now = float(now)
            new = step(learning, now, now < float(paused or 0))
            pairs = [x for name, value in new.to_fields().items() for x in (name, value)]
            args = [(version or b"0").decode(), "1" if success else "0", str(int(1000 * self.policy.idle_ttl_s)),
                    repr(self._initial.rate), repr(min(new.rate, self.policy.rate)),
                    str(self.policy.effective_burst), repr(float(self.policy.rate)), *pairs]
            if int(await self._run(self._learn_write, args)):
                self._rate, self._learned = min(new.rate, self.policy.rate), new.ceiling or None
                return new

    async def _flush_successes(self) -> None:
        count, self._unreported, self._flushed_at = self._unreported, 0, time.monotonic()
        a, cfg = self.policy.adaptive, self.policy.rate
        await self._learn(lambda learning, now, paused: adaptive.succeeded(learning, cfg, now, count, paused, a), True)
        self.outage_age = None

    async def acquire(self) -> None:
        while True:
            wait, rate, age, reserved = await self._run(self._reserve, self._args(self.policy.horizon_s))
            wait, self._rate = float(wait), float(rate)
            self.outage_age = float(age) if float(age) >= 0 else None
            if wait <= 0:
                return
            await asyncio.sleep(wait)
            if not int(reserved):
                continue
            if float(await self._run(self._pause_left, [])) <= 0:
                return

    async def throttled(self, retry_after_s: float | None) -> None:
        p = self.policy
        retry = -1.0 if retry_after_s is None else max(0.0, float(retry_after_s))
        if not int(await self._run(self._throttle, self._args(retry, p.backoff_initial_s, p.backoff_max_s))):
            return  # not the first 429 of its episode: the learner already heard of it
        if self._unreported:  # the estimate counts every success before the episode
            await self._flush_successes()
        learning = await self._learn(lambda s, now, _: adaptive.throttled(s, p.rate, now, p.adaptive), False)
        await self._remember(learning)

    async def outage(self, probe_initial_s: float, probe_max_s: float) -> float:
        """See ``RateLimiter.outage`` (one Lua script run)."""
        self.outage_age = float(await self._run(self._outage, self._args(probe_initial_s, probe_max_s)))
        return self.outage_age

    async def succeeded(self) -> None:
        self._unreported += 1
        if self.outage_age is not None or time.monotonic() - self._flushed_at >= SUCCESS_FLUSH_S:
            await self._flush_successes()

    async def _remember(self, learning: Learning) -> None:
        if (rate := adaptive.remembered(learning, self.policy.rate)) is not None:
            import redis.exceptions as rexc

            try:
                await self._client.set(MEMORY_PREFIX + self.key, repr(rate), ex=int(self.policy.memory_ttl_s))
            except (rexc.RedisError, OSError):
                pass  # best effort: the next job learns again

    async def aclose(self) -> None:
        import redis.exceptions as rexc

        try:
            if self._unreported:
                await self._flush_successes()
            now, _, _, *values = await self._run(self._learn_read, _LEARNING)
            if (learning := Learning.from_fields(dict(zip(_LEARNING, values)))) is not None:
                await self._remember(learning)
        except (RedisUnavailableError, rexc.RedisError, OSError):
            pass  # closing after Redis went away: the error that mattered was raised already
        finally:
            await self._client.aclose()

    @property
    def current_rate(self) -> float:
        return self._rate

    @property
    def learned_rate(self) -> float | None:
        return self._learned
