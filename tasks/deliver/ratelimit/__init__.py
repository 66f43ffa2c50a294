"""Rate limiting: one GCRA budget per limit key, shared through Redis or per process.

Semantics (the same for both implementations):

- **GCRA with burst, reservation style.** ``acquire()`` atomically reserves the
  next free slot of the key's budget and sleeps until it; nobody polls. Slots
  are absolute times, so a caller that wakes late does not shift later callers.
  Slots are reserved at most ``horizon_s`` (1 s) ahead: a caller whose slot
  lies further sleeps until it would be within it and asks again, so a rate
  the learner changes applies within a second however many callers wait
  (32 waiting callers at 5/s used to hold slots 7 s ahead at the old rate).
- **Burst safety margin.** We use ``burst - margin`` of the target's burst
  (``LimitPolicy.effective_burst``; margin = a third of the burst, at least 1).
  Pacing at exactly the target's rate after draining its whole burst would
  leave its bucket at zero, so any network jitter would draw 429s; the spare
  tokens absorb requests that arrive closer together than they were sent, and
  a first burst that arrives late while the target's bucket is full (its
  refill is lost then). Measured on a loaded 2-core machine (four processes
  against a strict 20/s target): a 15 % or 25 % margin still drew a 429 in
  about one run of ten, each costing seconds of pause; a third drew
  none in 14 runs. It costs ``margin / rate`` seconds once per job. While a
  learned rate below the configured one is in force the burst shrinks by the
  same fraction (``LimitPolicy.burst_at``): others draw on the target's bucket.
- **Retry-After pause.** ``throttled(retry_after_s)`` sets a shared
  "paused until" time (the later of the existing one and now + Retry-After, or
  a default back-off of 1 s doubling to 30 s when the target sent none).
  Callers that reserved a slot inside the pause re-reserve after it; after a
  pause the budget restarts without a burst.
- **Learned rate.** The configured rate is an upper bound: the target's
  limit is often shared with clients we cannot see. A learner
  (``adaptive``, pure, no I/O) sets the rate actually allowed: the first 429
  of an episode (one that arrives while no pause is in force) measures the
  rate the target accepted since the previous episode and sets the rate to
  99 % of it (``AdaptivePolicy.margin``; halves it when nothing could be
  measured yet); clean sending then probes upward along a CUBIC curve (slow
  near the learned rate, faster past it), never above the configured rate. Measured with bench/adaptive.py.
- **Memory.** The learned rate is kept per key for ``learned_rate_ttl_s``
  (24 h): a Redis string ``csv-merger:rl-learned:<key>`` when Redis is used,
  ``<data_dir>/learned-rates.json`` otherwise. The next job starts at 99 % of
  it; a job that meets no 429 probes on up to the configured rate.
- **Target outage pause.** ``outage(probe_initial_s, probe_max_s)`` (see
  tasks.deliver.outage) uses the same ``paused_until``: every caller of the
  key waits for the next probe; the rate is not lowered. The key remembers
  since when the target is down (``outage_age``); a 2xx ends the outage.
- **Time** comes from Redis (``TIME`` inside the scripts) for the shared
  limiter, because the clocks of several machines differ, and from
  ``time.monotonic()`` for the in-process one.

Shared limiter: state lives in one Redis hash ``csv-merger:rl:<key>``
(pacing: ``tat``, ``paused_until``, ``streak``, ``outage_since``, ``probes``,
each change one Lua script run; the learner: ``rate`` and the fields of
``adaptive.Learning`` with a version ``learn_v``, changed by compare-and-set
so that every process on the key feeds ONE learner). A process folds its
successes into it at most every 0.5 s (``SUCCESS_FLUSH_S``) and before a
429 episode. Processes sharing a key should be configured with the same rate
and burst; each caps the stored rate at its own. In-process limiter (no
Redis): limiters made for the same key in one process share one budget and
one learner; other processes do not see it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from csv_merger.errors import ConfigError
from csv_merger.redis_check import ping_redis
from csv_merger.settings import get_settings
from tasks.deliver.ratelimit.adaptive import AdaptivePolicy
from tasks.deliver.ratelimit.gcra import LocalRateLimiter
from tasks.deliver.ratelimit.memory import FileMemory
from tasks.deliver.ratelimit.policy import LimitPolicy, RateLimiter
from tasks.deliver.ratelimit.redis_gcra import KEY_PREFIX, MEMORY_PREFIX, RedisRateLimiter

__all__ = ["KEY_PREFIX", "MEMORY_PREFIX", "AdaptivePolicy", "LimitPolicy", "LocalRateLimiter", "RateLimiter", "RedisRateLimiter", "default_limit_key",
           "make_limiter"]


def make_limiter(key: str, rate: float, burst: int, redis_url: str | None = None) -> RateLimiter:
    """A limiter for ``key`` at ``rate`` requests/s (at most) with ``burst`` requests.

    ``redis_url`` None: in-process limiter (per process), the learned rate
    kept in ``<data_dir>/learned-rates.json``. Otherwise the state is shared
    in that Redis; the server is pinged first. Raises ConfigError for a bad
    rate, burst or URL, RedisUnavailableError if Redis does not answer.
    """
    settings = get_settings()
    policy = LimitPolicy(rate=rate, burst=burst, memory_ttl_s=settings.learned_rate_ttl_s)
    if not key:
        raise ConfigError("limit key must not be empty")
    if redis_url is None:
        return LocalRateLimiter(key, policy, FileMemory(settings.data_dir / "learned-rates.json", policy.memory_ttl_s))
    remembered = ping_redis(redis_url, get=MEMORY_PREFIX + key)
    return RedisRateLimiter(key, policy, redis_url, float(remembered) if remembered else None)


def default_limit_key(webhook_url: str) -> str:
    """Default limit key for a webhook URL: its lower-cased host (with the port
    when one is given), e.g. ``api.clay.com``.

    Clay's webhook limit (10 records/s, burst 20) is per workspace, and the
    workspace cannot be read from a webhook URL (``/v3/sources/webhook/<id>``
    names one table). Keying on the host makes every job to that host share
    one budget: never too fast, at worst slower than needed when jobs go to
    different workspaces, which ``--limit-key WORKSPACE`` fixes.
    """
    parts = urlsplit(webhook_url)
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"webhook URL {webhook_url!r} has an invalid port") from None
    if not parts.hostname:
        raise ConfigError(f"webhook URL {webhook_url!r} has no host")
    return parts.hostname.lower() + (f":{port}" if port else "")
