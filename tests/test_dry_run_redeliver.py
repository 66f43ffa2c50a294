"""Try before sending, send again what failed: ``--dry-run`` for deliver and
run sends nothing and says what a run would do; ``redeliver`` (and deliver
given a dead-letter file) sends exactly the original values under the
original Idempotency-Keys. Real sink, real CLI processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from csv_merger.testing import write_merged_csv

REPO = Path(__file__).resolve().parent.parent
NOTE = 'said "hi", =1+1'  # exact text: quotes, a leading formula sign


def _merged(path: Path, n: int, *more: dict[str, str]) -> Path:
    rows = [{"First Name": f"Ann{i}", "Work Email": f"ann{i}@acme.example", "Notes": NOTE} for i in range(1, n + 1)]
    return write_merged_csv(path, [*rows, *more], kept=["Notes"])


def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "csv_merger", *args], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "CSV_MERGER_DATA_DIR": str(tmp_path / "data"), **env})


def test_deliver_dry_run_sends_nothing_and_reports_what_a_run_would_do(tmp_path, sink_factory):
    sink = sink_factory()
    path = _merged(tmp_path / "merged.csv", 30,  # and one row too big for the payload limit
                   {"First Name": "Big", "Work Email": "big@acme.example", "Notes": "x" * 500})
    done = _cli(tmp_path, "deliver", str(path), "--webhook-url", sink.url, "--allow-private-targets", "--dry-run",
                "--job-id", "dry", "--rate", "10", "--burst", "20", CSV_MERGER_PAYLOAD_LIMIT_BYTES="300")
    assert done.returncode == 0, done.stderr
    assert sink.stats()["accepted"] == 0 and sink.records() == []
    out = done.stdout
    assert "31 rows, 0 already delivered, 30 to send, 1 would be dead-lettered without sending" in out
    assert "row 31: body is" in out and "above the payload limit of 300 bytes" in out
    assert '(Idempotency-Key dry-1): {"First Name":"Ann1"' in out and "dry-3" in out and "dry-4" not in out
    assert "estimate: 2 s at 10 requests/s" in out  # 30 rows, effective burst 13, then 10/s: 1.7 s


def test_a_template_the_real_run_refuses_is_refused_by_the_dry_run_too(tmp_path, sink_factory):
    """A template failing on the first row stops the real run before anything is sent (exit 2); the dry
    run said "0 to send, 3 would be dead-lettered" and exited 0."""
    sink = sink_factory()
    path = _merged(tmp_path / "merged.csv", 3)
    template = tmp_path / "t.j2"
    template.write_text('{"email": {{ row["Work Email"] | tojson }}, "x": {{ nope.x }}}', encoding="utf-8")
    args = ["deliver", str(path), "--webhook-url", sink.url, "--allow-private-targets", "--payload", str(template)]
    real, dry = _cli(tmp_path, *args), _cli(tmp_path, *args, "--dry-run")
    assert real.returncode == dry.returncode == 2, (real.stderr, dry.stderr)
    [line] = dry.stderr.strip().splitlines()
    assert line.startswith(f"csv-merger: error: payload template {template}: row 1: ") and "nope" in line, line
    assert real.stderr.strip().splitlines()[-1] == line and sink.stats()["received"] == 0


@pytest.mark.slow
def test_run_dry_run_merges_and_sends_nothing(tmp_path, sink_factory):
    sink = sink_factory()
    examples = sorted(str(p) for p in (REPO / "examples").glob("*.csv"))
    done = _cli(tmp_path, "run", *examples, "--webhook-url", sink.url, "--allow-private-targets", "--dry-run",
                "--output-dir", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert sink.stats()["accepted"] == 0
    assert "80 rows merged from 111" in done.stdout and "80 to send" in done.stdout
    assert (tmp_path / "out" / "merged.csv").is_file()


def test_redeliver_sends_original_values_with_original_keys(tmp_path, sink_factory):
    refusing = sink_factory(reject_field="First Name=Ann2")
    path = _merged(tmp_path / "merged.csv", 3)
    first = _cli(tmp_path, "deliver", str(path), "--webhook-url", refusing.url, "--allow-private-targets",
                 "--job-id", "j1", "--dead-letter", str(tmp_path / "dead-letter-j1.csv"))
    assert first.returncode == 3, first.stderr
    assert {r["key"] for r in refusing.records()} == {"j1-1", "j1-3"}

    good = sink_factory()
    again = _cli(tmp_path, "redeliver", str(tmp_path / "dead-letter-j1.csv"), "--webhook-url", good.url,
                 "--allow-private-targets", "--dead-letter", str(tmp_path / "dl2.csv"))
    assert again.returncode == 0, again.stderr
    [record] = good.records()
    assert record["key"] == "j1-2"  # the original row's Idempotency-Key, job id from the file name
    assert record["body"] == {"First Name": "Ann2", "Work Email": "ann2@acme.example", "Notes": NOTE}

    # The same job's ledger now holds row 2: delivering the merged CSV again sends nothing.
    rerun = _cli(tmp_path, "deliver", str(path), "--webhook-url", good.url, "--allow-private-targets",
                 "--job-id", "j1")
    assert rerun.returncode == 0 and "0/3 rows" in rerun.stdout and len(good.records()) == 1


def test_a_dead_letter_file_needs_its_job_id(tmp_path, sink_factory):
    sink = sink_factory()
    dead = tmp_path / "failed-rows.csv"
    dead.write_text("First Name,_row_number,_status,_reason,_response,_attempts\nAnn,7,400,bad,,1\n", encoding="utf-8")
    done = _cli(tmp_path, "deliver", str(dead), "--webhook-url", sink.url, "--allow-private-targets")
    assert done.returncode == 2
    assert "is a dead-letter file: give the original job's --job-id" in done.stderr
    assert sink.stats()["accepted"] == 0
    # Its columns are not held to the merged schema (the rows were taken for delivery once); a header alone is no input.
    done = _cli(tmp_path, "redeliver", str(dead), "--webhook-url", sink.url, "--allow-private-targets", "--job-id", "j")
    assert done.returncode == 0, done.stderr
    assert [(r["key"], r["body"]) for r in sink.records()] == [("j-7", {"First Name": "Ann"})]
    dead.write_text("First Name,_row_number,_status,_reason,_response,_attempts\n", encoding="utf-8")
    done = _cli(tmp_path, "redeliver", str(dead), "--webhook-url", sink.url, "--allow-private-targets", "--job-id", "j")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (f"csv-merger: error: {dead}: no data rows: only a header; "
                                                    "nothing to deliver again")


def test_dry_run_reports_capacity_and_the_rows_a_run_would_skip(tmp_path, sink_factory):
    """Destination capacity per destination (rollover included) and the already-at-destination
    and suppressed counts, as a real run would find them; exit 0, nothing sent."""
    full, spare = sink_factory(), sink_factory()
    assert _cli(tmp_path, "deliver", str(_merged(tmp_path / "old.csv", 4)), "--webhook-url", spare.url,
                "--allow-private-targets", "--job-id", "old").returncode == 0
    assert _cli(tmp_path, "destinations", "set", full.url, "49990").returncode == 0
    (tmp_path / "dnc.txt").write_text("ann10@acme.example\n", encoding="utf-8")
    args = ["deliver", str(_merged(tmp_path / "merged.csv", 30)), "--webhook-url", full.url, "--allow-private-targets",
            "--dry-run", "--suppress", str(tmp_path / "dnc.txt")]
    one = _cli(tmp_path, *args)
    assert one.returncode == 0, one.stderr
    assert "skipped: 0 already at the destination, 1 suppressed" in one.stdout
    assert "49,990 of 50,000 used, 10 left" in one.stdout
    assert "capacity: only 10 of the 29 rows to send fit" in one.stdout
    both = _cli(tmp_path, *args, "--webhook-url", spare.url)
    assert both.returncode == 0, both.stderr
    assert "skipped: 4 already at the destination, 1 suppressed" in both.stdout and "25 to send" in both.stdout
    assert "4 of 50,000 used, 49,996 left" in both.stdout and "capacity: the 25 rows to send fit" in both.stdout
    assert full.stats()["accepted"] == 0 and spare.stats()["accepted"] == 4
