"""Learning the rate a target really grants (pure: no I/O, no clock; times are arguments).

The target's limit is shared with clients we cannot see (a teammate's job,
another tool's sync), so the configured rate is only an upper bound. The
learner turns 429 episodes and success counts into the allowed rate:

- **Estimate on a 429 episode.** A 429 from a token bucket means its bucket
  was empty; if it was empty at the previous episode too, everything accepted
  in between came from its refill: ``successes since the previous episode /
  seconds since it`` is the rate available to us, whatever the bucket's size
  and whoever else draws on it (pauses included: the bucket refills then;
  idle time is not counted).
  The learned rate (``ceiling``) becomes that estimate (capped by the rate
  that just drew the 429) and the allowed rate ``margin`` (99 %) of it: the
  estimate is already a little low (tokens the bucket could not hold while we
  sent below the limit are not counted).
  Without a usable previous episode (the first 429 of a key, or fewer than
  ``min_successes`` / ``min_span_s`` of sending since it) the rate is halved
  instead and the rate that drew the 429 is the ceiling until the next
  episode measures; a 429 soon after a measured episode cuts the learned rate
  by ``recut`` (10 %) only; the first 429 of a job that started from a
  remembered rate (usually its opening burst) keeps that rate as the ceiling.
- **Probing (CUBIC in rate space).** With ``t`` seconds of clean sending
  since the episode, the allowed rate is ``ceiling * (1 + c (t - K)^3)``,
  ``K`` chosen so that it starts at the lowered rate: it climbs back quickly,
  flattens near the ceiling (few 429s in steady state: about one per 20 s),
  then accelerates past it, so a limit that doubled is reached within ~25 s.
  Never above the configured rate; a key with nothing learned stays there.
- **Memory.** ``remembered(state, cfg_rate)`` is what the next job should
  start from (``start(cfg_rate, remembered)``): the learned rate, or the
  configured one once probing reached it without a 429.

Several processes act as one learner: the caller keeps one ``Learning`` per
limit key where every process sees it and applies these functions atomically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class AdaptivePolicy:
    """``margin``: allowed rate as a fraction of the learned one after an
    episode. ``cubic``: c of the probe curve (per s^3). ``fallback_decrease``:
    factor on the rate when no estimate is possible. ``min_span_s`` /
    ``min_successes``: what an estimate needs since the previous episode.
    ``recut``: factor on the rate for a 429 too soon after a measured episode
    (its estimate was a little high; halving would throw away what it learned).
    ``max_gap_s``: longest gap between success reports counted as clean
    sending (idle time does not probe). ``min_fraction``: floor of the rate as
    a fraction of the configured one."""

    margin: float = 0.99
    cubic: float = 1.5e-4
    fallback_decrease: float = 0.5
    min_span_s: float = 2.0
    min_successes: int = 5
    recut: float = 0.9
    max_gap_s: float = 1.0
    min_fraction: float = 0.05


@dataclass(frozen=True)
class Learning:
    """One key's learner state; rates in requests/s, times in the caller's clock (s).

    ``rate``: allowed now. ``ceiling``: learned available rate (0: nothing
    learned). ``origin``: the rate right after the last episode (start of the
    probe curve). ``clean_s``: seconds of clean sending since then.
    ``episode_at``: time of the last 429 episode (-1: none). ``ok_since``:
    successes since it; ``active_s``: seconds of sending since it (pauses
    included, every gap between reports counted up to ``max_gap_s``: an idle
    key, e.g. between two jobs, must not dilute the estimate). ``last_ok``:
    time of the last success report. ``measured``: 1 when ``ceiling`` was
    measured (or remembered), 0 when it is only the rate that drew a 429."""

    rate: float
    ceiling: float = 0.0
    origin: float = 0.0
    clean_s: float = 0.0
    episode_at: float = -1.0
    ok_since: int = 0
    active_s: float = 0.0
    last_ok: float = -1.0
    measured: int = 0

    def to_fields(self) -> dict[str, str]:
        """The state as strings (a Redis hash's fields)."""
        return {f.name: repr(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_fields(cls, values: dict[str, str | bytes | None]) -> Learning | None:
        """Inverse of ``to_fields``; None when a field is missing."""
        try:
            return cls(**{f.name: (int if f.type == "int" else float)(values[f.name]) for f in fields(cls)})
        except (KeyError, TypeError, ValueError):
            return None


def start(cfg_rate: float, remembered: float | None, policy: AdaptivePolicy = AdaptivePolicy()) -> Learning:
    """A key's first state: at the configured rate, or ``margin`` of a remembered learned rate below it."""
    if remembered is None or remembered >= cfg_rate:
        return Learning(rate=cfg_rate)
    rate = max(policy.min_fraction * cfg_rate, policy.margin * remembered)
    return Learning(rate=rate, ceiling=remembered, origin=rate, measured=1)


def probe_rate(state: Learning, cfg_rate: float, policy: AdaptivePolicy = AdaptivePolicy()) -> float:
    """The allowed rate after ``state.clean_s`` seconds of clean sending (the CUBIC curve)."""
    if state.ceiling <= 0:
        return min(cfg_rate, state.rate)
    gap = (1 - state.origin / state.ceiling) / policy.cubic
    k = math.copysign(abs(gap) ** (1 / 3), gap)
    return min(cfg_rate, max(state.origin, state.ceiling * (1 + policy.cubic * (state.clean_s - k) ** 3)))


def succeeded(state: Learning, cfg_rate: float, now: float, count: int, paused: bool,
              policy: AdaptivePolicy = AdaptivePolicy()) -> Learning:
    """``count`` 2xx reported at ``now``; ``paused``: a Retry-After pause is in force (no probing then)."""
    gap = _gap(state, now, policy)
    probed = replace(state, clean_s=state.clean_s + (0.0 if paused else gap), ok_since=state.ok_since + count,
                     active_s=state.active_s + gap, last_ok=now)
    return replace(probed, rate=probe_rate(probed, cfg_rate, policy))


def throttled(state: Learning, cfg_rate: float, now: float, policy: AdaptivePolicy = AdaptivePolicy()) -> Learning:
    """The first 429 of an episode (one that arrived while no pause was in force) at ``now``."""
    rate = min(state.rate, cfg_rate)
    span = state.active_s + _gap(state, now, policy)
    measured = 1
    if state.episode_at >= 0 and span >= policy.min_span_s and state.ok_since >= policy.min_successes:
        ceiling = min(rate, state.ok_since / span)
        lowered = policy.margin * ceiling
    elif state.episode_at < 0 and state.measured:  # remembered from an earlier job: trust it once
        ceiling = min(rate, state.ceiling)
        lowered = policy.margin * ceiling
    elif state.measured:
        ceiling = lowered = policy.recut * min(rate, state.ceiling)
    else:
        ceiling, lowered, measured = rate, rate * policy.fallback_decrease, 0
    lowered = max(policy.min_fraction * cfg_rate, lowered)
    return Learning(rate=lowered, ceiling=max(ceiling, lowered), origin=lowered, episode_at=now, last_ok=now,
                    measured=measured)


def _gap(state: Learning, now: float, policy: AdaptivePolicy) -> float:
    """Seconds since the last success report that count as sending (at most ``max_gap_s``)."""
    return min(policy.max_gap_s, max(0.0, now - state.last_ok)) if state.last_ok >= 0 else 0.0


def remembered(state: Learning, cfg_rate: float) -> float | None:
    """The rate the next job on this key should start from; None: nothing learned. Not the rate
    probed past the learned one (that probe is what draws the next 429), unless it reached the
    configured rate: the limit went up, and the next job starts there."""
    if state.ceiling <= 0:
        return None
    return cfg_rate if state.rate >= cfg_rate else state.ceiling
