"""The GCRA limiter: pacing, burst, shared pause, the learner wired in, memory, Redis failures.

Multi-process tests run this file as a script (see ``child`` at the bottom):
each child process makes its own limiter on the shared Redis, waits for "go"
on stdin so that all start together, and prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from csv_merger.errors import ConfigError, RedisUnavailableError
from tasks.deliver.ratelimit import KEY_PREFIX, LimitPolicy, default_limit_key, make_limiter

pytestmark = pytest.mark.timeout(60)

HERE = Path(__file__).resolve()


@pytest.fixture(params=["local", "redis"])
def limiter_factory(request, data_dir):
    """Make limiters of one kind (in-process or shared in Redis); unique key per test."""
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    key = f"{request.node.name}-{time.monotonic_ns()}"

    def factory(rate, burst):
        return make_limiter(key, rate, burst, redis_url)  # tests close them in their loop

    def forget_pacing():
        """As after the key's idle TTL: its pacing state and learner are gone, its memory is not."""
        from tasks.deliver.ratelimit.gcra import _LOCAL_STATES

        _LOCAL_STATES.pop(key, None)
        if redis_url:
            import redis

            redis.Redis.from_url(redis_url).delete(KEY_PREFIX + key)

    factory.forget_pacing = forget_pacing
    return factory


def check_pacing(stamps: list[float], rate: float, burst: int) -> None:
    """Stamps (seconds) of granted acquisitions honour GCRA at ``rate`` with
    the policy's effective burst: burst at once, then the rate within 3 %."""
    stamps = sorted(stamps)
    eff = LimitPolicy(rate=rate, burst=burst).effective_burst
    # Paced without a burst, the first eff grants would span (eff - 1) / rate at least;
    # any faster is a burst, whatever the machine's scheduling delays.
    assert stamps[eff - 1] - stamps[0] < (eff - 1) / rate, "the burst was not granted at once"
    assert stamps[eff] - stamps[0] > 0.5 / rate, "more than the effective burst at once"
    steady = (len(stamps) - eff) / (stamps[-1] - stamps[eff - 1])
    assert abs(steady - rate) / rate < 0.03, f"paced at {steady:.2f}/s instead of {rate}/s"
    for i, start in enumerate(stamps):  # no 1 s window above burst + rate (one late wake-up of slack)
        inside = sum(1 for t in stamps[i:] if t < start + 1.0)
        assert inside <= eff + rate + 1, f"{inside} grants within 1 s from {start - stamps[0]:.2f}s"


async def grant_times(limiter, n: int) -> list[float]:
    stamps: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        stamps.append(time.monotonic())

    await asyncio.gather(*(one() for _ in range(n)))
    await limiter.aclose()
    return stamps


def test_policy_keeps_a_safety_margin_of_the_burst():
    assert [LimitPolicy(10, b).effective_burst for b in (1, 2, 5, 10, 20, 100)] == [1, 1, 3, 6, 13, 66]
    with pytest.raises(ConfigError, match="rate"):
        make_limiter("k", 0, 20)
    with pytest.raises(ConfigError, match="burst"):
        make_limiter("k", 10, 0)


def test_gcra_arithmetic_with_explicit_times():
    """The in-process core, clock given: slots, pause, the learner's rate, idle expiry."""
    from tasks.deliver.ratelimit.adaptive import Learning
    from tasks.deliver.ratelimit.gcra import GcraState

    policy, state = LimitPolicy(rate=10, burst=4), GcraState()  # effective burst 2
    waits = [state.reserve(policy, 100.0)[0] for _ in range(4)]
    assert waits == pytest.approx([0, 0, 0.1, 0.2])
    state.learning = Learning(rate=5.0)  # what the learner decided
    assert state.throttle(policy, 100.05, 1.0) is True  # first 429 of its episode: pause 1 s
    assert state.throttle(policy, 100.06, 1.0) is False  # in flight, same episode
    # after the pause: paced at 5/s with no burst
    assert state.reserve(policy, 100.1) == (pytest.approx(0.96), True)
    assert state.reserve(policy, 100.1) == (pytest.approx(0.16), False)  # past the 1 s horizon: nothing taken
    assert state.reserve(policy, 100.26) == (pytest.approx(1.0), True)  # 0.2 s later at 5/s
    assert state.reserve(policy, 101.46 + policy.idle_ttl_s + 1) == (0, True)  # unused: forgotten
    assert state.learning is None


def test_a_rate_cut_at_a_429_leaves_no_idle_time_after_the_pause():
    """Callers hold slots up to the 1 s horizon; a 429 pauses 1 s and the learner cuts the rate (so the
    burst shrinks too). The first free slot is the pause's end: before, the burst's share of ``tat``
    was rescaled as if it were promised slots, every caller idled ~0.8 s after each pause and
    delivery sat at 92 % of a 5/s limit (bench/adaptive.py)."""
    from dataclasses import replace

    from tasks.deliver.ratelimit.adaptive import Learning
    from tasks.deliver.ratelimit.gcra import GcraState

    policy, state = LimitPolicy(rate=10, burst=20), GcraState()
    state.learning = Learning(rate=6.8, ceiling=5.0, origin=4.9, measured=1)  # probing above a 5/s limit
    while state.reserve(policy, 100.0)[1]:  # every slot within the horizon is promised
        pass
    assert state.throttle(policy, 100.0, 1.0) is True
    state.relearn(policy, 100.0, replace(state.learning, rate=4.82))  # the learner's cut
    first, reserved = state.reserve(policy, 101.0)
    assert reserved and 0 <= first < 1 / 4.82  # within one interval of the pause's end (before: 0.79 s)
    assert state.reserve(policy, 101.0) == (pytest.approx(first + 1 / 4.82), True)  # then paced at the new rate


@pytest.mark.parametrize("tat_ahead, paused_ahead, old, new", [
    (2.3, 1.0, 6.8, 4.82),  # a cut during a pause: only the promised slots past it are kept
    (0.9, 0.0, 4.8, 5.3),  # probing up with a backlog
    (0.3, 0.0, 10.0, 4.0),  # burst credit, then a cut
])
def test_the_shared_limiter_rescales_promised_slots_as_the_in_process_one(redis_url, tat_ahead, paused_ahead,
                                                                          old, new):
    """The Lua write of a learned rate and ``GcraState.relearn`` give the same next slot."""
    import redis

    from tasks.deliver.ratelimit.adaptive import Learning
    from tasks.deliver.ratelimit.gcra import GcraState
    from tasks.deliver.ratelimit.redis_gcra import _LUA_LEARN_WRITE

    policy, key = LimitPolicy(rate=10, burst=20), KEY_PREFIX + f"parity-{time.monotonic_ns()}"
    client = redis.Redis.from_url(redis_url)
    secs, micros = client.time()
    now = secs + micros / 1e6
    client.hset(key, mapping={"learn_v": "1", "rate": repr(old), "tat": f"{now + tat_ahead:.6f}",
                              "paused_until": f"{now + paused_ahead:.6f}"})
    write = client.register_script(_LUA_LEARN_WRITE)
    assert write(keys=[key], args=["1", "0", "60000", repr(old), repr(new), str(policy.effective_burst),
                                   repr(policy.rate), "rate", repr(new)]) == 1
    lua_tat = float(client.hget(key, "tat")) - now
    state = GcraState()
    state.learning, state.tat, state.paused_until = Learning(rate=old), now + tat_ahead, now + paused_ahead
    state.relearn(policy, now, Learning(rate=new))
    assert lua_tat == pytest.approx(state.tat - now, abs=0.01)  # Redis's clock moved on by a few ms at most


def test_one_limiter_paces_at_the_rate_after_its_burst(limiter_factory):
    check_pacing(asyncio.run(grant_times(limiter_factory(20, 10), 90)), 20, 10)


def test_in_process_limiters_of_one_key_share_the_budget():
    async def run() -> list[float]:
        key = f"shared-local-{time.monotonic_ns()}"
        a, b = make_limiter(key, 25, 5), make_limiter(key, 25, 5)
        both = await asyncio.gather(grant_times(a, 40), grant_times(b, 40))
        return both[0] + both[1]

    check_pacing(asyncio.run(run()), 25, 5)


def test_pause_blocks_callers_that_already_hold_a_later_slot(limiter_factory):
    async def run():
        limiter = limiter_factory(10, 2)  # effective burst 1: one slot per 0.1 s
        start = time.monotonic()
        await limiter.acquire()
        waiter = asyncio.create_task(limiter.acquire())  # reserved for start + 0.1 s
        await asyncio.sleep(0.02)
        await limiter.throttled(0.5)  # the target said: nothing for 0.5 s
        await waiter
        waited = time.monotonic() - start
        await limiter.aclose()
        return waited

    assert 0.5 <= asyncio.run(run()) < 0.9


def test_first_429_of_an_episode_teaches_the_learner_once(limiter_factory):
    async def run():
        limiter = limiter_factory(20, 10)
        await limiter.acquire()
        await limiter.throttled(0.3)  # nothing measured yet: halve, the rate that drew it is the ceiling
        assert (limiter.current_rate, limiter.learned_rate) == (pytest.approx(10), pytest.approx(20))
        await limiter.throttled(0.3)  # in-flight 429 of the same episode: no second cut
        await limiter.succeeded()  # during the pause: no probing
        await limiter.acquire()  # after the pause
        assert limiter.current_rate == pytest.approx(10)
        for _ in range(12):  # successes for over a second: the rate climbs back toward 20/s
            await asyncio.sleep(0.1)
            await limiter.succeeded()
        await limiter.acquire()
        assert 10.5 < limiter.current_rate < 20
        for _ in range(40):  # repeated episodes with nothing accepted: floor at 5 % of the rate
            await limiter.throttled(0)
            await asyncio.sleep(0.002)
        assert limiter.current_rate == pytest.approx(1.0)
        await limiter.aclose()

    asyncio.run(run())


def test_the_learned_rate_is_remembered_for_the_next_job(limiter_factory):
    async def learn():
        limiter = limiter_factory(20, 10)
        await limiter.throttled(0)
        for _ in range(6):
            await asyncio.sleep(1.0)
            for _ in range(10):
                await limiter.succeeded()
        await limiter.throttled(0)  # 60 accepted in ~6 s between two episodes: about 10/s available
        learned = limiter.learned_rate
        await limiter.aclose()
        return learned

    async def next_job():
        limiter = limiter_factory(20, 10)
        await limiter.acquire()
        rates = limiter.current_rate, limiter.learned_rate
        await limiter.aclose()
        return rates

    learned = asyncio.run(learn())
    assert 8 < learned < 10.5
    limiter_factory.forget_pacing()
    rate, remembered = asyncio.run(next_job())
    assert remembered == pytest.approx(learned, rel=0.01) and rate == pytest.approx(0.99 * learned, rel=0.01)


def test_default_back_off_doubles_without_retry_after(limiter_factory):
    async def pause_after_429(limiter) -> float:
        await limiter.throttled(None)
        start = time.monotonic()
        await limiter.acquire()
        return time.monotonic() - start

    async def run():
        limiter = limiter_factory(50, 5)
        first, second = await pause_after_429(limiter), await pause_after_429(limiter)
        await limiter.succeeded()  # a success ends the streak
        third = await pause_after_429(limiter)
        await limiter.aclose()
        return first, second, third

    first, second, third = asyncio.run(run())
    assert 0.95 <= first < 1.3 and 1.95 <= second < 2.3 and 0.95 <= third < 1.3


def test_redis_state_is_prefixed_and_expires(redis_url):
    import redis

    async def run():
        limiter = make_limiter("api.example.com", 10, 20, redis_url)
        await limiter.acquire()
        await limiter.aclose()

    asyncio.run(run())
    client = redis.Redis.from_url(redis_url)
    assert client.keys("*") == [f"{KEY_PREFIX}api.example.com".encode()]
    assert 100_000 < client.pttl(f"{KEY_PREFIX}api.example.com") <= 121_000


def test_default_limit_key_is_the_host():
    assert default_limit_key("https://api.clay.com/v3/sources/webhook/pull-in-data-from-a-webhook-1") == "api.clay.com"
    assert default_limit_key("http://API.Example.com:8080/x") == "api.example.com:8080"
    with pytest.raises(ConfigError, match="no host"):
        default_limit_key("not a url")
    with pytest.raises(ConfigError, match="invalid port"):
        default_limit_key("https://api.clay.com:99999/x")


def test_unreachable_redis_is_a_one_line_error():
    from csv_merger.testing import find_free_port

    port = find_free_port()
    masked = rf"Redis at redis://:\*\*\*@127.0.0.1:{port}/0 does not answer"  # the password never shown
    with pytest.raises(RedisUnavailableError, match=masked) as info:
        make_limiter("k", 10, 20, f"redis://:secret@127.0.0.1:{port}/0")
    assert "secret" not in str(info.value)


def test_redis_killed_mid_run_raises_instead_of_hanging(tmp_path):
    from csv_merger.testing import RedisServer

    server = RedisServer(tmp_path)

    async def run():
        limiter = make_limiter("dies", 50, 5, server.url)
        for _ in range(10):
            await limiter.acquire()
        server.proc.kill()
        server.proc.wait()
        with pytest.raises(RedisUnavailableError, match="stopped answering"):
            await asyncio.wait_for(limiter.acquire(), timeout=20)

    try:
        asyncio.run(run())
    finally:
        server.proc.kill()
        server.proc.wait()


# --- several real processes sharing one key -----------------------------------


def run_children(mode: str, count: int, *args: str) -> list[dict]:
    procs = [
        subprocess.Popen([sys.executable, str(HERE), mode, *args], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        return [json.loads(p.communicate(timeout=40)[0]) for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()


@pytest.mark.rate_measured
def test_four_processes_sharing_a_key_pace_together(redis_url):
    results = run_children("stamps", 4, redis_url, "shared-stamps", "30", "30", "10")
    # time.time() stamps: one machine, so one clock
    check_pacing([t for r in results for t in r["stamps"]], 30, 10)


def test_pause_set_by_one_process_blocks_another(redis_url):
    async def pause() -> float:
        limiter = make_limiter("paused-key", 50, 5, redis_url)
        await limiter.throttled(2.0)
        await limiter.aclose()
        return time.time() + 2.0

    procs_start = time.time()
    ends = asyncio.run(pause())
    [result] = run_children("stamps", 1, redis_url, "paused-key", "3", "50", "5")
    assert time.time() - procs_start < 6
    assert min(result["stamps"]) >= ends - 0.05  # Redis TIME and time.time(): one machine


@pytest.mark.rate_measured
def test_four_processes_against_a_strict_target(redis_url, sink_factory):
    """Sink strict at 20/s burst 20; four processes at 20/s burst 20 on one key:
    at most 0.5 % answered 429, and the accepted rate after the burst >= 98 %."""
    sink = sink_factory(rate=20, burst=20)
    results = run_children("post", 4, redis_url, "strict-target", "40", "20", "20", sink.url)
    stats = sink.stats()
    assert stats["accepted"] == 160 and sum(r["delivered"] for r in results) == 160
    assert stats["rejected_429"] <= 0.005 * stats["received"]
    times = sorted(r["t"] for r in sink.records())
    eff = LimitPolicy(20, 20).effective_burst
    steady = (len(times) - eff) / (times[-1] - times[eff - 1])
    assert steady / 20 >= 0.98, f"utilisation {steady / 20:.3f}"
    assert stats["max_in_window"] <= 20 + 20


async def child(mode: str, redis_url: str, key: str, n: int, rate: float, burst: int, url: str = "") -> dict:
    """One child process: n acquisitions (``stamps``) or n POSTs through the
    limiter with 429 handling (``post``), 8 at a time."""
    import httpx

    limiter = make_limiter(key, rate, burst, redis_url)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    stamps: list[float] = []
    delivered = throttled = 0
    gate = asyncio.Semaphore(8)
    async with httpx.AsyncClient() as client:

        async def one(i: int) -> None:
            nonlocal delivered, throttled
            async with gate:
                while True:
                    await limiter.acquire()
                    stamps.append(time.time())
                    if mode == "stamps":
                        return
                    answer = await client.post(url, json={"i": i})
                    if answer.status_code != 429:
                        answer.raise_for_status()
                        delivered += 1
                        await limiter.succeeded()
                        return
                    throttled += 1
                    await limiter.throttled(float(answer.headers["Retry-After"]))

        await asyncio.gather(*(one(i) for i in range(n)))
    await limiter.aclose()
    return {"stamps": stamps, "delivered": delivered, "throttled": throttled}


if __name__ == "__main__":
    mode, redis_url, key, n, rate, burst, *rest = sys.argv[1:]
    print(json.dumps(asyncio.run(child(mode, redis_url, key, int(n), float(rate), int(burst), *rest))))


def test_a_redis_that_refuses_the_database_is_unavailable(redis_server):
    # A wrong db number answers with an error, not a connection failure: still one clear error.
    with pytest.raises(RedisUnavailableError, match="DB index is out of range"):
        make_limiter("k", 10, 20, redis_server.url.rsplit("/", 1)[0] + "/99")
