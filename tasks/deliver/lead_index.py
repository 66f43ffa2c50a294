"""Leads already at a destination: an index of keyed hashes of their
identities (the merge's strong keys: e-mail addresses, LinkedIn keys,
company domains), so a lead in last week's file is not sent again this week.

The index holds HMAC-SHA256 digests, never the addresses (a lead list is
personal data). The key is ``CSV_MERGER_INDEX_KEY`` when set; otherwise one
is made once and kept beside the index (Redis ``csv-merger:index-key``, or
``<data_dir>/index.key``, mode 0600), so every process that shares the
index shares the key.

Stores: a Redis set ``csv-merger:leads:<destination id>`` (no TTL: the
table keeps its rows) when Redis is configured, else the table
``leads(destination, digest)`` of ``<data_dir>/leads.sqlite3``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from csv_merger.errors import ConfigError, RedisUnavailableError

LEADS_PREFIX = "csv-merger:leads:"
KEY_NAME = "csv-merger:index-key"


def digest(key: bytes, identity: str) -> str:
    """Hex HMAC-SHA256 of one identity under the index key (32 hex chars)."""
    return hmac.new(key, identity.encode(), hashlib.sha256).hexdigest()[:32]


class RedisLeadIndex:
    """One destination's digests in a Redis set. Raises RedisUnavailableError when Redis fails."""

    def __init__(self, dest: str, redis_url: str, key: str | None):
        import redis.asyncio as aioredis

        self.set_key, self._key = LEADS_PREFIX + dest, key.encode() if key else None
        self.client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=10)

    async def _call(self, coro):
        import redis

        try:
            return await coro
        except (redis.RedisError, OSError) as exc:
            raise RedisUnavailableError(f"lead index in Redis failed: {exc}") from None

    async def key(self) -> bytes:
        if self._key is None:
            await self._call(self.client.set(KEY_NAME, secrets.token_hex(32), nx=True))
            self._key = await self._call(self.client.get(KEY_NAME))
        return self._key

    async def known(self, digests: list[str]) -> set[str]:
        if not digests:
            return set()
        flags = await self._call(self.client.smismember(self.set_key, digests))
        return {d for d, flag in zip(digests, flags) if flag}

    async def add(self, digests: Iterable[str]) -> None:
        if batch := list(digests):
            await self._call(self.client.sadd(self.set_key, *batch))

    async def forget(self) -> int:
        count = await self._call(self.client.scard(self.set_key))
        await self._call(self.client.delete(self.set_key))
        return count

    async def aclose(self) -> None:
        try:
            await self.client.aclose()
        except Exception:  # closing a dead connection must not hide the real error
            pass


class SqliteLeadIndex:
    """One destination's digests in ``<data_dir>/leads.sqlite3``. Raises ConfigError naming the file."""

    def __init__(self, dest: str, data_dir: str | Path, key: str | None):
        self.dest, self.dir, self._key = dest, Path(data_dir), key.encode() if key else None
        path = self.dir / "leads.sqlite3"
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS leads (destination TEXT NOT NULL, digest TEXT NOT NULL,"
                            " PRIMARY KEY (destination, digest)) WITHOUT ROWID")
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"{path}: cannot open the lead index ({exc}); check data_dir") from None

    async def key(self) -> bytes:
        if self._key is None:
            path = self.dir / "index.key"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as out:
                    out.write(secrets.token_hex(32))
            except FileExistsError:
                pass
            self._key = path.read_text().strip().encode()
        return self._key

    async def known(self, digests: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(digests), 500):  # SQLite's host parameter limit
            part = digests[start:start + 500]
            marks = ",".join("?" * len(part))
            found.update(d for (d,) in self.db.execute(
                f"SELECT digest FROM leads WHERE destination = ? AND digest IN ({marks})", (self.dest, *part)))
        return found

    async def add(self, digests: Iterable[str]) -> None:
        with self.db:  # one transaction for the batch, not one per row
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT OR IGNORE INTO leads VALUES (?, ?)", [(self.dest, d) for d in digests])

    async def forget(self) -> int:
        return self.db.execute("DELETE FROM leads WHERE destination = ?", (self.dest,)).rowcount

    async def aclose(self) -> None:
        self.db.close()


def open_lead_index(dest: str, *, redis_url: str | None, data_dir: str | Path, key: str | None = None):
    """``RedisLeadIndex`` when ``redis_url`` is set, else ``SqliteLeadIndex``; ``key``: the HMAC key
    (``CSV_MERGER_INDEX_KEY``), None to use the stored one."""
    if redis_url:
        return RedisLeadIndex(dest, redis_url, key)
    return SqliteLeadIndex(dest, data_dir, key)


class LeadIndexes:
    """The lead indexes of a job's destinations (``dests``: destination ids in rollover
    order), used as one: a lead is known when ANY of them holds it. One HMAC key for all.
    Errors as ``open_lead_index`` and its stores."""

    def __init__(self, dests: list[str], *, redis_url: str | None, data_dir: str | Path, key: str | None = None):
        self.dests = dests
        self.indexes = {d: open_lead_index(d, redis_url=redis_url, data_dir=data_dir, key=key) for d in dests}

    async def key(self) -> bytes:
        return await self.indexes[self.dests[0]].key()

    async def known(self, digests: list[str]) -> set[str]:
        """The digests any of the destinations holds."""
        found: set[str] = set()
        for index in self.indexes.values():
            found |= await index.known(digests)
        return found

    async def add(self, placed: Iterable[tuple[str | None, str]]) -> None:
        """Add (destination id, digest) pairs; a None destination means the first."""
        by_dest: dict[str, list[str]] = {}
        for dest, d in placed:
            by_dest.setdefault(dest or self.dests[0], []).append(d)
        for dest, digests in by_dest.items():
            await self.indexes[dest].add(digests)

    async def forget(self) -> int:
        """Remove every index of the group; return how many identities they held."""
        return sum([await index.forget() for index in self.indexes.values()])

    async def aclose(self) -> None:
        for index in self.indexes.values():
            await index.aclose()
