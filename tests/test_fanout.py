"""Fan-out on a real work pool: a local `prefect server start`, a process work pool with
concurrency limit 2 (``WORKER_COUNT=2``) and two real `prefect worker` processes.

One job (80 rows, chunks of 20) fanned out to deliver-consumer child runs (one per
slot of the pool, not one per chunk): every row is delivered once, 2 consumers run at
once but never more, and the shared Redis rate limit holds against a strict 4/s sink.
Then SIGKILL of one worker (and its consumer's process) mid-job: the other consumer
takes over the killed one's leased chunk, nothing is lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(str(p) for p in (REPO / "examples").glob("*.csv"))
RATE, BURST = 4, 4  # slow enough that chunks would overlap beyond the pool's limit without it


def _child_runs(env: dict) -> list:
    """deliver-consumer flow runs on the server, with their state history."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def read():
        async with get_client() as client:
            runs = await client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["deliver-consumer"])))
            return [(run, await client.read_flow_run_states(run.id)) for run in runs]

    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
        return asyncio.run(read())


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


@pytest.mark.timeout(300)
def test_chunk_board_carries_429s_and_the_limiters_rate(redis_url):
    from flows.fan_out import ChunkBoard

    board = ChunkBoard(redis_url, f"board-{os.getpid()}-{time.monotonic_ns()}")
    board.set_handled(0, 40, 3, 6.5, (), 25)  # 40 handled, 25 of them sent (15 delivered before)
    board.set_handled(1, 10)
    assert board.live() == {0: (40, 3, 6.5, 25), 1: (10, 0, None, 0)}
    assert board.handled() == {0: 40, 1: 10}


@pytest.mark.parametrize("state, beat, in_state_s, drained, dead", [
    ("running", (3.0, False), 60.0, False, False),   # beating: alive
    ("running", (10.0, False), 60.0, False, True),   # silent past its lease + grace: killed
    ("running", (60.0, True), 60.0, True, False),    # stopped pulling chunks, its run is ending on a slow server
    ("running", (121.0, True), 60.0, True, True),    # ... but not for ever
    ("pending", None, 60.0, False, False),  # starting on a loaded machine, work left: wait
    ("pending", None, 121.0, False, True),  # never started delivering: its process died starting
    ("running", None, 10.0, True, True),    # others drained the queue, it never beat: dead, the job can end
    ("running", None, 5.0, True, False),
    ("scheduled", None, 999.0, True, False),  # no worker took it yet: not dead, just waiting
    ("completed", (99.0, False), 999.0, True, False),
])
def test_a_consumer_counts_as_dead_only_when_its_process_cannot_be_alive(state, beat, in_state_s, drained, dead):
    from prefect import states

    from flows.fan_out import dead_consumer

    made = {"running": states.Running, "pending": states.Pending, "scheduled": states.Scheduled,
            "completed": states.Completed}[state]()
    why = dead_consumer(made, beat, in_state_s, drained, dead_after_s=9.0)
    assert (why is not None) == dead
    assert why is None or "no heartbeat" in why


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and every process below it (a worker and the flow runs it started, which Prefect
    puts in sessions of their own): a machine lost mid-job."""
    import psutil

    parent = psutil.Process(pid)
    for proc in [*parent.children(recursive=True), parent]:
        proc.kill()


def _run_fanned_out(env: dict, tmp_path: Path, files: list[str], sink, name: str, rate: float, burst: int,
                    chunk_size: int, redis_url: str, timeout: float = 240):
    return subprocess.Popen([sys.executable, "-m", "csv_merger", "run", *files, "--webhook-url", sink.url,
                             "--allow-private-targets", "--rate", str(rate), "--burst", str(burst),
                             "--chunk-size", str(chunk_size), "--fan-out", "--redis-url", redis_url,
                             "--output-dir", str(tmp_path / name)],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.timeout(480)
@pytest.mark.rate_measured
def test_fan_out_on_a_work_pool_with_two_workers(prefect_server, redis_url, sink_factory, tmp_path):
    import redis

    env = {**prefect_server, "WORKER_COUNT": "2", "WORK_POOL": f"fanout-{os.getpid()}", "REDIS_URL": redis_url,
           "CSV_MERGER_LEASE_S": "4"}
    setup = subprocess.run([sys.executable, "-m", "deployments.setup"], env=env, cwd=REPO, capture_output=True,
                           text=True, timeout=120)
    assert setup.returncode == 0, setup.stderr
    assert "concurrency limit 2" in setup.stdout and "deliver-consumer/deliver-consumer" in setup.stdout
    assert "blocks: csv-merger-redis" in setup.stdout

    # One flow run at a time per worker, so that killing one worker kills exactly one consumer.
    workers = [subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", env["WORK_POOL"],
                                 "--type", "process", "--name", f"w{n}", "--limit", "1"], env=env, cwd=tmp_path,
                                stdout=open(tmp_path / f"worker{n}.log", "w"), stderr=subprocess.STDOUT)
               for n in (1, 2)]
    logs = lambda: "".join((tmp_path / f"worker{n}.log").read_text()[-2500:] for n in (1, 2))  # noqa: E731
    sink = sink_factory(rate=RATE, burst=BURST)
    try:
        out, err = _run_fanned_out(env, tmp_path, EXAMPLES, sink, "out", RATE, BURST, 20, redis_url).communicate(
            timeout=240)
        assert "80 rows merged from 111; 80 delivered, 0 failed" in out, out + err + logs()
        stats = sink.stats()
        assert (stats["accepted"], stats["distinct_keys"], stats["duplicate_keys"]) == (80, 80, 0)  # each row once
        assert stats["rejected_429"] == 0  # one shared budget: the workers together stay under the target's rate
        times = sorted(r["t"] for r in sink.records())
        assert (len(times) - BURST) / (times[-1] - times[0]) <= RATE * 1.05

        children = _child_runs(prefect_server)
        assert len(children) == 2 and all(run.state.is_completed() for run, _ in children)  # 2 consumers, 4 chunks
        intervals = []
        for _, states in children:
            running = [s.timestamp.timestamp() for s in states if s.type.value == "RUNNING"]
            final = [s.timestamp.timestamp() for s in states if s.is_final()]
            intervals.append((min(running), max(final)))
        assert _max_overlap(intervals) == 2  # the work pool's concurrency limit, reached and never exceeded

        # A worker lost mid-job: 400 rows in 16 chunks; kill w1 and its consumer once 100 rows are in and
        # both consumers hold a lease (a worker's process may start seconds after the other's).
        queues = redis.Redis.from_url(redis_url)
        before = set(queues.keys("csv-merger:queue:*:owners"))
        sink2 = sink_factory(rate=20, burst=10)
        job = _run_fanned_out(env, tmp_path, [_people_csv(tmp_path / "people400.csv", 400)], sink2, "killed", 20, 10,
                              25, redis_url)
        sink2.wait_accepted(100, job)
        _wait_both_leasing(queues, before, job)
        _kill_tree(workers[0].pid)
        out, err = job.communicate(timeout=240)
        assert job.returncode == 0, out + err + logs()
        assert "400 rows merged from 400" in out and "0 failed" in out and "[Completed]" in out, out + err
        stats = sink2.stats()
        assert stats["distinct_keys"] == 400  # nothing lost: the killed consumer's chunk was taken over
        assert stats["duplicate_keys"] <= 8  # at most the killed consumer's requests in flight, same keys
        crashed = [run for run, _ in _child_runs(prefect_server) if run.state.is_crashed()]
        assert len(crashed) == 1 and "no heartbeat" in crashed[0].state.message
        assert "taken over" in logs()  # the surviving consumer says whose chunk it finished
    finally:
        _stop_workers(workers)


def _wait_both_leasing(queues, before: set, job, timeout: float = 120.0) -> None:
    """Block until the new job's queue has chunks leased to consumer-1 and consumer-2 at once."""
    deadline = time.monotonic() + timeout
    while True:
        owners = [queues.hvals(k) for k in set(queues.keys("csv-merger:queue:*:owners")) - before]
        if any(set(o) == {b"consumer-1", b"consumer-2"} for o in owners):
            return
        assert job.poll() is None, f"the job ended before both consumers held a lease: {job.communicate()}"
        assert time.monotonic() < deadline, f"both consumers never held a lease at once in {timeout} s: {owners}"
        time.sleep(0.05)


def _stop_workers(workers: list) -> None:
    """SIGTERM each worker; SIGKILL one still there after 30 s (Prefect's `worker start` sometimes hangs in
    its own shutdown when its server was busy: cleanup, not what these tests check)."""
    for w in workers:
        if w.poll() is None:
            w.terminate()
    for w in workers:
        try:
            w.wait(timeout=30)
        except subprocess.TimeoutExpired:
            _kill_tree(w.pid)
            w.wait(timeout=30)


def _people_csv(path: Path, rows: int) -> str:
    lines = ["Email,First Name,Company Name"] + [f"p{i}@lead{i}.example,Person{i},Company {i}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _wait_final(client, flow_run_ids, timeout: float = 90.0) -> list:
    deadline = time.monotonic() + timeout
    while True:
        runs = [client.read_flow_run(i) for i in flow_run_ids]
        if all(r.state is not None and r.state.is_final() for r in runs) or time.monotonic() > deadline:
            return runs
        time.sleep(0.5)


def _check_stopped(client, sink, ledger, run_id, job: str, seen: int, stopped_at: float, label: str,
                   children: int = 0) -> int:
    """The run ended Cancelled (its ``children`` deliver-consumer runs final, none Completed), no request came
    more than 2 s after ``stopped_at``, every row at most once and the ledger holds exactly the rows the
    sink accepted (so a resume sends the rest). Returns the sink's record count."""
    child_ids = [r.id for r in client.read_flow_runs() if r.parent_task_run_id and r.name.startswith(job)]
    [ended, *ended_children] = _wait_final(client, [run_id, *child_ids])
    time.sleep(3)  # anything still sending would show now
    records = sink.records()[seen:]
    late = max(r["t"] for r in records) - stopped_at
    print(f"{label}: {len(records)} rows accepted, last request {late:+.2f} s after the cancel")
    assert ended.state.is_cancelled(), ended.state
    assert len(ended_children) == children
    assert all(c.state.is_final() and not c.state.is_completed() for c in ended_children), [
        (c.name, c.state.type.value) for c in ended_children]
    assert late <= 2.0  # no new request 2 s after the cancel
    keys = [r["key"] for r in records]
    assert len(keys) == len(set(keys)) < 400  # stopped early, every row at most once
    assert ledger.scard(f"csv-merger:ledger:{job}") == len(keys)
    return seen + len(records)


@pytest.mark.timeout(480)
@pytest.mark.rate_measured
def test_cancel_or_sigterm_of_a_worker_stops_sending_within_2s_also_in_fan_out_children(
        prefect_server, redis_url, sink_factory, tmp_path):
    """Issue 9 items 1 and 4: `prefect flow-run cancel` (state Cancelling, as the UI's Cancel) of a
    merge-and-deliver run executed by a `csv-merger worker`: the worker SIGTERMs the run's process; no request
    reaches the sink more than 2 s later, with the consumers as tasks of the run, then fanned out as
    deliver-consumer children. Then SIGTERM to the `csv-merger worker` itself (docker stop) cancels its run the same way."""
    import redis
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Cancelling

    env = {**prefect_server, "WORKER_COUNT": "3", "WORK_POOL": f"cancel-{os.getpid()}", "REDIS_URL": redis_url}
    setup = subprocess.run([sys.executable, "-m", "csv_merger", "setup"], env=env, cwd=REPO, capture_output=True,
                           text=True, timeout=120)
    assert setup.returncode == 0, setup.stderr
    worker = subprocess.Popen([sys.executable, "-m", "csv_merger", "worker", "--name", "w1"], env=env, cwd=tmp_path,
                              stdout=open(tmp_path / "worker.log", "w"), stderr=subprocess.STDOUT)
    sink = sink_factory(rate=1000, burst=1000)
    files = [_people_csv(tmp_path / "people400.csv", 400)]
    ledger = redis.Redis.from_url(redis_url)
    try:
        with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}), \
                get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name("merge-and-deliver/merge-and-deliver")
            seen = 0
            for mode in ("tasks", "fan-out", "worker SIGTERM"):
                job = f"job-cancel-{mode.replace(' ', '-')}-{os.getpid()}"
                run = client.create_flow_run_from_deployment(deployment.id, parameters=dict(
                    files=files, webhook_url=sink.url, allow_private_targets=True, rate_limit=20.0, burst=10,
                    chunk_size=100, job_id=job, fan_out=mode == "fan-out", output_dir=str(tmp_path / job)))
                deadline = time.monotonic() + 180
                while sink.stats()["accepted"] < seen + 40:
                    assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
                    time.sleep(0.1)
                if mode == "worker SIGTERM":
                    worker.send_signal(signal.SIGTERM)
                else:
                    client.set_flow_run_state(run.id, Cancelling(message="test cancel"), force=True)
                stopped_at = time.time()
                try:
                    seen = _check_stopped(client, sink, ledger, run.id, job, seen, stopped_at, mode,
                                          children=3 if mode == "fan-out" else 0)
                except AssertionError as exc:
                    raise AssertionError(f"{exc}\n{(tmp_path / 'worker.log').read_text()[-4000:]}") from None
        assert worker.wait(timeout=90) == 143, (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=30)
