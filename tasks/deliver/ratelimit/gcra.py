"""GCRA arithmetic on one key's state (``GcraState``), and the in-process
limiter built on it and on the learner (``LocalRateLimiter``). The shared
limiter's Lua scripts implement the same operations: reserve, throttle,
outage, succeed."""

from __future__ import annotations

import asyncio
import threading
import time

from tasks.deliver.ratelimit import adaptive
from tasks.deliver.ratelimit.adaptive import Learning
from tasks.deliver.ratelimit.memory import FileMemory
from tasks.deliver.ratelimit.policy import LimitPolicy


class GcraState:
    """One key's state in this process; times in time.monotonic() seconds.
    The Lua scripts in ``redis_gcra`` implement exactly these operations.
    ``learning``: the key's learner (adaptive), None until first used."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tat = 0.0
        self.learning: Learning | None = None
        self.paused_until = 0.0
        self.streak = 0
        self.outage_since: float | None = None  # the target is down since then (see tasks.deliver.outage)
        self.probes = 0

    def expire(self, p: LimitPolicy, now: float) -> None:
        """Forget a state unused for ``idle_ttl_s`` (as the Redis key expires)."""
        if now > max(self.tat, self.paused_until) + p.idle_ttl_s:
            self.tat, self.learning, self.paused_until, self.streak = 0.0, None, 0.0, 0
            self.outage_since, self.probes = None, 0

    def rate(self, p: LimitPolicy) -> float:
        return p.rate if self.learning is None else min(self.learning.rate, p.rate)

    def relearn(self, p: LimitPolicy, now: float, learning: Learning) -> None:
        """Take the learner's new state. Slots already promised past ``max(now, paused_until)``
        keep their count, not their length (else a rate that rose would still be paced by the
        old, longer intervals for seconds). Only promised slots: the burst changes with the
        rate (``LimitPolicy.burst_at``), and rescaling the burst's share of ``tat`` as if it
        were promised slots left every caller idle for ~0.8 s after each 429 pause at 5/s."""
        old_rate = self.rate(p)
        self.learning = learning
        new_rate = self.rate(p)
        base = max(now, self.paused_until)
        if self.tat > base:
            owed = (self.tat - base) * old_rate - (p.burst_at(old_rate) - 1)  # slots promised past base; < 0: credit
            self.tat = base + max(0.0, owed + p.burst_at(new_rate) - 1) / new_rate

    def reserve(self, p: LimitPolicy, now: float) -> tuple[float, bool]:
        """Take the next slot if it lies within ``horizon_s``: return (seconds to wait for it, True);
        else take nothing and return (seconds until it would be within the horizon, False)."""
        self.expire(p, now)
        interval = 1.0 / self.rate(p)
        slot = max(now, self.paused_until, self.tat - (p.burst_at(self.rate(p)) - 1) * interval)
        if slot - now > p.horizon_s:
            return slot - now - p.horizon_s, False
        self.tat = max(self.tat, slot) + interval
        return slot - now, True

    def throttle(self, p: LimitPolicy, now: float, retry_after_s: float | None) -> bool:
        """Record a 429 (pause only); return whether it is the first of its episode (no pause was in force)."""
        self.expire(p, now)
        fresh = now >= self.paused_until
        if retry_after_s is not None:
            wait = max(0.0, retry_after_s)
        elif fresh:
            wait = min(p.backoff_max_s, p.backoff_initial_s * 2**self.streak)
            self.streak += 1
        else:
            wait = 0.0
        self.paused_until = max(self.paused_until, now + wait)
        self.tat = max(self.tat, self.paused_until + (p.burst_at(self.rate(p)) - 1) / self.rate(p))
        return fresh

    def outage_age(self, now: float) -> float | None:
        """Seconds since the target went down, None when it is not down."""
        return None if self.outage_since is None else now - self.outage_since

    def outage(self, p: LimitPolicy, now: float, initial_s: float, max_s: float) -> float:
        """Record a target-wide failure during an outage: start it, and when no pause is in
        force pause every caller for the next probe wait (``initial_s`` doubling, at most
        ``max_s``; no rate change, no burst after it). Returns the outage's age in s."""
        self.expire(p, now)
        if self.outage_since is None:
            self.outage_since, self.probes = now, 0
        if now >= self.paused_until:  # one probe per pause: later failures of the same round do not extend it
            self.paused_until = now + min(max_s, initial_s * 2**self.probes)
            self.probes += 1
            self.tat = max(self.tat, self.paused_until + (p.burst_at(self.rate(p)) - 1) / self.rate(p))
        return now - self.outage_since

    def succeed(self, p: LimitPolicy, now: float) -> None:
        """Record a 2xx: ends a target outage and the back-off streak."""
        self.expire(p, now)
        self.outage_since, self.probes, self.streak = None, 0, 0


_LOCAL_STATES: dict[str, GcraState] = {}
_LOCAL_STATES_LOCK = threading.Lock()


class LocalRateLimiter:
    """In-process GCRA limiter (see module docstring). Safe for many
    coroutines and for several event loops in threads of one process; limiters
    made for the same key share one budget and one learner. Not shared across
    processes; ``memory`` (None: none) keeps the learned rate for the next job."""

    def __init__(self, key: str, policy: LimitPolicy, memory: FileMemory | None = None):
        self.key, self.policy, self.memory = key, policy, memory
        with _LOCAL_STATES_LOCK:
            self._state = _LOCAL_STATES.setdefault(key, GcraState())
        self._rate = policy.rate
        self._learned: float | None = None
        self.outage_age: float | None = None

    def _learning(self) -> Learning:
        """The key's learner (caller holds the lock); started from memory when new."""
        if self._state.learning is None:
            remembered = self.memory.load(self.key) if self.memory else None
            self._state.learning = adaptive.start(self.policy.rate, remembered, self.policy.adaptive)
        return self._state.learning

    def _seen(self, learning: Learning, now: float) -> None:
        self._state.relearn(self.policy, now, learning)
        self._rate = min(learning.rate, self.policy.rate)
        self._learned = learning.ceiling or None

    async def acquire(self) -> None:
        while True:
            with self._state.lock:
                now = time.monotonic()
                self._state.expire(self.policy, now)
                self._seen(self._learning(), now)
                wait, reserved = self._state.reserve(self.policy, now)
                self.outage_age = self._state.outage_age(now)
            if wait <= 0:
                return
            await asyncio.sleep(wait)
            if not reserved:
                continue
            with self._state.lock:
                still_paused = time.monotonic() < self._state.paused_until
            if not still_paused:  # a pause set while we slept: take a slot after it
                return

    async def throttled(self, retry_after_s: float | None) -> None:
        with self._state.lock:
            now = time.monotonic()
            if self._state.throttle(self.policy, now, retry_after_s):
                self._seen(adaptive.throttled(self._learning(), self.policy.rate, now, self.policy.adaptive), now)
                remembered = adaptive.remembered(self._state.learning, self.policy.rate)
            else:
                return
        if self.memory is not None:
            self.memory.save(self.key, remembered)

    async def outage(self, probe_initial_s: float, probe_max_s: float) -> float:
        """See ``RateLimiter.outage``."""
        with self._state.lock:
            self.outage_age = self._state.outage(self.policy, time.monotonic(), probe_initial_s, probe_max_s)
        return self.outage_age

    async def succeeded(self) -> None:
        with self._state.lock:
            now = time.monotonic()
            self._state.succeed(self.policy, now)
            paused = now < self._state.paused_until
            self._seen(adaptive.succeeded(self._learning(), self.policy.rate, now, 1, paused, self.policy.adaptive),
                       now)
        self.outage_age = None

    async def aclose(self) -> None:
        if self.memory is not None and self._state.learning is not None:
            with self._state.lock:
                remembered = adaptive.remembered(self._state.learning, self.policy.rate)
            if remembered is not None:
                self.memory.save(self.key, remembered)

    @property
    def current_rate(self) -> float:
        return self._rate

    @property
    def learned_rate(self) -> float | None:
        return self._learned
