"""What long work shows on the command line: a rich progress bar on a
terminal (a real pseudo-terminal here), plain lines otherwise, nothing but
warnings with -q; ``--help`` whole at 80 columns."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from csv_merger.cli.progress import after_burst, destination_parts
from csv_merger.testing import write_merged_csv
from tasks.deliver.job import DestinationUse

COMMANDS = ("merge", "deliver", "run", "web", "worker", "sink", "setup", "demo")


def _rows(path: Path, n: int) -> Path:
    return write_merged_csv(path, ({"First Name": f"Ann{i}", "Work Email": f"ann{i}@acme.example"} for i in range(n)))


def _deliver_args(path: Path, url: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "csv_merger", "deliver", str(path), "--webhook-url", url,
            "--allow-private-targets", "--rate", "20", "--burst", "5", *extra]


def _env(tmp_path: Path, **extra: str) -> dict:
    return {**os.environ, "CSV_MERGER_DATA_DIR": str(tmp_path / "data"), **extra}


@pytest.mark.parametrize("command", COMMANDS)
def test_help_is_whole_at_80_columns(command):
    done = subprocess.run([sys.executable, "-m", "csv_merger", command, "--help"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "80"})
    assert done.returncode == 0, done.stderr
    assert "…" not in done.stdout and "--help" in done.stdout
    assert max(map(len, done.stdout.splitlines())) <= 80


def test_rate_is_measured_after_the_opening_burst():
    mark, rate = after_burst(None, 19, now=99.9, burst=20)
    assert (mark, rate) == (None, None)           # the burst is not spent yet
    mark, rate = after_burst(mark, 20, now=100.0, burst=20)
    assert (mark, rate) == ((100.0, 20), None)    # the burst is spent: the clock starts here
    assert after_burst(mark, 25, now=100.5, burst=20) == (mark, None)  # under a second of evidence
    assert after_burst(mark, 40, now=102.0, burst=20) == (mark, 10.0)  # 20 rows in 2 s after the burst, not 40


def test_a_resume_shows_the_rate_after_its_own_burst():
    """A resume found 29 rows delivered by the earlier run: they are handled at once but cost no request.
    Counted, they started the clock before this run's burst of 13 (a GCRA burst of 20 less a third), which
    then showed as 14.8 rows/s at a limit of 10/s. The rate counts the rows this run sent, after its burst."""
    def shown(samples):  # (seconds, rows sent) as the progress callback reports them
        mark, rates = None, []
        for now, sent in samples:
            mark, rate = after_burst(mark, sent, now, burst=20)
            if rate is not None:
                rates.append(rate)
        return rates

    limit = 10.0
    this_run = [(0.0, 0), (0.15, 13)] + [(0.15 + i / limit, 13 + i) for i in range(1, 40)]
    assert max(shown([(t, 29 + n) for t, n in this_run])) > 14.0  # earlier rows counted: above the limit
    rates = shown(this_run)
    assert rates and max(rates) <= limit + 1e-9 and rates[-1] == pytest.approx(limit)


def test_a_terminal_gets_a_progress_bar(tmp_path, sink_factory):
    sink = sink_factory()
    master, slave = pty.openpty()
    proc = subprocess.Popen(_deliver_args(_rows(tmp_path / "in.csv", 80), sink.url), stdin=slave, stdout=slave,
                            stderr=slave, env=_env(tmp_path, COLUMNS="160"), close_fds=True)
    os.close(slave)
    screen = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            screen += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    assert proc.wait(timeout=30) == 0
    text = screen.decode("utf-8", "replace")
    assert "delivering" in text and "━" in text and "80/80 rows" in text  # rich's bar, drawn to the end
    assert "x 429" in text and "limit 20.0/s" in text and "ETA" in text
    assert "csv-merger: 80/80 rows (" not in text  # not the plain line


def test_plain_lines_without_a_terminal_and_quiet_keeps_warnings(tmp_path, sink_factory):
    sink = sink_factory()
    path = _rows(tmp_path / "in.csv", 150)  # 150 rows at 20/s: a few plain lines, 5 s apart
    plain = subprocess.run(_deliver_args(path, sink.url), capture_output=True, text=True, timeout=120,
                           env=_env(tmp_path / "a"))
    assert plain.returncode == 0, plain.stderr
    lines = [line for line in plain.stderr.splitlines() if " rows (" in line]
    assert lines and all(line.startswith("csv-merger: ") and ("rows/s" in line or "after the burst" in line)
                         for line in lines)
    assert all(re.search(r", dest [\d,]+ of 50,000", line) for line in lines)  # the destination's lifetime count
    quiet = subprocess.run(_deliver_args(path, sink.url, "-q", "--job-id", "quiet-run"), capture_output=True,
                           text=True, timeout=120, env=_env(tmp_path / "b", CSV_MERGER_ROW_CEILING="100"))
    assert quiet.returncode == 3, quiet.stderr  # 50 rows past the destination's ceiling: not sent
    assert "fewer of its 100 lifetime submissions left than rows to send" in quiet.stderr  # a warning is not progress
    assert " rows (" not in quiet.stderr and "delivered 100/150 rows" in quiet.stdout


def test_destination_counts_in_progress_lines():
    one = [DestinationUse(label="a #1", used=1234, ceiling=50_000)]
    assert destination_parts(one) == ["dest 1,234 of 50,000"]
    two = one + [DestinationUse(label="b #2", used=7, ceiling=0)]
    assert destination_parts(two) == ["dest 1 1,234 of 50,000", "dest 2 7 used"]


@pytest.mark.slow
def test_run_progress_lines_show_the_destinations(tmp_path, sink_factory):
    full, spare = sink_factory(), sink_factory()
    env = _env(tmp_path)
    assert subprocess.run([sys.executable, "-m", "csv_merger", "destinations", "set", full.url, "49990"], env=env,
                          timeout=60).returncode == 0
    done = subprocess.run([sys.executable, "-m", "csv_merger", "run", str(_rows(tmp_path / "in.csv", 120)),
                           "--webhook-url", full.url, "--webhook-url", spare.url, "--allow-private-targets",
                           "--rate", "20", "--burst", "5", "--output-dir", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if " rows (" in line]
    assert any("dest 1 50,000 of 50,000, dest 2 " in line for line in lines), lines
    first = done.stderr.splitlines()[0]  # the job id before any progress, so a stopped run can be resumed
    assert re.fullmatch(r"csv-merger: job id (job-\w+) \(run again with --job-id \1 to resume\)", first), first
    assert full.stats()["accepted"] == 10 and spare.stats()["accepted"] == 110
    assert "50,000 of 50,000 used" in done.stdout and "110 of 50,000 used" in done.stdout
