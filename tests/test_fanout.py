"""Fan-out on a real work pool: a local `prefect server start`, a process work pool with
concurrency limit 2 (``WORKER_COUNT=2``) and two real `prefect worker` processes.

One job (80 rows, chunks of 20) fanned out as deliver-chunk child runs: every row is
delivered once, 2 children run at once but never more, and the shared Redis rate
limit holds against a strict 4/s sink.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(str(p) for p in (REPO / "examples").glob("*.csv"))
RATE, BURST = 4, 4  # slow enough that chunks would overlap beyond the pool's limit without it


def _child_runs(env: dict) -> list:
    """deliver-chunk flow runs on the server, with their state history."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def read():
        async with get_client() as client:
            runs = await client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["deliver-chunk"])))
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
    board.set_handled(0, 40, 3, 6.5)
    board.set_handled(1, 10)
    assert board.live() == {0: (40, 3, 6.5), 1: (10, 0, None)}
    assert board.handled() == {0: 40, 1: 10}


def test_fan_out_on_a_work_pool_with_two_workers(prefect_server, redis_url, sink_factory, tmp_path):
    env = {**prefect_server, "WORKER_COUNT": "2", "WORK_POOL": f"fanout-{os.getpid()}", "REDIS_URL": redis_url}
    setup = subprocess.run([sys.executable, "-m", "deployments.setup"], env=env, cwd=REPO, capture_output=True,
                           text=True, timeout=120)
    assert setup.returncode == 0, setup.stderr
    assert "concurrency limit 2" in setup.stdout and "deliver-chunk/deliver-chunk" in setup.stdout
    assert "blocks: csv-merger-redis" in setup.stdout

    workers = [subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", env["WORK_POOL"],
                                 "--type", "process", "--name", f"w{n}"], env=env, cwd=tmp_path,
                                stdout=open(tmp_path / f"worker{n}.log", "w"), stderr=subprocess.STDOUT)
               for n in (1, 2)]
    sink = sink_factory(rate=RATE, burst=BURST)
    try:
        run = subprocess.run([sys.executable, "-m", "csv_merger", "run", *EXAMPLES, "--webhook-url", sink.url,
                              "--allow-private-targets", "--rate", str(RATE), "--burst", str(BURST),
                              "--chunk-size", "20", "--fan-out", "--redis-url", redis_url,
                              "--output-dir", str(tmp_path / "out")],
                             env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=30)
    logs = "".join((tmp_path / f"worker{n}.log").read_text()[-1500:] for n in (1, 2))
    assert run.returncode == 0, run.stdout + run.stderr + logs
    assert "80 rows merged from 111; 80 delivered, 0 failed" in run.stdout

    stats = sink.stats()
    assert (stats["accepted"], stats["distinct_keys"], stats["duplicate_keys"]) == (80, 80, 0)  # each row once
    assert stats["rejected_429"] == 0  # one shared budget: the workers together stay under the target's rate
    times = sorted(r["t"] for r in sink.records())
    assert (len(times) - BURST) / (times[-1] - times[0]) <= RATE * 1.05

    children = _child_runs(prefect_server)
    assert len(children) == 4 and all(run.state.is_completed() for run, _ in children)
    intervals = []
    for _, states in children:
        running = [s.timestamp.timestamp() for s in states if s.type.value == "RUNNING"]
        final = [s.timestamp.timestamp() for s in states if s.is_final()]
        intervals.append((min(running), max(final)))
    assert _max_overlap(intervals) == 2  # the work pool's concurrency limit, reached and never exceeded
