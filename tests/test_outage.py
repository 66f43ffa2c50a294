"""A target outage (every request answered 503 for a while) is an outage, not
bad rows (issue 9, item 5): every worker on the limit key pauses and probes,
resumes when the target answers, and dead-letters nothing unless the job's
outage budget is spent. Real `csv-merger deliver` processes, a real sink that
answers 503 for a time window (``--outage-at N --outage-for S``), real Redis."""

from __future__ import annotations

import json
import subprocess

import pytest

from test_delivery import deliver_args, env, read_csv, run, write_rows


def test_an_outage_pauses_the_workers_and_dead_letters_nothing(tmp_path, sink_factory):
    # --max-attempts 3: without a breaker each row in flight gives up after ~2 s of the 6 s outage.
    sink = sink_factory(outage_at=40, outage_for=6)
    rows = write_rows(tmp_path / "rows.csv", 200)
    dead, summary = tmp_path / "dead.csv", tmp_path / "summary.json"
    proc = run(deliver_args(rows, sink.url, "--rate", 40, "--burst", 10, "--max-attempts", 3,
                            "--dead-letter", dead, "--summary", summary), tmp_path, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    stats, s = sink.stats(), json.loads(summary.read_text())
    assert s["delivered"] == 200 == stats["accepted"] == stats["distinct_keys"] and s["failed"] == 0
    assert not dead.exists()
    assert stats["outage_started_at"] is not None
    # paused and probed: a few probes, not 8 workers retrying every row (which sends ~3 per row)
    assert 8 <= stats["failed_in_outage"] <= 30, stats
    assert s["outage_pauses"] >= 1


@pytest.mark.rate_measured
def test_two_processes_on_one_redis_pause_together(tmp_path, sink_factory, redis_url):
    sink = sink_factory(outage_at=60, outage_for=6)
    files = [write_rows(tmp_path / f"q{q}.csv", 150, start=q * 150 + 1) for q in range(2)]
    procs = [subprocess.Popen(deliver_args(f, sink.url, "--rate", 40, "--burst", 10, "--max-attempts", 3,
                                           "--redis-url", redis_url, "--limit-key", "shared",
                                           "--dead-letter", tmp_path / f"dead{q}.csv"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(tmp_path))
             for q, f in enumerate(files)]
    results = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in results]
    stats = sink.stats()
    assert stats["accepted"] == 300 == stats["distinct_keys"]
    assert not any((tmp_path / f"dead{q}.csv").exists() for q in range(2))
    assert stats["failed_in_outage"] <= 45, stats  # one shared pause: probes, not 16 workers retrying


def test_an_outage_longer_than_the_budget_dead_letters_the_rest_quickly(tmp_path, sink_factory):
    sink = sink_factory(outage_at=20, outage_for=600)
    rows = write_rows(tmp_path / "rows.csv", 100)
    dead, summary = tmp_path / "dead.csv", tmp_path / "summary.json"
    proc = run(deliver_args(rows, sink.url, "--rate", 50, "--burst", 10, "--dead-letter", dead,
                            "--summary", summary), tmp_path, timeout=120, CSV_MERGER_OUTAGE_BUDGET_S="3")
    assert proc.returncode == 3, proc.stderr
    s = json.loads(summary.read_text())
    assert s["delivered"] == 20 and s["failed"] == 80
    dl = read_csv(dead)
    assert len(dl) == 80 and all(r["_status"] == "503" and "outage budget of 3 s" in r["_reason"] for r in dl)


def test_detector_trips_on_a_window_of_failures_from_several_rows_only():
    from tasks.deliver.outage import OutageDetector, OutagePolicy

    one_row = OutageDetector(OutagePolicy())
    assert not any(one_row.failed(7) for _ in range(20))  # one row failing again and again: its own problem
    flaky = OutageDetector(OutagePolicy())
    outcomes = [flaky.succeeded() if i % 10 else flaky.failed(i) for i in range(100)]
    assert not any(outcomes)  # one request in ten failing
    down = OutageDetector(OutagePolicy())
    assert [down.failed(row) for row in range(1, 9)] == [False] * 7 + [True]


def test_outage_pause_doubles_per_probe_and_a_2xx_ends_it():
    from tasks.deliver.ratelimit import LimitPolicy
    from tasks.deliver.ratelimit.gcra import GcraState

    policy, state = LimitPolicy(rate=10, burst=4), GcraState()
    assert state.outage(policy, 100.0, 1.0, 15.0) == 0.0 and state.paused_until == 101.0
    state.outage(policy, 100.5, 1.0, 15.0)  # same round (pause in force): not extended
    assert state.paused_until == 101.0
    assert state.outage(policy, 101.2, 1.0, 15.0) == pytest.approx(1.2) and state.paused_until == pytest.approx(103.2)
    wait, taken = state.reserve(policy, 101.3)  # every caller waits for the probe: asks again within a horizon of it
    assert not taken and wait + policy.horizon_s == pytest.approx(1.9)
    assert state.reserve(policy, 102.2) == (pytest.approx(1.0), True)
    state.succeed(policy, 103.3)
    assert state.outage_age(103.4) is None and state.rate(policy) == 10  # ended; the rate was never lowered
