"""Target outage policy: a circuit breaker shared by every worker on a limit key.

A target answering 5xx (or not answering: timeouts, refused connections) to
the most recent requests of several rows is down, not refusing those rows.
Dead-lettering the rows in flight would turn an outage into lost rows, so:

- **Detect** (per process, ``OutageDetector``): the last ``window`` attempts
  all failed target-wide and came from at least ``min_rows`` rows. A single
  row failing again and again never trips it (that row is retried and
  dead-lettered as before), nor does a target failing one request in ten.
- **Pause** (shared, ``RateLimiter.outage``): the key's ``paused_until``,
  the same field a 429 sets, moves to now + a probe wait (``probe_initial_s``
  doubling up to ``probe_max_s``); every process on the key stops sending.
  The key remembers since when it is in an outage.
- **Probe**: when the pause ends the next request goes out; a failure
  extends the pause (the others, holding later slots, wait again), the first
  2xx ends the outage for every process on the key.
- **Budget**: while the key's outage is younger than ``budget_s`` (the
  setting ``outage_budget_s``), a failing row does not spend one of its
  attempts: it waits and is sent again. Once older, each failing row is
  dead-lettered at its first failure (no more pauses), naming the budget.

This is one of four outcome policies; the others: a 429 (tasks.deliver.ratelimit:
pause and slow down), a row the target refuses (dead-lettered at once, see
the engine), a Redis that went away (the delivery stops and says how to resume).
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from tasks.deliver.ratelimit import RateLimiter


@dataclass(frozen=True)
class OutagePolicy:
    """``window``: attempts looked at; ``min_rows``: distinct rows among them;
    ``probe_initial_s`` / ``probe_max_s``: pause before the next probe, doubling;
    ``budget_s``: how long an outage may last before rows are dead-lettered."""

    budget_s: float = 600.0
    window: int = 8
    min_rows: int = 2
    probe_initial_s: float = 1.0
    probe_max_s: float = 15.0


class Verdict(enum.Enum):
    """What a target-wide failure means for its row."""

    ROW_FAILURE = "row"  # no outage: the row's own retry policy decides
    PAUSED = "paused"  # outage: every worker paused; send the row again, no attempt spent
    OVER_BUDGET = "over-budget"  # outage older than the budget: dead-letter the row now


class OutageDetector:
    """This process's recent attempt outcomes: ``failed`` says when they look like an outage."""

    def __init__(self, policy: OutagePolicy):
        self.policy = policy
        self.recent: deque[int | None] = deque(maxlen=policy.window)  # row number of a failure, None for a 2xx

    def succeeded(self) -> None:
        """Record a 2xx: the window is no longer all failures."""
        self.recent.append(None)

    def failed(self, row: int) -> bool:
        """Record a target-wide failure of ``row``; True when the window is all failures of enough rows."""
        self.recent.append(row)
        rows = set(self.recent)
        return len(self.recent) == self.policy.window and None not in rows and len(rows) >= self.policy.min_rows


class OutageBreaker:
    """The detector plus the key's shared outage state (kept by the limiter)."""

    def __init__(self, policy: OutagePolicy, limiter: RateLimiter):
        self.policy, self.limiter = policy, limiter
        self.detector = OutageDetector(policy)
        self.pauses = 0  # failures this process answered with a pause

    async def failed(self, row: int) -> Verdict:
        """A target-wide failure (5xx, 408, timeout, connection error) of ``row``."""
        tripped = self.detector.failed(row)
        age = self.limiter.outage_age
        if age is not None and age > self.policy.budget_s:
            return Verdict.OVER_BUDGET
        if not tripped and age is None:
            return Verdict.ROW_FAILURE
        age = await self.limiter.outage(self.policy.probe_initial_s, self.policy.probe_max_s)
        if age > self.policy.budget_s:
            return Verdict.OVER_BUDGET
        self.pauses += 1
        return Verdict.PAUSED

    def over_budget(self, reason: str) -> str:
        """The dead-letter reason of a row that failed (``reason``) after the budget was spent."""
        return f"target outage longer than the outage budget of {self.policy.budget_s:g} s: {reason}"

    def succeeded(self) -> None:
        """A 2xx (the limiter's ``succeeded`` ends the key's outage)."""
        self.detector.succeeded()
