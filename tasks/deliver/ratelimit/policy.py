"""The numbers behind a limiter (``LimitPolicy``) and what delivery needs
from one (``RateLimiter``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from csv_merger.errors import ConfigError
from tasks.deliver.ratelimit.adaptive import AdaptivePolicy


@dataclass(frozen=True)
class LimitPolicy:
    """The numbers behind a limiter.

    ``rate``: configured requests/s (the target's rate; Clay: 10/s per
    workspace). ``burst``: the target's burst in requests (Clay: 20).
    ``adaptive``: how the rate actually allowed is learned below ``rate``
    (tasks.deliver.ratelimit.adaptive). ``backoff_initial_s`` /
    ``backoff_max_s``: pause when a 429 carries no Retry-After (doubling).
    ``horizon_s``: slots are reserved at most this far ahead (a caller whose
    slot lies further waits and asks again), so that a rate the learner
    changes applies within ``horizon_s`` whatever the number of waiting callers.
    ``idle_ttl_s``: the key's pacing state expires after this long unused.
    ``memory_ttl_s``: how long the learned rate is remembered for the next job.
    """

    rate: float
    burst: int
    adaptive: AdaptivePolicy = AdaptivePolicy()
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    horizon_s: float = 1.0
    idle_ttl_s: float = 120.0
    memory_ttl_s: float = 24 * 3600.0

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

    def burst_at(self, rate: float) -> int:
        """Burst used while ``rate`` (requests/s) is allowed: the effective burst scaled by
        ``rate / self.rate`` (at least 1). A rate learned below the configured one means others
        draw on the target's limit, so its bucket is not all ours either."""
        # Half rounds up, as the Lua scripts do (Python's round() would round half to even).
        return max(1, math.floor(self.effective_burst * min(1.0, rate / self.rate) + 0.5))


class RateLimiter(Protocol):
    """What delivery needs from a limiter (both implementations below)."""

    async def acquire(self) -> None:
        """Wait (sleeping, no polling) until this caller may send one request.
        Raises RedisUnavailableError if the shared state cannot be reached."""

    async def throttled(self, retry_after_s: float | None) -> None:
        """Report a 429 (``retry_after_s``: the target's Retry-After in seconds,
        None if absent): pause every caller of the key; the first 429 of an
        episode lowers the rate to what was learned (see adaptive)."""

    async def outage(self, probe_initial_s: float, probe_max_s: float) -> float:
        """Report a target-wide failure during a target outage (tasks.deliver.outage): mark the
        key's outage and, unless a pause is in force, pause every caller until the next probe
        (``probe_initial_s`` doubling per probe up to ``probe_max_s``). Returns the outage's age in s."""

    async def succeeded(self) -> None:
        """Report a 2xx: counts toward the learned rate, probes upward; ends a target outage."""

    outage_age: float | None
    """Seconds since the key's target outage began, as last seen (None: no outage)."""

    async def aclose(self) -> None:
        """Remember the learned rate for the next job on the key; release connections."""

    @property
    def current_rate(self) -> float:
        """Requests/s currently allowed for the key (as last seen)."""

    @property
    def learned_rate(self) -> float | None:
        """The rate learned to be available for the key, requests/s (as last seen; None: none learned)."""
