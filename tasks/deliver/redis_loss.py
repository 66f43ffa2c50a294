"""A Redis that went away, or came back without its data: the policy for both.

The Redis ledger is what makes a re-run with the same job id a resume. Two
ways to lose it, each handled here:

- **Redis dies mid-delivery** (``RedisGone``): the delivery stops at once
  (no chunk retry: a retry against a dead Redis only delays the news) and
  says how many rows were delivered, how many of those the ledger does not
  hold, and the job id to resume with.
- **Redis comes back empty** (restarted without persistence, flushed, or
  the job's keys expired): the ledger would claim nothing was delivered and
  a resume would send every row again. So each job leaves a record twice:
  a key beside its ledger in Redis (``csv-merger:ledger:<job_id>:record``,
  same TTL, refreshed with every ledger write) and a row in the local SQLite
  file (``<data_dir>/ledger.sqlite3``, table ``redis_jobs``). A job this
  machine started in a Redis that has no record of it is refused
  (``LedgerLostError``) unless ``force_resend`` is set.
- **A Redis without persistence** (neither AOF nor RDB snapshots, read with
  ``CONFIG GET``; skipped when CONFIG is not allowed) gets a warning at start,
  once per process: its restart is exactly the case above.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from csv_merger.errors import DeliveryError, RedisUnavailableError
from csv_merger.wording import plural

log = logging.getLogger("csv_merger.delivery")

_warned: set[str] = set()  # Redis URLs already warned about in this process


class RedisGone(RedisUnavailableError):
    """Redis stopped answering mid-delivery. ``delivered``: rows the target acknowledged;
    ``unrecorded``: how many of them the ledger does not hold (a resume sends those again,
    with the same Idempotency-Key); ``job_id``: the job to resume."""

    def __init__(self, message: str, *, cause: str, delivered: int, unrecorded: int, job_id: str):
        self.cause, self.delivered, self.unrecorded, self.job_id = cause, delivered, unrecorded, job_id
        super().__init__(message)

    @classmethod
    def stopped(cls, cause: BaseException | str, *, delivered: int, unrecorded: int, job_id: str) -> RedisGone:
        """The error for a delivery that stopped on ``cause``, its counts in the message."""
        were = "was" if delivered == 1 else "were"
        return cls(f"{cause}; delivery stopped after {plural(delivered, 'row')} {were} delivered ({unrecorded} of"
                   f" them not recorded in the ledger: a resume with --job-id {job_id} sends those again with the same"
                   " Idempotency-Key)", cause=str(cause), delivered=delivered, unrecorded=unrecorded, job_id=job_id)

    def with_hint(self, hint: str) -> RedisGone:
        """The same error with ``; hint`` at the end of its one line."""
        return RedisGone(f"{self}; {hint}", cause=self.cause, delivered=self.delivered, unrecorded=self.unrecorded,
                         job_id=self.job_id)


def redis_gone_for_job(errors: list[RedisUnavailableError], finished: list, job_id: str) -> RedisGone:
    """One ``RedisGone`` for a job whose chunks stopped on ``errors`` (RedisGone carry their
    counts; a chunk that failed before sending counts 0) while ``finished`` (DeliverySummary
    list) ended; the first error's text says which Redis."""
    delivered = sum(p.delivered for p in finished) + sum(getattr(e, "delivered", 0) for e in errors)
    unrecorded = sum(getattr(e, "unrecorded", 0) for e in errors)
    return RedisGone.stopped(getattr(errors[0], "cause", errors[0]), delivered=delivered, unrecorded=unrecorded,
                             job_id=job_id)


class LedgerLostError(DeliveryError):
    """The job's Redis ledger is gone while this machine knows it started there: resuming would
    send every row again. Exit code 5; ``--force-resend`` sends them anyway."""


def _local(data_dir: str | Path) -> sqlite3.Connection:
    path = Path(data_dir) / "ledger.sqlite3"
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute("CREATE TABLE IF NOT EXISTS redis_jobs (job_id TEXT NOT NULL, redis TEXT NOT NULL,"
               " started REAL NOT NULL, PRIMARY KEY (job_id, redis)) WITHOUT ROWID")
    return db


async def check_ledger_kept(client, ledger_key: str, *, job_id: str, where: str, data_dir: str | Path,
                            ttl_s: int, force_resend: bool) -> str | None:
    """Refuse to resume a job whose Redis ledger was lost; leave the job's records otherwise.

    ``client``: the ledger's redis.asyncio client; ``ledger_key``: its set's key; ``where``:
    the Redis URL without password (it names the local record). Returns a warning when
    ``force_resend`` overrode a lost ledger. Raises LedgerLostError (lost, not forced),
    RedisUnavailableError (Redis does not answer).
    """
    import redis

    record_key = ledger_key + ":record"
    db = _local(data_dir)
    try:  # local first: a local row is written only after the Redis record exists
        row = db.execute("SELECT started FROM redis_jobs WHERE job_id = ? AND redis = ?", (job_id, where)).fetchone()
        try:
            kept = await client.exists(record_key)
            if not kept and (row is None or force_resend):  # a refused resume leaves the loss visible
                await client.set(record_key, repr(time.time()), ex=ttl_s, nx=True)
        except (redis.RedisError, OSError) as exc:
            raise RedisUnavailableError(f"Redis ledger at {where} failed: {exc}") from None
        db.execute("INSERT OR IGNORE INTO redis_jobs VALUES (?, ?, ?)", (job_id, where, time.time()))
    finally:
        db.close()
    if kept or row is None:
        return None
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(row[0]))
    why = (f"Redis at {where} has no record of job {job_id}, which this machine started there at {started}:"
           " Redis lost its data (restarted without persistence, flushed, or the job's keys expired after"
           f" {ttl_s // 3600} h), so its ledger cannot tell which rows were delivered")
    if not force_resend:
        raise LedgerLostError(why + "; run again with --force-resend to send every row again (a target that"
                              " honours Idempotency-Key stores each once)")
    log.warning("%s; --force-resend: sending every row again", why)
    return why + "; --force-resend: every row was sent again"


def persistence_warning(redis_url: str, where: str) -> str | None:
    """A warning when the Redis at ``redis_url`` keeps nothing on disk (no AOF, no RDB
    ``save`` points); None when it persists, when CONFIG is not allowed, or when this process
    already warned about it. Logged as a warning too."""
    import redis

    if where in _warned:
        return None
    _warned.add(where)
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=3, decode_responses=True)
    try:
        config = client.config_get("appendonly") | client.config_get("save")
    except (redis.RedisError, OSError):  # CONFIG renamed or refused (managed Redis): cannot tell
        return None
    finally:
        client.close()
    if config.get("appendonly") == "yes" or config.get("save", "").strip():
        return None
    message = (f"Redis at {where} keeps no data on disk (no AOF, no RDB snapshots): if it restarts, the delivery"
               " ledger is lost and a resume is refused (README: Redis persistence)")
    log.warning(message)
    return message
