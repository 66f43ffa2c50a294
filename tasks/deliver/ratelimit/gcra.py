"""GCRA arithmetic on one key's state (``GcraState``), and the in-process
limiter built on it (``LocalRateLimiter``). The shared limiter's Lua scripts
implement the same three operations: reserve, throttle, succeed."""

from __future__ import annotations

import asyncio
import threading
import time

from tasks.deliver.ratelimit.policy import LimitPolicy


class GcraState:
    """One key's state in this process; times in time.monotonic() seconds.
    The Lua scripts in ``redis_gcra`` implement exactly these three operations."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tat = 0.0
        self.rate: float | None = None
        self.paused_until = 0.0
        self.streak = 0
        self.last_ok = 0.0
        self.outage_since: float | None = None  # the target is down since then (see tasks.deliver.outage)
        self.probes = 0

    def expire(self, p: LimitPolicy, now: float) -> None:
        """Forget a state unused for ``idle_ttl_s`` (as the Redis key expires)."""
        if now > max(self.tat, self.paused_until) + p.idle_ttl_s:
            self.tat, self.rate, self.paused_until, self.streak, self.last_ok = 0.0, None, 0.0, 0, 0.0
            self.outage_since, self.probes = None, 0

    def reserve(self, p: LimitPolicy, now: float) -> tuple[float, float]:
        """Take the next slot; return (seconds to wait, current rate). ``outage_age`` tells
        whether the key is in a target outage."""
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

    def outage_age(self, now: float) -> float | None:
        """Seconds since the target went down, None when it is not down."""
        return None if self.outage_since is None else now - self.outage_since

    def outage(self, p: LimitPolicy, now: float, initial_s: float, max_s: float) -> float:
        """Record a target-wide failure during an outage: start it, and when no pause is in
        force pause every caller for the next probe wait (``initial_s`` doubling, at most
        ``max_s``; no rate change, no burst after it). Returns the outage's age in s."""
        self.expire(p, now)
        rate = min(self.rate or p.rate, p.rate)
        if self.outage_since is None:
            self.outage_since, self.probes = now, 0
        if now >= self.paused_until:  # one probe per pause: later failures of the same round do not extend it
            self.paused_until = now + min(max_s, initial_s * 2**self.probes)
            self.probes += 1
            self.tat = max(self.tat, self.paused_until + (p.effective_burst - 1) / rate)
        self.rate = rate
        return now - self.outage_since

    def succeed(self, p: LimitPolicy, now: float) -> float:
        """Record a 2xx (which also ends a target outage); return the (possibly raised) rate."""
        self.expire(p, now)
        self.outage_since, self.probes = None, 0
        rate = min(self.rate or p.rate, p.rate)
        if now >= self.paused_until and rate < p.rate:
            rate = min(p.rate, rate + p.increase * p.rate * min(1.0, max(0.0, now - self.last_ok)))
        self.rate, self.last_ok, self.streak = rate, max(now, self.paused_until), 0
        return rate


_LOCAL_STATES: dict[str, GcraState] = {}
_LOCAL_STATES_LOCK = threading.Lock()


class LocalRateLimiter:
    """In-process GCRA limiter (see module docstring). Safe for many
    coroutines and for several event loops in threads of one process; limiters
    made for the same key share one budget. Not shared across processes."""

    def __init__(self, key: str, policy: LimitPolicy):
        self.key, self.policy = key, policy
        with _LOCAL_STATES_LOCK:
            self._state = _LOCAL_STATES.setdefault(key, GcraState())
        self._rate = policy.rate
        self.outage_age: float | None = None

    async def acquire(self) -> None:
        while True:
            with self._state.lock:
                now = time.monotonic()
                wait, self._rate = self._state.reserve(self.policy, now)
                self.outage_age = self._state.outage_age(now)
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

    async def outage(self, probe_initial_s: float, probe_max_s: float) -> float:
        """See ``RateLimiter.outage``."""
        with self._state.lock:
            self.outage_age = self._state.outage(self.policy, time.monotonic(), probe_initial_s, probe_max_s)
        return self.outage_age

    async def succeeded(self) -> None:
        if self._rate >= self.policy.rate and self.outage_age is None:
            return
        with self._state.lock:
            self._rate = self._state.succeed(self.policy, time.monotonic())
        self.outage_age = None

    async def aclose(self) -> None:
        return None

    @property
    def current_rate(self) -> float:
        return self._rate
