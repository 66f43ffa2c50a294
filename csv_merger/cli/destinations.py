"""``csv-merger destinations``: the webhooks' lifetime counts (the destination ledger).

``list`` shows every destination this installation sent to (by ``host #hash``:
the URL is a credential and is never stored), with its submissions used of
``CSV_MERGER_ROW_CEILING``. ``set URL N`` records N submissions (a webhook
used before this tool, or by another tool); ``forget URL`` removes its
count and its index of leads already sent. Uses Redis when ``REDIS_URL`` is set, else the local data folder,
exactly as delivery does.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timezone
from urllib.parse import urlsplit

import typer

from csv_merger.cli.app import app
from csv_merger.errors import ConfigError

destinations_app = typer.Typer(help="Webhooks' lifetime submission counts: list, set, forget.", no_args_is_help=True)
app.add_typer(destinations_app, name="destinations")


def _store():
    from csv_merger.settings import get_settings
    from tasks.deliver.destinations import open_destinations

    s = get_settings()
    return open_destinations(redis_url=s.redis_url, data_dir=s.data_dir), s.row_ceiling


async def _with_store(action):
    store, ceiling = _store()
    try:
        return await action(store, ceiling)
    finally:
        await store.aclose()


@destinations_app.command("list")
def list_() -> None:
    """Every destination with its submissions used of the ceiling."""
    async def show(store, ceiling):
        found = await store.list()
        if not found:
            print("no destination recorded yet")
        for d in found:
            when = datetime.fromtimestamp(d.updated, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            of = f" of {ceiling:,}" if ceiling else " (no ceiling)"
            print(f"{d.label}  {d.used:,}{of} used  (last change {when})")

    asyncio.run(_with_store(show))


@destinations_app.command("set")
def set_(webhook_url: str = typer.Argument(..., help="The webhook URL (only its hash is stored)."),
         used: int = typer.Argument(..., help="Submissions already used.")) -> None:
    """Record how many submissions a webhook has used (one used before this tool, or by another)."""
    from tasks.deliver.destinations import destination_id, destination_label

    if used < 0:
        raise ConfigError(f"used must be 0 or more, got {used}")
    parts = urlsplit(webhook_url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{webhook_url!r} is not an http(s) URL: give the webhook URL deliveries use")

    async def store_it(store, ceiling):
        if ceiling and used > ceiling:
            print(f"csv-merger: warning: {used:,} is above the ceiling of {ceiling:,} (CSV_MERGER_ROW_CEILING): "
                  "nothing more will be sent there", file=sys.stderr)
        await store.set_used(destination_id(webhook_url), destination_label(webhook_url), used)
        print(f"{destination_label(webhook_url)}: {used:,}" + (f" of {ceiling:,}" if ceiling else "") + " used")

    asyncio.run(_with_store(store_it))


@destinations_app.command("forget")
def forget(webhook_url: str = typer.Argument(..., help="The webhook URL.")) -> None:
    """Remove a webhook's count and its index of leads already sent (e.g. a table that was replaced)."""
    from csv_merger.settings import get_settings
    from tasks.deliver.destinations import destination_id, destination_label
    from tasks.deliver.new_leads import forget_destination

    async def drop(store, _ceiling):
        s = get_settings()
        gone = await store.forget(destination_id(webhook_url))
        leads = await forget_destination(webhook_url, redis_url=s.redis_url, data_dir=s.data_dir)
        print(f"{destination_label(webhook_url)}: " + ("count forgotten" if gone else "no count recorded")
              + f", {leads} lead identities forgotten")

    asyncio.run(_with_store(drop))
