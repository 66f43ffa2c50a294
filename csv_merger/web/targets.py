"""A web job's destinations: the webhook URLs it asks for, checked, and how
many rows they can still take (the destination ledger, tasks.deliver.route)."""

from __future__ import annotations

import asyncio

from csv_merger.errors import UnsafeTargetError
from csv_merger.safety import check_target
from csv_merger.settings import Settings
from csv_merger.web.errors import ApiError


def checked_webhooks(raw: str | list[str] | None, allow_private_targets: bool) -> list[str]:
    """The URLs (one string, one per line, or a list; blanks dropped) in rollover order, each
    past the unsafe-target check. ApiError 422 on ``webhook_url`` when there is none, one is
    unsafe, or one is given twice."""
    lines = raw.splitlines() if isinstance(raw, str) else list(raw or [])
    urls = [u.strip() for u in lines if u and u.strip()]
    if not urls:
        raise ApiError(422, "webhook_url: a webhook URL is required to deliver (or choose 'merge only')",
                       field="webhook_url")
    if len(set(urls)) < len(urls):
        raise ApiError(422, "webhook_url: the same webhook URL is given twice", field="webhook_url")
    for url in urls:
        try:
            check_target(url, allow_private_targets)
        except UnsafeTargetError as exc:
            raise ApiError(422, f"webhook_url: {exc}", field="webhook_url") from None
    return urls


def destination_capacity(urls: list[str], settings: Settings) -> dict:
    """``{"destinations": [{label, used, ceiling, left}], "left": rows all of them can still take in
    all (None: no ceiling)}`` from the destination ledger, in rollover order. Raises
    RedisUnavailableError / ConfigError when the ledger cannot be read."""
    from tasks.deliver.route import open_route

    async def read():
        route = open_route(urls, settings.row_ceiling, redis_url=settings.redis_url, data_dir=settings.data_dir)
        try:
            return await route.counts()
        finally:
            await route.aclose()

    counts = asyncio.run(read())
    ceiling = settings.row_ceiling
    rows = [{**d.model_dump(), "left": max(0, ceiling - d.used) if ceiling else None} for d in counts]
    return {"destinations": rows, "left": sum(r["left"] for r in rows) if ceiling else None}
