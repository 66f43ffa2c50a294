"""Chunk storage: JSON in Redis with a TTL, or local files swept after the TTL."""

from __future__ import annotations

import os
import time

import pytest
import redis

from csv_merger.errors import ConfigError, InputError, RedisUnavailableError
from tasks.deliver.chunks import FileChunkStore, RedisChunkStore, make_chunk_store, write_chunks


def _rows(n: int) -> list[tuple[int, dict[str, str]]]:
    return [(i, {"Work Email": f"p{i}@acme.io", "Company Postal Code": "02134", "Note": "May 2021, \"quoted\"\nline"})
            for i in range(1, n + 1)]


@pytest.fixture(params=["redis", "files"])
def store(request, tmp_path):
    if request.param == "redis":
        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
        return make_chunk_store(client, data_dir=tmp_path, ttl_s=120)
    return make_chunk_store(None, data_dir=tmp_path, ttl_s=120)


def test_chunks_round_trip_with_global_row_numbers(store):
    rows = _rows(1203)
    refs = write_chunks(iter(rows), "job-a", 500, store)
    assert [(r.index, r.first_row, r.last_row, r.rows) for r in refs] == [
        (0, 1, 500, 500), (1, 501, 1000, 500), (2, 1001, 1203, 203)]
    back = [row for ref in refs for row in store.get(ref)]
    assert back == rows  # every cell text, exactly as written


def test_no_rows_no_chunks(store):
    assert write_chunks([], "job-empty", 10, store) == []


def test_chunk_size_must_be_positive(store):
    with pytest.raises(ConfigError, match="at least 1"):
        write_chunks(_rows(3), "job", 0, store)


def test_redis_chunks_expire(redis_url):
    client = redis.Redis.from_url(redis_url)
    store = RedisChunkStore(client, ttl_s=60)
    (ref,) = write_chunks(_rows(3), "job-ttl", 10, store)
    key = ref.location.removeprefix("redis:")
    assert 0 < client.ttl(key) <= 60
    assert client.get(key).decode().startswith("[1, {")  # JSON, not pickle
    client.delete(key)
    with pytest.raises(InputError, match="chunk 0 .*job-ttl is gone"):
        store.get(ref)


def test_redis_down_is_a_clear_error(free_port):
    store = RedisChunkStore(redis.Redis.from_url(f"redis://127.0.0.1:{free_port}/0", socket_connect_timeout=1), 60)
    with pytest.raises(RedisUnavailableError, match="chunk store does not answer"):
        write_chunks(_rows(1), "job", 10, store)


def test_file_store_sweeps_jobs_older_than_ttl(tmp_path):
    store = FileChunkStore(tmp_path / "chunks", ttl_s=3600)
    (old,) = write_chunks(_rows(2), "job-old", 10, store)
    stale = time.time() - 7200
    os.utime(tmp_path / "chunks" / "job-old", (stale, stale))
    write_chunks(_rows(2), "job-new", 10, store)
    assert not (tmp_path / "chunks" / "job-old").exists()
    assert (tmp_path / "chunks" / "job-new").is_dir()
    with pytest.raises(InputError, match="another machine"):
        store.get(old)


def test_ttl_must_be_positive(tmp_path):
    with pytest.raises(ConfigError, match="TTL"):
        make_chunk_store(None, data_dir=tmp_path, ttl_s=0)
