"""Destination ledger: submissions each webhook accepted, across every job
and process, against its lifetime ceiling.

"Webhook sources are limited to 50,000 submissions, and this limit persists
even after deleting rows" (Clay University, webhook integration guide); a
full table silently stops accepting rows. So the count belongs to the
destination, not to a job. A destination is known by a hash of its URL
(``destination_id``), never the URL (a webhook URL is a credential) or its
token; ``destination_label`` (host and hash prefix) is what lists show.

Before each POST the engine ``reserve``s one submission (through
``tasks.deliver.route``, which rolls over to a job's next destination):
atomically, only while ``used < ceiling`` (ceiling 0 = unlimited, e.g. Enterprise
passthrough tables), so concurrent jobs stop before the ceiling and never
past it. A row that ends undelivered ``release``s its reservation; a row
whose fate is unknown (cancelled in flight, crash) keeps it: an
undercount would risk rows past the ceiling, an overcount costs at most
the job's concurrency.

Stores: ``RedisDestinations`` (hash ``csv-merger:dest:<id>`` with ``used``,
``label``, ``updated``; no TTL: the ceiling is for life) when Redis is
configured, else ``SqliteDestinations`` (``<data_dir>/destinations.sqlite3``).
Redis must persist (AOF or RDB) for the counts to survive a restart.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from csv_merger.errors import ConfigError, RedisUnavailableError

DEST_PREFIX = "csv-merger:dest:"


def canonical_url(webhook_url: str) -> str:
    """The URL as the target sees it, so spellings of one webhook are one destination: surrounding
    whitespace, the scheme's and host's case, a default port, an empty ``?`` and a ``#fragment`` (never
    sent) dropped; path and query kept exactly (``/a`` and ``//a`` may be different webhooks)."""
    parts = urlsplit(webhook_url.strip())
    userinfo, at, hostport = parts.netloc.rpartition("@")
    hostport = hostport.lower()
    default = {"http": ":80", "https": ":443"}.get(parts.scheme.lower())
    if default and hostport.endswith(default):
        hostport = hostport.removesuffix(default)
    return urlunsplit((parts.scheme.lower(), userinfo + at + hostport, parts.path, parts.query, ""))


def destination_id(webhook_url: str) -> str:
    """24 hex chars of SHA-256 of ``canonical_url(webhook_url)`` (the same as of the URL itself when it
    is already canonical, so ids stored before canonical URLs stay valid)."""
    return hashlib.sha256(canonical_url(webhook_url).encode()).hexdigest()[:24]


def destination_label(webhook_url: str) -> str:
    """``host #hashprefix``: tells destinations apart without revealing the URL."""
    return f"{(urlsplit(webhook_url.strip()).hostname or '?').lower()} #{destination_id(webhook_url)[:8]}"


@dataclass(frozen=True)
class Destination:
    """One destination's count: ``used`` submissions accepted (or reserved), ``updated`` Unix seconds."""

    id: str
    label: str
    used: int
    updated: float


class Destinations(Protocol):
    """A store of destination counts (see module docstring)."""

    async def reserve(self, dest: str, label: str, ceiling: int) -> int | None:
        """Take one submission of ``dest`` if fewer than ``ceiling`` are used (0: no ceiling);
        return the count with it, None when the destination is full."""

    async def release(self, dest: str) -> None:
        """Give one reservation back (its row was not accepted)."""

    async def get(self, dest: str) -> Destination | None: ...

    async def set_used(self, dest: str, label: str, used: int) -> None:
        """Set the count (a webhook used before this tool, or a reset to 0)."""

    async def forget(self, dest: str) -> bool:
        """Remove the destination's count; False when it had none."""

    async def list(self) -> list[Destination]: ...

    async def aclose(self) -> None: ...


_LUA_RESERVE = """
local used = tonumber(redis.call('HGET', KEYS[1], 'used')) or 0
local ceiling = tonumber(ARGV[1])
if ceiling > 0 and used >= ceiling then return -1 end
redis.call('HSET', KEYS[1], 'used', used + 1, 'label', ARGV[2], 'updated', ARGV[3])
return used + 1
"""


class RedisDestinations:
    """Destination counts in Redis hashes. Raises RedisUnavailableError when Redis fails."""

    def __init__(self, redis_url: str):
        import redis.asyncio as aioredis

        self.client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=10,
                                              decode_responses=True)
        self._reserve = self.client.register_script(_LUA_RESERVE)

    async def _call(self, coro):
        import redis

        try:
            return await coro
        except (redis.RedisError, OSError) as exc:
            raise RedisUnavailableError(f"destination ledger in Redis failed: {exc}") from None

    async def reserve(self, dest: str, label: str, ceiling: int) -> int | None:
        used = int(await self._call(self._reserve(keys=[DEST_PREFIX + dest], args=[ceiling, label, time.time()])))
        return None if used < 0 else used

    async def release(self, dest: str) -> None:
        await self._call(self.client.hincrby(DEST_PREFIX + dest, "used", -1))

    async def get(self, dest: str) -> Destination | None:
        fields = await self._call(self.client.hgetall(DEST_PREFIX + dest))
        if not fields:
            return None
        return Destination(dest, fields.get("label", "?"), int(fields.get("used", 0)), float(fields.get("updated", 0)))

    async def set_used(self, dest: str, label: str, used: int) -> None:
        await self._call(self.client.hset(DEST_PREFIX + dest, mapping={"used": used, "label": label,
                                                                       "updated": time.time()}))

    async def forget(self, dest: str) -> bool:
        return bool(await self._call(self.client.delete(DEST_PREFIX + dest)))

    async def list(self) -> list[Destination]:
        keys = [k async for k in self.client.scan_iter(match=DEST_PREFIX + "*")]
        found = [await self.get(k.removeprefix(DEST_PREFIX)) for k in sorted(keys)]
        return [d for d in found if d is not None]

    async def aclose(self) -> None:
        try:
            await self.client.aclose()
        except Exception:  # closing a dead connection must not hide the real error
            pass


class SqliteDestinations:
    """Destination counts in ``<data_dir>/destinations.sqlite3`` (one row per
    destination; updates are single atomic statements). Raises ConfigError
    naming the file when it cannot be opened."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # one reserve per row: no fsync each (WAL keeps it crash-safe)
            self.db.execute("CREATE TABLE IF NOT EXISTS destinations (id TEXT PRIMARY KEY, label TEXT NOT NULL,"
                            " used INTEGER NOT NULL, updated REAL NOT NULL)")
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"{self.path}: cannot open the destination ledger ({exc}); check data_dir") from None

    async def reserve(self, dest: str, label: str, ceiling: int) -> int | None:
        self.db.execute("INSERT OR IGNORE INTO destinations VALUES (?, ?, 0, ?)", (dest, label, time.time()))
        row = self.db.execute("UPDATE destinations SET used = used + 1, updated = ? WHERE id = ?"
                              " AND (? = 0 OR used < ?) RETURNING used",
                              (time.time(), dest, ceiling, ceiling)).fetchall()
        return row[0][0] if row else None  # fetchall: the statement ends, so does its write transaction

    async def release(self, dest: str) -> None:
        self.db.execute("UPDATE destinations SET used = MAX(0, used - 1) WHERE id = ?", (dest,))

    async def get(self, dest: str) -> Destination | None:
        row = self.db.execute("SELECT id, label, used, updated FROM destinations WHERE id = ?", (dest,)).fetchone()
        return Destination(*row) if row else None

    async def set_used(self, dest: str, label: str, used: int) -> None:
        self.db.execute("INSERT INTO destinations VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET"
                        " used = excluded.used, updated = excluded.updated", (dest, label, used, time.time()))

    async def forget(self, dest: str) -> bool:
        return self.db.execute("DELETE FROM destinations WHERE id = ?", (dest,)).rowcount == 1

    async def list(self) -> list[Destination]:
        return [Destination(*row) for row in self.db.execute(
            "SELECT id, label, used, updated FROM destinations ORDER BY label")]

    async def aclose(self) -> None:
        self.db.close()


def open_destinations(*, redis_url: str | None, data_dir: str | Path) -> Destinations:
    """``RedisDestinations`` when ``redis_url`` is set, else ``SqliteDestinations`` under ``data_dir``."""
    if redis_url:
        return RedisDestinations(redis_url)
    return SqliteDestinations(Path(data_dir) / "destinations.sqlite3")
