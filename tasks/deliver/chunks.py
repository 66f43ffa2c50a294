"""Split a merged CSV into delivery chunks stored where any worker can read them.

A chunk is a list of ``(row_number, record)`` pairs: ``row_number`` is the
1-based data row of the merged CSV, so the delivery ledger and idempotency
keys stay the same however the job is chunked. Chunks are stored as JSON
(never pickle) with a time-to-live, so lead data does not linger:

- ``RedisChunkStore``: one key per chunk, ``SET ... EX ttl``; shared by
  every machine that reaches the Redis.
- ``FileChunkStore``: one JSON-lines file per chunk under a local folder;
  files of jobs older than the TTL are removed when a new job is stored.
  Only workers on the same machine (or a shared volume) can read them.

A ``ChunkRef`` is what travels between tasks and flow runs (a small JSON
model), never the rows themselves.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel

from csv_merger.errors import ConfigError, InputError, RedisUnavailableError

Row = tuple[int, dict[str, str]]


class ChunkRef(BaseModel):
    """Where one chunk lives. ``first_row``/``last_row`` are 1-based merged-CSV rows."""

    job_id: str
    index: int
    first_row: int
    last_row: int
    rows: int
    location: str  # "redis:<key>" or a file path

    @property
    def label(self) -> str:
        """Short human name for logs and task-run names, e.g. ``chunk 3 (rows 1001-1500)``."""
        return f"chunk {self.index} (rows {self.first_row}-{self.last_row})"


class ChunkStore(Protocol):
    """Storage for chunks: ``put`` writes one, ``get`` reads it back."""

    def put(self, job_id: str, index: int, rows: list[Row]) -> ChunkRef: ...

    def get(self, ref: ChunkRef) -> list[Row]: ...


def _encode(rows: list[Row]) -> str:
    return "\n".join(json.dumps([n, rec], ensure_ascii=False) for n, rec in rows)


def _decode(text: str) -> list[Row]:
    return [(int(n), rec) for n, rec in (json.loads(line) for line in text.splitlines() if line)]


def _ref(job_id: str, index: int, rows: list[Row], location: str) -> ChunkRef:
    return ChunkRef(job_id=job_id, index=index, first_row=rows[0][0], last_row=rows[-1][0],
                    rows=len(rows), location=location)


class RedisChunkStore:
    """Chunks in Redis under ``csv-merger:chunk:<job_id>:<index>``, expiring after ``ttl_s`` seconds.

    ``client`` is a ``redis.Redis`` (e.g. from a prefect-redis ``RedisDatabase``
    block's ``get_client()`` or ``redis.Redis.from_url``). Raises
    ``RedisUnavailableError`` when Redis does not answer.
    """

    def __init__(self, client, ttl_s: int):
        self.client, self.ttl_s = client, ttl_s

    def _call(self, method: str, *args, **kwargs):
        import redis

        try:
            return getattr(self.client, method)(*args, **kwargs)
        except (redis.RedisError, OSError) as exc:
            raise RedisUnavailableError(f"Redis chunk store does not answer: {exc}") from None

    def put(self, job_id: str, index: int, rows: list[Row]) -> ChunkRef:
        key = f"csv-merger:chunk:{job_id}:{index}"
        self._call("set", key, _encode(rows).encode("utf-8"), ex=self.ttl_s)
        return _ref(job_id, index, rows, f"redis:{key}")

    def get(self, ref: ChunkRef) -> list[Row]:
        data = self._call("get", ref.location.removeprefix("redis:"))
        if data is None:
            raise InputError(ref.location, f"{ref.label} of job {ref.job_id} is gone "
                             f"(expired after {self.ttl_s} s or never stored); run the job again")
        return _decode(data.decode("utf-8"))


class FileChunkStore:
    """Chunks as JSON-lines files under ``root/<job_id>/<index>.jsonl``.

    Job folders not modified for ``ttl_s`` seconds are deleted on ``put``.
    """

    def __init__(self, root: str | Path, ttl_s: int):
        self.root, self.ttl_s = Path(root), ttl_s

    def _sweep(self) -> None:
        cutoff = time.time() - self.ttl_s
        for job_dir in self.root.iterdir():
            if job_dir.is_dir() and job_dir.stat().st_mtime < cutoff:
                shutil.rmtree(job_dir, ignore_errors=True)

    def put(self, job_id: str, index: int, rows: list[Row]) -> ChunkRef:
        job_dir = self.root / job_id
        if index == 0:
            self.root.mkdir(parents=True, exist_ok=True)
            self._sweep()
        job_dir.mkdir(parents=True, exist_ok=True)
        path = job_dir / f"{index:05d}.jsonl"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(_encode(rows), encoding="utf-8")
        tmp.replace(path)  # a reader never sees half a chunk
        return _ref(job_id, index, rows, str(path))

    def get(self, ref: ChunkRef) -> list[Row]:
        try:
            return _decode(Path(ref.location).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(ref.location, f"{ref.label} of job {ref.job_id} is gone (older than "
                             f"{self.ttl_s} s, or stored on another machine: use Redis to share "
                             "chunks between machines)") from None


def make_chunk_store(redis_client=None, *, data_dir: str | Path, ttl_s: int) -> ChunkStore:
    """Redis store when a client is given, else files under ``data_dir/chunks``."""
    if ttl_s <= 0:
        raise ConfigError(f"chunk TTL must be a positive number of seconds, got {ttl_s}")
    if redis_client is not None:
        return RedisChunkStore(redis_client, ttl_s)
    return FileChunkStore(Path(data_dir) / "chunks", ttl_s)


def _batches(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch


def write_chunks(rows: Iterable[Row], job_id: str, chunk_size: int, store: ChunkStore) -> list[ChunkRef]:
    """Store ``rows`` in chunks of at most ``chunk_size`` rows; return their refs in row order.

    Streams: at most one chunk is in memory. No rows gives no chunks.
    Raises ``ConfigError`` when ``chunk_size`` < 1.
    """
    if chunk_size < 1:
        raise ConfigError(f"chunk size must be at least 1 row, got {chunk_size}")
    return [store.put(job_id, i, batch) for i, batch in enumerate(_batches(rows, chunk_size))]
