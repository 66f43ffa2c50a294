"""Retry policy for one webhook row, from small tenacity parts.

- Which outcomes are retried: ``TransientFailure`` (5xx, 408, timeouts,
  connection errors). Success (2xx) and other 4xx end the row at once.
- How long to wait: the server's ``Retry-After`` when it sent one, else
  exponential backoff plus random jitter (``backoff_wait``).
- When to stop: ``max_attempts`` attempts or ``budget_s`` seconds, whichever
  comes first (``stop_policy``).

429 is not handled here: it is the target saying "slower", not "failed".
The engine hands it to the shared rate limiter (every process pauses) and
sends the row again without spending one of its attempts (see engine.py). Nor is a
target outage: tasks.deliver.outage decides whether a failure is the row's own.
"""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_random,
)
from tenacity.wait import wait_base

RETRYABLE_STATUS = frozenset({408, *range(500, 600)})
"""HTTP statuses worth another attempt: Request Timeout and every 5xx."""


class TransientFailure(Exception):
    """An attempt failed in a way another attempt may fix.

    ``status``: HTTP status, or None for a transport error; ``reason``: one
    line; ``response``: first 500 bytes of the body (text); ``retry_after``:
    seconds the server asked us to wait, or None.
    """

    def __init__(self, status: int | None, reason: str, response: str = "", retry_after: float | None = None):
        self.status, self.reason, self.response, self.retry_after = status, reason, response, retry_after
        super().__init__(reason)

    @property
    def dead_status(self) -> int | str:
        """The dead-letter ``_status``: the HTTP status, else "timeout" or "connection-error"."""
        return self.status or ("timeout" if "Timeout" in self.reason else "connection-error")


def is_retryable_status(status: int) -> bool:
    """True for 408 and 5xx (RFC 9110: the request may succeed later)."""
    return status in RETRYABLE_STATUS


def is_transient_error(exc: BaseException) -> bool:
    """True for httpx timeouts and connection/transport errors (never for a
    bad URL or a request we built wrongly)."""
    return isinstance(exc, httpx.TransportError) and not isinstance(exc, httpx.UnsupportedProtocol)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110 §10.2.3).

    Accepts delay-seconds ("3", "1.5") or an HTTP date
    ("Wed, 21 Oct 2015 07:28:00 GMT"); a past date gives 0.0. Returns None
    for a missing or unparseable value (the caller then uses its default).
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        return None
    return seconds


def backoff_wait(initial_s: float = 0.5, max_s: float = 30.0, jitter_s: float = 0.5) -> wait_base:
    """Exponential backoff (``initial_s`` doubling, capped at ``max_s``) plus
    uniform jitter in [0, ``jitter_s``] so retries from many rows spread out."""
    return wait_exponential(multiplier=initial_s, max=max_s) + wait_random(0, jitter_s)


class wait_retry_after_or(wait_base):
    """Wait what the last failure's ``Retry-After`` said, else ``fallback``."""

    def __init__(self, fallback: wait_base):
        self.fallback = fallback

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, TransientFailure) and exc.retry_after is not None:
            return exc.retry_after
        return self.fallback(retry_state)


def stop_policy(max_attempts: int, budget_s: float):
    """Stop after ``max_attempts`` attempts or ``budget_s`` seconds."""
    return stop_after_attempt(max_attempts) | stop_after_delay(budget_s)


def make_retrying(max_attempts: int, budget_s: float, *, wait: wait_base | None = None) -> AsyncRetrying:
    """The row policy: retry ``TransientFailure`` only, wait Retry-After or
    backoff, stop per ``stop_policy``; the last TransientFailure is re-raised."""
    return AsyncRetrying(
        retry=retry_if_exception_type(TransientFailure),
        wait=wait_retry_after_or(wait or backoff_wait()),
        stop=stop_policy(max_attempts, budget_s),
        reraise=True,
    )
