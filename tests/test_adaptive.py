"""The rate learner (tasks.deliver.ratelimit.adaptive) on event sequences with explicit times.

``drive`` plays a sender paced at the learner's rate against a token bucket (the
sink's arithmetic, Retry-After rounded up to whole seconds, at least 1), so the
figures below are the policy's own, without scheduling noise; the real-process
figures are in tests/test_rate_learning.py and bench/adaptive.py.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from tasks.deliver.ratelimit import adaptive
from tasks.deliver.ratelimit.adaptive import Learning

CFG = 10.0


def play(real, until: float, *, cap: int = 5, remembered: float | None = None) -> list[tuple[float, bool]]:
    """(time, accepted) per request; ``real(t)``: the bucket's refill rate at t (requests/s)."""
    state, t, tokens, last, paused, log = adaptive.start(CFG, remembered), 0.0, float(cap), 0.0, 0.0, []
    while t < until:
        tokens, last = min(cap, tokens + (t - last) * real(t)), t
        if tokens >= 1:
            tokens -= 1
            log.append((t, True))
            state = adaptive.succeeded(state, CFG, t, 1, t < paused)
        else:
            log.append((t, False))
            if t >= paused:
                state = adaptive.throttled(state, CFG, t)
            paused = max(paused, t + max(1, math.ceil((1 - tokens) / real(t))))
        t = max(t + 1 / state.rate, paused)
    return log


def window(log, start: float, end: float) -> tuple[float, float]:
    """(accepted per second, share answered 429) of the requests sent in [start, end)."""
    sent = [ok for t, ok in log if start <= t < end]
    return sum(sent) / (end - start), sent.count(False) / max(1, len(sent))


def test_settles_just_under_a_lower_limit():
    log = play(lambda t: 5.0, 200)
    rate, share = window(log, 20, 200)
    assert rate >= 0.95 * 5 and share <= 0.02, (rate, share)


@pytest.mark.parametrize("cap", [5, 20])
def test_re_converges_within_30_s_when_the_limit_halves_or_doubles(cap):
    halved = play(lambda t: 10.0 if t < 60 else 5.0, 200, cap=cap)
    assert window(halved, 20, 60)[0] >= 0.95 * 10
    rate, share = window(halved, 90, 200)
    assert rate >= 0.95 * 5 and share <= 0.02, (rate, share)
    doubled = play(lambda t: 5.0 if t < 60 else 10.0, 200, cap=cap)
    assert window(doubled, 90, 200)[0] >= 0.95 * 10


def test_a_remembered_rate_starts_just_under_it_and_avoids_the_opening_429s():
    state = adaptive.start(CFG, 5.0)
    assert (state.rate, state.ceiling) == (pytest.approx(4.95), 5.0)
    assert adaptive.start(CFG, 12.0) == Learning(rate=CFG)  # never above the configured rate
    assert window(play(lambda t: 5.0, 10, remembered=5.0), 0, 10)[1] == 0
    opening = adaptive.throttled(adaptive.start(CFG, 5.0), CFG, 1.0)  # e.g. the opening burst drew a 429
    assert (opening.rate, opening.ceiling) == (pytest.approx(4.95 * 0.99), pytest.approx(4.95))
    assert window(play(lambda t: 5.0, 10), 0, 10)[1] > 0  # without memory: 429s at the start


def test_estimate_is_the_accepted_rate_between_two_episodes():
    state = adaptive.throttled(adaptive.start(CFG, None), CFG, 100.0)  # first 429: nothing measured, halve
    assert (state.rate, state.ceiling, state.episode_at) == (5.0, 10.0, 100.0)
    for second in range(101, 106):  # 20 accepted in the 5 s since
        state = adaptive.succeeded(state, CFG, float(second), 4, paused=second == 101)
    state = adaptive.throttled(state, CFG, 105.0)
    assert state.ceiling == pytest.approx(4.0) and state.rate == pytest.approx(0.99 * 4.0)
    state = adaptive.succeeded(state, CFG, 160.0, 12, paused=False)  # idle for most of a minute
    too_soon = adaptive.throttled(state, CFG, 160.0)  # 1 s of sending since: not enough to measure
    assert too_soon.rate == too_soon.ceiling == pytest.approx(0.9 * state.rate)  # the estimate was a little high
    first = adaptive.throttled(adaptive.start(CFG, None), CFG, 0.0)
    assert adaptive.throttled(first, CFG, 0.5).rate == first.rate / 2  # nothing measured yet: halve again


def test_probing_counts_clean_sending_only_and_stops_at_the_configured_rate():
    state = Learning(rate=4.95, ceiling=5.0, origin=4.95, episode_at=0.0, last_ok=0.0)
    paused = adaptive.succeeded(state, CFG, 5.0, 1, paused=True)
    assert paused.rate == 4.95 and paused.clean_s == 0  # no probing during a pause
    idle = adaptive.succeeded(state, CFG, 60.0, 1, paused=False)
    assert idle.clean_s == 1.0  # an idle gap counts as one second
    for second in range(1, 400):
        state = adaptive.succeeded(state, CFG, float(second), 1, paused=False)
    assert state.rate == CFG
    assert adaptive.remembered(state, CFG) == CFG and adaptive.remembered(adaptive.start(CFG, None), CFG) is None
    assert adaptive.remembered(replace(state, rate=7.0), CFG) == 5.0  # the probe past it is not remembered


def test_state_round_trips_through_string_fields():
    state = Learning(rate=4.85, ceiling=5.0, origin=4.85, clean_s=3.5, episode_at=12.25, ok_since=7, active_s=4.0,
                     last_ok=13.0, measured=1)
    assert Learning.from_fields({k: v.encode() for k, v in state.to_fields().items()}) == state
    assert Learning.from_fields({"rate": "1.0"}) is None
