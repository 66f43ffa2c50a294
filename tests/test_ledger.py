"""Delivery ledger on real SQLite files and a real redis-server."""

import asyncio

import pytest
import redis

from csv_merger.errors import RedisUnavailableError
from tasks.deliver.ledger import LEDGER_PREFIX, RedisLedger, SqliteLedger, open_ledger


@pytest.fixture(params=["sqlite", "redis"])
def make_ledger(request, tmp_path):
    def make(job_id: str):
        if request.param == "redis":
            url = request.getfixturevalue("redis_url")
            return open_ledger(job_id, redis_url=url, data_dir=tmp_path, ttl_s=600)
        return open_ledger(job_id, redis_url=None, data_dir=tmp_path)
    return make


async def test_records_survive_a_new_ledger_and_are_per_job(make_ledger):
    first = make_ledger("job-a")
    assert await first.delivered() == set()
    await first.record([1, 2, 3])
    await first.record([3, 4])  # idempotent
    await first.record([])
    await first.aclose()
    again, other = make_ledger("job-a"), make_ledger("job-b")
    assert await again.delivered() == {1, 2, 3, 4}
    assert await other.delivered() == set()
    await again.aclose()
    await other.aclose()


async def test_sqlite_ledger_takes_concurrent_writers(tmp_path):
    ledgers = [SqliteLedger("job", tmp_path / "ledger.sqlite3") for _ in range(4)]
    await asyncio.gather(*(lg.record(range(i, 2000, 4)) for i, lg in enumerate(ledgers)))
    assert await ledgers[0].delivered() == set(range(2000))
    for lg in ledgers:
        await lg.aclose()


async def test_redis_ledger_has_a_ttl(redis_url):
    ledger = RedisLedger("job-ttl", redis_url, ttl_s=123)
    await ledger.record([5])
    ttl = redis.Redis.from_url(redis_url).ttl(LEDGER_PREFIX + "job-ttl")
    assert 0 < ttl <= 123
    await ledger.aclose()


async def test_unreachable_redis_is_a_clear_error(free_port):
    ledger = RedisLedger("job", f"redis://:pw@127.0.0.1:{free_port}/0", ttl_s=60)
    with pytest.raises(RedisUnavailableError, match=r"Redis ledger at redis://:\*\*\*@127.0.0.1") as info:
        await ledger.record([1])
    assert "pw" not in str(info.value)
    with pytest.raises(RedisUnavailableError):
        await ledger.delivered()
    await ledger.aclose()


def test_unusable_sqlite_location_is_a_config_error(tmp_path):
    from csv_merger.errors import ConfigError

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data folder should be")
    with pytest.raises(ConfigError, match="not-a-dir.*cannot open the delivery ledger"):
        open_ledger("job", redis_url=None, data_dir=blocker)
