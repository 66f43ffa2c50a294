"""A target never reached (a typo in the webhook's host or port: connection refused) stops the
delivery after ``unreachable_stop_s`` instead of probing for the whole outage budget.
The rule alone (no I/O), then real `csv-merger deliver` processes against a free port of 127.0.0.1."""

from __future__ import annotations

import json
import time

import httpx

from test_delivery import _one_line_error, deliver_args, read_csv, run, write_rows

STOP_S = 3  # CSV_MERGER_UNREACHABLE_STOP_S in these tests (default 60 s)


def test_only_connect_errors_for_stop_s_fire_the_stop_once():
    from tasks.deliver.job import DeliverySummary
    from tasks.deliver.unreachable import UnreachableWatch

    refused = httpx.ConnectError("All connection attempts failed")
    refused.__cause__ = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)")  # as httpx raises it
    watch = UnreachableWatch(stop_s=60)
    assert not watch.due(1000.0)  # nothing failed yet
    assert watch.failed("http://127.0.0.1:9/hook", refused, 10.0)  # the first one: tell the user
    assert not watch.failed("http://127.0.0.1:9/hook", refused, 30.0)
    assert not watch.due(69.9)
    assert watch.due(70.0) and watch.fired and not watch.due(71.0)  # once
    s = DeliverySummary(job_id="j1", limit_key="k", rows_total=100)
    assert watch.reason(s) == ("stopped: could not connect to 127.0.0.1:9 for 60 s (connection refused) and no request"
                               " ever reached it: check the webhook URL; 100 rows not sent;"
                               " fix it and run again with --job-id j1")

    for other in (httpx.ConnectTimeout("timed out"), httpx.ReadError("reset")):  # a target that exists may be down
        watch = UnreachableWatch(stop_s=60)
        watch.failed("https://hooks.example.com/x", refused, 0.0)
        watch.failed("https://hooks.example.com/x", other, 1.0)
        assert not watch.due(100.0) and watch.target == "hooks.example.com:443"
    answered = UnreachableWatch(stop_s=60)
    answered.got_through()  # a response (any status): off for the run
    answered.failed("http://127.0.0.1:9/hook", refused, 0.0)
    assert not answered.due(100.0)


def test_deliver_to_a_port_nobody_listens_on_stops_with_one_line_and_a_rerun_sends_every_row(
        tmp_path, free_port, sink_factory):
    rows = write_rows(tmp_path / "rows.csv", 30)
    dead, summary = tmp_path / "dead.csv", tmp_path / "s.json"
    started = time.monotonic()
    proc = run(deliver_args(rows, f"http://127.0.0.1:{free_port}/hook", "--job-id", "unreach-1",
                            "--dead-letter", dead, "--summary", summary),
               tmp_path, timeout=STOP_S + 45, CSV_MERGER_UNREACHABLE_STOP_S=str(STOP_S))
    took = time.monotonic() - started
    assert proc.returncode == 5, proc.stderr
    assert took < STOP_S + 15, took
    line = _one_line_error(proc)
    assert f"could not connect to 127.0.0.1:{free_port} for {STOP_S} s (connection refused)" in line, line
    assert "check the webhook URL; 30 rows not sent" in line and "--job-id unreach-1" in line
    assert f"cannot connect to 127.0.0.1:{free_port} (connection refused): stopping in {STOP_S} s" in proc.stderr
    assert not dead.exists()  # nothing dead-lettered: the rows were never sent
    s = json.loads(summary.read_text())
    assert (s["delivered"], s["failed"], s["cancelled"]) == (0, 0, False) and s["stopped_reason"] in line
    fixed = run(deliver_args(rows, sink_factory().url, "--job-id", "unreach-1"), tmp_path)
    assert fixed.returncode == 0, fixed.stderr  # nothing entered the ledger: the re-run sends every row
    assert "delivered 30/30 rows" in fixed.stdout


def test_a_job_that_reached_its_target_before_is_not_stopped_as_a_typo(tmp_path, free_port, sink_factory):
    """A resume (or a fan-out consumer starting after the others delivered) that finds the target refusing
    connections meets an outage, not a wrong URL: the outage budget applies, not the early stop."""
    rows = write_rows(tmp_path / "rows.csv", 30)
    sink = sink_factory(outage_at=10, outage_for=600)
    first = run(deliver_args(rows, sink.url, "--job-id", "unreach-2", "--dead-letter", tmp_path / "dead1.csv"),
                tmp_path, CSV_MERGER_OUTAGE_BUDGET_S="2")
    assert first.returncode == 3 and "10/30" in first.stdout, first.stdout + first.stderr  # 10 rows in the ledger
    dead, summary = tmp_path / "dead2.csv", tmp_path / "s.json"
    again = run(deliver_args(rows, f"http://127.0.0.1:{free_port}/hook", "--job-id", "unreach-2",
                             "--dead-letter", dead, "--summary", summary),
                tmp_path, timeout=60, CSV_MERGER_UNREACHABLE_STOP_S="1", CSV_MERGER_OUTAGE_BUDGET_S="4")
    s = json.loads(summary.read_text())
    assert again.returncode == 3, again.stderr  # the outage budget ran out: the rest is dead-lettered
    assert "check the webhook URL" not in again.stderr and s["stopped_reason"] is None
    assert (s["skipped_already_delivered"], s["failed"]) == (10, 20)
    assert all("outage budget of 4 s" in r["_reason"] for r in read_csv(dead))
