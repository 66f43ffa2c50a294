"""Real processes learn the rate a target really grants (issue 13): ``csv-merger deliver``
processes configured at 10/s share one Redis limit key against a ``csv-merger sink``
that grants less. Loose bounds, measured from the sink's log and counters; the
benchmark (bench/adaptive.py) has the figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from csv_merger.testing import write_merged_csv

pytestmark = pytest.mark.timeout(240)


def rows(path: Path, n: int, start: int = 0) -> Path:
    return write_merged_csv(path, ({"First Name": f"Ann{i}", "Work Email": f"ann{i}@acme.example"}
                                   for i in range(start, start + n)))


def start_deliver(tmp_path: Path, path: Path, sink, redis_url: str, key: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "csv_merger", "deliver", str(path), "--webhook-url", sink.url,
            "--allow-private-targets", "--rate", "10", "--burst", "20", "--redis-url", redis_url,
            "--limit-key", key, "--summary", str(path.with_suffix(".json")), "--quiet"]
    env = {**os.environ, "CSV_MERGER_DATA_DIR": str(tmp_path / "data")}
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        out, err = p.communicate(timeout=90)
        assert p.returncode == 0, out + err


def accepted_rate(sink, since: float) -> float:
    """Requests/s the sink accepted from unix time ``since`` to its last acceptance."""
    times = [r["t"] for r in sink.records() if r["t"] >= since]
    return (len(times) - 1) / (times[-1] - times[0])


def share_429(before: dict, after: dict) -> float:
    return (after["rejected_429"] - before["rejected_429"]) / (after["received"] - before["received"])


@pytest.mark.rate_measured
def test_two_processes_settle_under_a_lower_limit_and_the_next_job_starts_there(tmp_path, sink_factory,
                                                                                 redis_url):
    sink = sink_factory(rate=5)  # burst 5; the processes are configured at 10/s, burst 20
    start = time.time()
    procs = [start_deliver(tmp_path, rows(tmp_path / f"in{i}.csv", 90, start=1000 * i), sink, redis_url, "shared")
             for i in range(2)]
    time.sleep(15)  # learning: the first 429s
    settled, since = sink.stats(), time.time()
    finish(procs)
    rate, share = accepted_rate(sink, since), share_429(settled, sink.stats())
    assert rate >= 0.7 * 5 and share <= 0.05, (rate, share, time.time() - start)  # figures: bench/adaptive.py
    learned = [json.loads((tmp_path / f"in{i}.json").read_text())["learned_rate"] for i in range(2)]
    assert all(3.5 <= x <= 5.5 for x in learned), learned

    before = sink.stats()  # the next job on the key: starts at the remembered rate, no opening 429s
    proc = start_deliver(tmp_path, rows(tmp_path / "next.csv", 40, start=5000), sink, redis_url, "shared")
    finish([proc])
    # Its opening burst (6 at the remembered rate) meets a bucket the last job left part-empty: one
    # episode, 1-2 answers 429 from the requests in flight; without the memory: 5 to 8.
    assert sink.stats()["rejected_429"] - before["rejected_429"] <= 2
    assert 2.5 <= json.loads((tmp_path / "next.json").read_text())["learned_rate"] <= 5.5


@pytest.mark.rate_measured
def test_a_limit_that_halves_mid_run_is_learned_again(tmp_path, sink_factory, redis_url):
    sink = sink_factory(rate=10, burst=10, rate_after="120:5")  # 10/s for ~12 s, then 5/s
    proc = start_deliver(tmp_path, rows(tmp_path / "in.csv", 250), sink, redis_url, "halves")
    sink.wait_accepted(120, proc)
    changed = sink.stats()["rate_changes"][0][0]
    time.sleep(max(0.0, changed + 15 - time.time()))  # re-learning
    settled, since = sink.stats(), time.time()
    finish([proc])
    rate, share = accepted_rate(sink, since), share_429(settled, sink.stats())
    assert rate >= 0.8 * 5 and share <= 0.05, (rate, share)
