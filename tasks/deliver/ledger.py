"""Delivery ledger: which rows of a job the target acknowledged (2xx).

Keyed by job id, so running the same job again skips delivered rows.
Two stores with one interface:

- ``RedisLedger`` (when Redis is configured): one Redis set per job,
  ``csv-merger:ledger:<job_id>``, of row numbers; every write refreshes a
  TTL (``settings.chunk_ttl_s``, 48 h by default) so ledgers never pile up.
  Shared by every process and machine using that Redis. ``guard`` refuses
  to resume a job whose Redis lost its data (tasks.deliver.redis_loss).
- ``SqliteLedger`` (otherwise): ``<data_dir>/ledger.sqlite3``, table
  ``delivered(job_id, row_number)``, WAL mode so several local processes
  can write at once.

Only rows the target acknowledged are ever written; writes are batched by
the engine (one SADD / one executemany transaction per flush).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from csv_merger.errors import ConfigError, RedisUnavailableError
from csv_merger.redis_check import masked
from tasks.deliver.redis_loss import check_ledger_kept, persistence_warning

LEDGER_PREFIX = "csv-merger:ledger:"


class Ledger(Protocol):
    """A job's set of delivered row numbers (1-based data rows)."""

    async def delivered(self, among: Iterable[int] | None = None) -> set[int]:
        """Row numbers already recorded as delivered; with ``among``, only those of these rows
        (a chunk asks about its own rows: the cost does not grow with the job)."""

    async def record(self, row_numbers: Iterable[int]) -> None:
        """Record rows as delivered (idempotent). Raises RedisUnavailableError
        (Redis) or sqlite3.Error (SQLite) when the write did not happen."""

    async def any_delivered(self) -> bool:
        """Whether the job has a row recorded as delivered (by this run or an earlier one, by any consumer)."""

    async def guard(self, *, force_resend: bool) -> list[str]:
        """Before the first read: refuse to resume a job whose store lost its data (see
        tasks.deliver.redis_loss); returns warnings for the summary. Raises LedgerLostError."""

    async def aclose(self) -> None: ...


class RedisLedger:
    """Ledger in a Redis set. Raises RedisUnavailableError when Redis fails."""

    def __init__(self, job_id: str, redis_url: str, ttl_s: int, data_dir: str | Path | None = None):
        import redis.asyncio as aioredis

        from csv_merger.settings import get_settings

        self.key, self.ttl_s, self.url = LEDGER_PREFIX + job_id, ttl_s, redis_url
        self.job_id, self.data_dir = job_id, data_dir or get_settings().data_dir  # where the job's local record lives
        self.client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=10)

    def _unavailable(self, exc: Exception) -> RedisUnavailableError:
        return RedisUnavailableError(f"Redis ledger at {masked(self.url)} failed: {exc}")

    async def guard(self, *, force_resend: bool) -> list[str]:
        where = masked(self.url)
        warnings = [persistence_warning(self.url, where),
                    await check_ledger_kept(self.client, self.key, job_id=self.job_id, where=where,
                                            data_dir=self.data_dir, ttl_s=self.ttl_s, force_resend=force_resend)]
        return [w for w in warnings if w]

    async def delivered(self, among: Iterable[int] | None = None) -> set[int]:
        import redis

        try:
            if among is None:
                return {int(m) for m in await self.client.smembers(self.key)}
            rows = list(among)
            if not rows:
                return set()
            return {n for n, held in zip(rows, await self.client.smismember(self.key, rows)) if held}
        except (redis.RedisError, OSError) as exc:
            raise self._unavailable(exc) from None

    async def any_delivered(self) -> bool:
        import redis

        try:
            return bool(await self.client.exists(self.key))  # Redis drops an empty set
        except (redis.RedisError, OSError) as exc:
            raise self._unavailable(exc) from None

    async def record(self, row_numbers: Iterable[int]) -> None:
        import redis

        rows = list(row_numbers)
        if not rows:
            return
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.sadd(self.key, *rows)
                pipe.expire(self.key, self.ttl_s)
                pipe.expire(self.key + ":record", self.ttl_s)  # the job's record lives as long as its ledger
                await pipe.execute()
        except (redis.RedisError, OSError) as exc:
            raise self._unavailable(exc) from None

    async def aclose(self) -> None:
        try:
            await self.client.aclose()
        except Exception:  # closing a dead connection must not hide the real error
            pass


class SqliteLedger:
    """Ledger in a local SQLite file (``<data_dir>/ledger.sqlite3``).
    Raises ConfigError naming the file when it cannot be created or opened."""

    def __init__(self, job_id: str, path: str | Path):
        self.job_id, self.path = job_id, Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a process crash
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS delivered (job_id TEXT NOT NULL, row_number INTEGER NOT NULL,"
                " PRIMARY KEY (job_id, row_number)) WITHOUT ROWID"
            )
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"{self.path}: cannot open the delivery ledger ({exc}); check data_dir") from None

    async def guard(self, *, force_resend: bool) -> list[str]:
        return []  # a local file is lost only with the machine

    async def delivered(self, among: Iterable[int] | None = None) -> set[int]:
        if among is None:
            cur = self.db.execute("SELECT row_number FROM delivered WHERE job_id = ?", (self.job_id,))
            return {r for (r,) in cur}
        rows = set(among)
        if not rows:
            return set()
        cur = self.db.execute("SELECT row_number FROM delivered WHERE job_id = ? AND row_number BETWEEN ? AND ?",
                              (self.job_id, min(rows), max(rows)))
        return {r for (r,) in cur if r in rows}

    async def any_delivered(self) -> bool:
        return self.db.execute("SELECT 1 FROM delivered WHERE job_id = ? LIMIT 1", (self.job_id,)).fetchone() is not None

    async def record(self, row_numbers: Iterable[int]) -> None:
        rows = [(self.job_id, n) for n in row_numbers]
        if not rows:
            return
        # WAL + synchronous=NORMAL: a commit is ~0.1 ms without fsync, cheaper
        # in the event loop than a hop to a thread.
        self._write(rows)

    def _write(self, rows: list[tuple[str, int]]) -> None:
        self.db.execute("BEGIN IMMEDIATE")  # one transaction per batch
        try:
            self.db.executemany("INSERT OR IGNORE INTO delivered VALUES (?, ?)", rows)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    async def aclose(self) -> None:
        self.db.close()


def open_ledger(job_id: str, *, redis_url: str | None, data_dir: str | Path, ttl_s: int = 48 * 3600) -> Ledger:
    """``RedisLedger`` when ``redis_url`` is set, else ``SqliteLedger`` under
    ``data_dir``."""
    if redis_url:
        return RedisLedger(job_id, redis_url, ttl_s, data_dir)
    return SqliteLedger(job_id, Path(data_dir) / "ledger.sqlite3")
