"""Does the Redis we were given answer? One PING with a short timeout.

The CLI pings before a job starts (``run`` and ``deliver`` refuse a Redis that
does not answer before the job id is printed: exit 4), the web app for
``GET /health``. Messages show a URL's password as ``***``, never in clear.
"""

from __future__ import annotations

import re

from csv_merger.errors import ConfigError, RedisUnavailableError

PING_TIMEOUT_S = 3.0
"""Seconds to connect and to get the answer: a Redis slower than that is not one a job can run on."""


def masked(text: str) -> str:
    """``text`` with the password of any URL in it replaced by ``***``."""
    return re.sub(r"(://[^:@/]*:)[^@/]*@", r"\1***@", text)


def ping_redis(url: str, get: str | None = None) -> bytes | None:
    """Return once Redis at ``url`` answers PING within ``PING_TIMEOUT_S`` seconds; with ``get``, the
    value of that key read on the same connection (None when absent). Raises ConfigError for a URL
    that is no Redis URL, RedisUnavailableError ("Redis at URL does not answer: why") when it does
    not answer (refused, timed out, wrong password or database, not a Redis server)."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=PING_TIMEOUT_S, socket_timeout=PING_TIMEOUT_S)
    except ValueError as exc:
        raise ConfigError(f"invalid Redis URL {masked(url)!r}: {exc}") from None
    try:
        client.ping()
        return client.get(get) if get is not None else None
    except (redis.RedisError, OSError) as exc:
        raise RedisUnavailableError(f"Redis at {masked(url)} does not answer: {exc}") from None
    finally:
        client.close()
