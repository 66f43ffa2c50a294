"""One delivery of a job at a time: a second deliver or run of a job that is still sending is refused
(it would find the same rows missing from the ledger and send them again), locally and on Redis."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest
from test_delivery import deliver_args, env, run, write_rows

pytestmark = pytest.mark.timeout(240)

BUSY = re.compile(r"csv-merger: error: job (\S+) is already being delivered \((.+) pid (\d+) since [\d:]+\): a second "
                  r"delivery would send its rows twice; wait for it or stop it, then run again to resume(.*)")


@pytest.mark.parametrize("second", ["local", "Redis, another machine", "no Redis, same machine"])
def test_a_second_deliver_of_a_running_job_is_refused_and_nothing_is_sent_twice(tmp_path, sink_factory, second,
                                                                                redis_url):
    """The first delivery uses Redis unless both are local. "Another machine" shares only Redis (its own data
    folder); "no Redis, same machine" is a shell without REDIS_URL beside a service with it."""
    sink = sink_factory()
    rows = write_rows(tmp_path / "rows.csv", 120)
    args = deliver_args(rows, sink.url, "--rate", 20, "--burst", 5)
    with_redis = [] if second == "local" else ["--redis-url", redis_url]
    first = subprocess.Popen([*args, *with_redis], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env(tmp_path))
    try:
        sink.wait_accepted(10, first)
        if second == "Redis, another machine":
            refused = subprocess.run([*args, *with_redis], capture_output=True, text=True, timeout=60,
                                     env={**env(tmp_path), "CSV_MERGER_DATA_DIR": str(tmp_path / "other-machine")})
        else:
            refused = run(args, tmp_path)
        assert refused.returncode == 5, refused.stderr
        [line] = refused.stderr.strip().splitlines()  # refused before its job id is printed
        busy = BUSY.fullmatch(line)
        assert busy, line
        assert int(busy[3]) == first.pid
        assert busy[4] == (" (if that process is gone, its lock expires within 20 s)"
                           if second == "Redis, another machine" else "")
        out, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    stats = sink.stats()
    assert (stats["accepted"], stats["distinct_keys"], stats["duplicate_keys"]) == (120, 120, 0)
    again = run([*args, *with_redis], tmp_path)  # the lock was released: the job resumes and skips every row
    assert again.returncode == 0, again.stderr
    assert "skipped (already delivered)" in again.stdout and sink.stats()["accepted"] == 120


def test_a_killed_holder_frees_the_job(tmp_path, sink_factory):
    """SIGKILL runs no clean-up: the kernel drops the local lock with the process, so the resume starts at once."""
    sink = sink_factory()
    rows = write_rows(tmp_path / "rows.csv", 120)
    args = deliver_args(rows, sink.url, "--rate", 20, "--burst", 5, "--job-id", "killed")
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(tmp_path))
    sink.wait_accepted(10, first)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    resumed = run([*args, "--rate", "200", "--burst", "50"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert set(r["key"] for r in sink.records()) == {f"killed-{n}" for n in range(1, 121)}


def test_a_second_run_of_a_job_still_delivering_is_refused(tmp_path, sink_factory):
    """The flow run that queues the chunks holds the job (its consumers share it on purpose)."""
    sink = sink_factory()
    rows = write_rows(tmp_path / "rows.csv", 120)
    args = [sys.executable, "-m", "csv_merger", "run", str(rows), "--webhook-url", sink.url, "--allow-private-targets",
            "--rate", "10", "--burst", "5", "--job-id", "twice"]
    first = subprocess.Popen([*args, "--output-dir", str(tmp_path / "one")], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env(tmp_path))
    try:
        sink.wait_accepted(10, first)
        second = run([*args, "--output-dir", str(tmp_path / "two")], tmp_path, timeout=180)
        assert second.returncode == 5, second.stderr
        assert any(BUSY.fullmatch(line) for line in second.stderr.splitlines()), second.stderr
        assert "Traceback" not in second.stderr
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert sink.stats()["duplicate_keys"] == 0
