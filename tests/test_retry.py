"""Retry policy parts, each alone, then composed."""

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest
from tenacity import RetryCallState, Retrying

from tasks.deliver.retry import (
    TransientFailure,
    backoff_wait,
    is_retryable_status,
    is_transient_error,
    make_retrying,
    parse_retry_after,
    stop_policy,
    wait_retry_after_or,
)

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def _state(attempt: int, exc: BaseException | None = None, elapsed: float = 0.0) -> RetryCallState:
    state = RetryCallState(Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.outcome_timestamp = state.start_time + elapsed
    if exc is not None:
        state.set_exception((type(exc), exc, None))
    return state


@pytest.mark.parametrize("status,retry", [(500, True), (502, True), (503, True), (599, True), (408, True),
                                          (400, False), (404, False), (429, False), (200, False), (301, False)])
def test_retryable_statuses(status, retry):
    assert is_retryable_status(status) is retry


def test_transient_errors_are_transport_errors_but_not_bad_urls():
    assert is_transient_error(httpx.ConnectError("refused"))
    assert is_transient_error(httpx.ReadTimeout("slow"))
    assert is_transient_error(httpx.RemoteProtocolError("closed"))
    assert not is_transient_error(httpx.UnsupportedProtocol("ftp"))
    assert not is_transient_error(ValueError("x"))


@pytest.mark.parametrize("value,expected", [("3", 3.0), (" 1.5 ", 1.5), ("0", 0.0), (None, None), ("", None),
                                            ("soon", None), ("-1", None), ("nan", None), ("inf", None)])
def test_retry_after_seconds(value, expected):
    assert parse_retry_after(value, now=NOW) == expected


def test_retry_after_http_date():
    later = format_datetime(NOW + timedelta(seconds=42), usegmt=True)
    assert later.endswith("GMT")
    assert parse_retry_after(later, now=NOW) == pytest.approx(42.0)
    earlier = format_datetime(NOW - timedelta(seconds=5), usegmt=True)
    assert parse_retry_after(earlier, now=NOW) == 0.0


def test_backoff_grows_exponentially_within_the_jitter_and_is_capped():
    wait = backoff_wait(initial_s=0.5, max_s=4.0, jitter_s=0.25)
    for attempt, base in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (8, 4.0)):
        samples = [wait(_state(attempt)) for _ in range(50)]
        assert all(base <= s <= base + 0.25 for s in samples), (attempt, samples[:5])
        assert len(set(samples)) > 1  # jittered


def test_retry_after_wait_overrides_backoff_only_when_sent():
    wait = wait_retry_after_or(backoff_wait(initial_s=1.0, max_s=1.0, jitter_s=0.0))
    assert wait(_state(1, TransientFailure(503, "HTTP 503", retry_after=7.0))) == 7.0
    assert wait(_state(1, TransientFailure(503, "HTTP 503"))) == 1.0


def test_stop_after_attempts_or_budget():
    stop = stop_policy(max_attempts=3, budget_s=10.0)
    assert not stop(_state(2, elapsed=1.0))
    assert stop(_state(3, elapsed=1.0))
    assert stop(_state(1, elapsed=10.5))


async def test_composed_policy_retries_transient_failures_until_max_attempts():
    calls = []

    async def flaky():
        calls.append(1)
        raise TransientFailure(503, "HTTP 503")

    retrying = make_retrying(4, 60.0, wait=backoff_wait(initial_s=0.001, max_s=0.001, jitter_s=0.0))
    with pytest.raises(TransientFailure):
        await retrying(flaky)
    assert len(calls) == 4


async def test_composed_policy_does_not_retry_other_errors_and_returns_success():
    calls = []

    async def bad():
        calls.append(1)
        raise KeyError("not transient")

    retrying = make_retrying(4, 60.0)
    with pytest.raises(KeyError):
        await retrying(bad)
    assert len(calls) == 1

    outcomes = iter([TransientFailure(None, "ConnectError"), "ok"])

    async def recovers():
        out = next(outcomes)
        if isinstance(out, Exception):
            raise out
        return out

    fast = make_retrying(4, 60.0, wait=backoff_wait(initial_s=0.001, max_s=0.001, jitter_s=0.0))
    assert await fast(recovers) == "ok"
