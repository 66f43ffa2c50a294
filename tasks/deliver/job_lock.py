"""One delivery of a job at a time.

A second ``deliver`` or ``run`` of a job while the first still sends finds the
same rows missing from the ledger (a row is recorded only after its 2xx) and
sends them again: measured before this lock, two ``deliver`` of one 300-row
file started 0.5 s apart sent 262 rows twice and both exited 0. The job's
owner (the ``deliver`` process, or the flow run that queues the chunks; never
its consumers, which share the job on purpose) holds this lock while it
delivers.

With Redis: a redis-py ``Lock`` on ``csv-merger:job-lock:<job id>`` whose
value names the holder, with a ``LOCK_TTL_S`` expiry renewed every third of it,
so a holder that dies (SIGKILL, machine lost) frees the job within
``LOCK_TTL_S``; a holder on this machine whose process is gone (e.g. it ended
while Redis was down and could not release, and Redis came back from its
append-only file) is taken over at once. Always, also with Redis (a shell
without ``REDIS_URL`` next to a service with it): an exclusive ``flock`` on
``<data_dir>/locks/<job id>.lock``, which the kernel drops when the process dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from csv_merger.errors import ConfigError, DeliveryError
from csv_merger.redis_check import ping_redis

LOCK_TTL_S = 20.0
"""Seconds a Redis job lock outlives its last renewal: how long a dead holder keeps a job busy."""

KEY_PREFIX = "csv-merger:job-lock:"


class JobBusyError(DeliveryError):
    """The job is being delivered by another process (exit 5, as a delivery that cannot go on)."""


def _holder() -> str:
    return f"{socket.gethostname()} pid {os.getpid()} since {time.strftime('%H:%M:%S')}"


def _busy(job_id: str, holder: str, expiry: str) -> JobBusyError:
    return JobBusyError(f"job {job_id} is already being delivered ({holder}): a second delivery would send its "
                        f"rows twice; wait for it or stop it, then run again to resume{expiry}")


@contextlib.contextmanager
def hold_job(job_id: str, *, redis_url: str | None, data_dir: str | Path) -> Iterator[None]:
    """Hold the job's lock for the ``with`` block. Raises JobBusyError naming the holder when
    another process holds it, RedisUnavailableError / ConfigError as ``ping_redis``, ConfigError
    when the lock file cannot be created."""
    # the file lock also when Redis is used: one run may have Redis and another not
    with _file_lock(job_id, Path(data_dir) / "locks"), (
            _redis_lock(job_id, redis_url) if redis_url else contextlib.nullcontext()):
        yield


@contextlib.contextmanager
def _file_lock(job_id: str, folder: Path) -> Iterator[None]:
    path = folder / f"{job_id}.lock"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        f = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the block
    except OSError as exc:
        raise ConfigError(f"cannot create the job lock {path}: {exc.strerror or exc}") from None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            raise _busy(job_id, f.read().strip() or "another process", "") from None
        f.seek(0)
        f.truncate()
        f.write(_holder())
        f.flush()
        yield  # the kernel releases the flock on close, and when the process dies


@contextlib.contextmanager
def _redis_lock(job_id: str, redis_url: str) -> Iterator[None]:
    import redis

    ping_redis(redis_url)  # a clear RedisUnavailableError before anything else
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=5)
    lock = client.lock(KEY_PREFIX + job_id, timeout=LOCK_TTL_S, blocking=False, thread_local=False)
    try:
        if not lock.acquire(token=_holder()) and not (_drop_if_dead_here(client, KEY_PREFIX + job_id)
                                                      and lock.acquire(token=_holder())):
            holder = client.get(KEY_PREFIX + job_id)
            raise _busy(job_id, holder.decode() if holder else "another process",
                        f" (if that process is gone, its lock expires within {LOCK_TTL_S:g} s)")
        stop = threading.Event()
        renew = threading.Thread(target=_renew, args=(lock, stop), name=f"job-lock-{job_id}", daemon=True)
        renew.start()
        try:
            yield
        finally:
            stop.set()
            renew.join()
            with contextlib.suppress(redis.RedisError, OSError):  # gone with Redis: it expires by itself
                lock.release()
    finally:
        client.close()


_HOLDER = re.compile(r"(?P<host>\S+) pid (?P<pid>\d+) since .*")
_DROP_IF = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def _drop_if_dead_here(client, key: str) -> bool:
    """Delete the lock when its holder ran on this machine and its process is gone; True if deleted
    (only that holder's value is deleted: a new holder in between keeps its lock)."""
    value = client.get(key)
    holder = _HOLDER.fullmatch(value.decode()) if value else None
    if holder is None or holder["host"] != socket.gethostname():
        return False
    try:
        os.kill(int(holder["pid"]), 0)
        return False
    except ProcessLookupError:
        return bool(client.eval(_DROP_IF, 1, key, value))
    except PermissionError:  # alive, another user's
        return False


def _renew(lock, stop: threading.Event) -> None:
    """Push the lock's expiry back to ``LOCK_TTL_S`` every third of it until ``stop``; a Redis that
    stopped answering is the delivery's error to report, not this thread's."""
    import redis

    while not stop.wait(LOCK_TTL_S / 3):
        with contextlib.suppress(redis.RedisError, OSError):
            lock.reacquire()
