"""``GET /health``: is every service the web app depends on answering?

Checks Redis (only when ``REDIS_URL`` is set) and the Prefect API (only when
``PREFECT_API_URL`` is set), each with a short timeout, and names the part
that is down.
"""

from __future__ import annotations

import asyncio

import httpx

from csv_merger.errors import ConfigError, RedisUnavailableError
from csv_merger.redis_check import ping_redis

CHECK_TIMEOUT_S = 2.0


def check_redis(url: str) -> str | None:
    """None when Redis answers PING, else the reason (its password shown as ``***``)."""
    try:
        ping_redis(url)
    except (ConfigError, RedisUnavailableError) as exc:
        return str(exc)
    return None


async def check_prefect(api_url: str) -> str | None:
    """None when the Prefect API's ``/health`` answers 200, else the reason."""
    try:
        async with httpx.AsyncClient(timeout=CHECK_TIMEOUT_S) as client:
            response = await client.get(api_url.rstrip("/") + "/health")
    except httpx.HTTPError as exc:
        return f"Prefect API at {api_url} does not answer: {exc.__class__.__name__}"
    if response.status_code != 200:
        return f"Prefect API at {api_url} answered HTTP {response.status_code}"
    return None


async def health(redis_url: str | None, prefect_api_url: str | None) -> tuple[bool, dict]:
    """(all ok, JSON body). Each dependency is "ok", "not configured" or the reason it is down."""
    checks: dict[str, str] = {}
    if redis_url:
        checks["redis"] = await asyncio.to_thread(check_redis, redis_url) or "ok"  # the PING blocks
    else:
        checks["redis"] = "not configured"
    if prefect_api_url:
        checks["prefect_api"] = await check_prefect(prefect_api_url) or "ok"
    else:
        checks["prefect_api"] = "not configured (embedded mode)"
    down = [name for name, state in checks.items() if state != "ok" and not state.startswith("not configured")]
    body = {"status": "down" if down else "ok", "down": down, "checks": checks}
    return not down, body

