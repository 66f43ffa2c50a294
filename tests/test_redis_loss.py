"""A Redis that goes away mid-delivery, or comes back without its data (issue 9,
items 6 and 7). Each test starts its own redis-server (csv_merger.testing.RedisServer)
so it can kill it (SIGKILL, as a crash does) and start it again on the same port;
delivery runs as real `csv-merger deliver` / `csv-merger run` processes against a real sink."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest
from test_delivery import deliver_args, env, run, write_rows

from csv_merger.testing import RedisServer


@pytest.fixture
def own_redis(tmp_path):
    """``own_redis(appendonly=False) -> RedisServer``, stopped at test end."""
    servers = []

    def start(**opts) -> RedisServer:
        folder = tmp_path / f"redis{len(servers)}"
        folder.mkdir()
        servers.append(RedisServer(folder, **opts))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def _kill_mid_delivery(server, sink, args, tmp_path, after: int = 60) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(tmp_path))
    sink.wait_accepted(after, proc)
    server.kill()
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def test_a_redis_restarted_empty_refuses_the_resume_until_forced(tmp_path, sink_factory, own_redis):
    server, sink = own_redis(), sink_factory()
    rows = write_rows(tmp_path / "rows.csv", 400)
    args = deliver_args(rows, sink.url, "--rate", 50, "--redis-url", server.url, "--job-id", "lost")
    first = _kill_mid_delivery(server, sink, args, tmp_path)
    assert first.returncode == 4, first.stderr
    assert f"Redis at redis://127.0.0.1:{server.port}/0 keeps no data on disk" in first.stderr  # warned at start
    server.start()  # back, empty: no AOF, no RDB
    sent_before = sink.stats()["received"]

    again = run(args, tmp_path)
    assert again.returncode == 5, again.stderr
    last = again.stderr.strip().splitlines()[-1]
    assert last.startswith("csv-merger: error: Redis at ") and "has no record of job lost" in last
    assert "lost its data" in last and "--force-resend" in last and "Traceback" not in again.stderr
    assert sink.stats()["received"] == sent_before  # nothing sent: no duplicates

    forced = run([*args, "--force-resend"], tmp_path, timeout=120)
    assert forced.returncode == 0, forced.stderr
    assert "--force-resend: sending every row again" in forced.stderr
    stats = sink.stats()
    assert stats["distinct_keys"] == 400 and stats["duplicate_keys"] >= 60  # delivered before: sent again, as asked


def test_with_aof_a_restarted_redis_resumes_with_at_most_concurrency_duplicates(tmp_path, sink_factory, own_redis):
    server, sink = own_redis(appendonly=True), sink_factory()
    rows = write_rows(tmp_path / "rows.csv", 400)
    args = deliver_args(rows, sink.url, "--rate", 50, "--redis-url", server.url, "--job-id", "kept")
    first = _kill_mid_delivery(server, sink, args, tmp_path)
    assert first.returncode == 4, first.stderr
    assert "keeps no data on disk" not in first.stderr
    server.start()  # the AOF brings the ledger and the job's record back
    again = run(args, tmp_path, timeout=120)
    assert again.returncode == 0, again.stderr
    stats = sink.stats()
    assert stats["distinct_keys"] == 400 and stats["duplicate_keys"] <= 8  # concurrency: the at-least-once bound


def test_redis_dying_mid_run_ends_within_seconds_with_counts_and_the_resume_command(tmp_path, sink_factory,
                                                                                    own_redis, prefect_harness):
    import prefect.settings

    server, sink = own_redis(), sink_factory()
    rows = write_rows(tmp_path / "leads.csv", 1000)
    # the harness's API: an ephemeral one per command can time out starting on a loaded machine
    cli_env = {**env(tmp_path), "PREFECT_API_URL": str(prefect.settings.PREFECT_API_URL.value())}
    args = ["run", str(rows), "--webhook-url", sink.url, "--allow-private-targets", "--rate", "25",
            "--redis-url", server.url, "--job-id", "job-r7"]
    proc = subprocess.Popen([sys.executable, "-m", "csv_merger", *args], cwd=tmp_path, env=cli_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sink.wait_accepted(50, proc, timeout=240)
    server.kill()
    killed = time.monotonic()
    out, err = proc.communicate(timeout=180)
    took = time.monotonic() - killed
    assert proc.returncode == 4, err
    assert "Traceback" not in out + err
    errors = [line for line in err.splitlines() if line.startswith("csv-merger: error: ")]
    assert len(errors) == 1, err
    (line,) = errors
    found = re.search(r"delivery stopped after (\d+) rows? (?:was|were) delivered \((\d+) of them not recorded", line)
    assert found, line
    delivered, unrecorded = map(int, found.groups())
    accepted = sink.stats()["accepted"]
    assert accepted - 8 <= delivered <= accepted and 0 <= unrecorded <= 8  # requests in flight at the kill
    assert line.endswith(f"resume with: csv-merger {' '.join(args)}"), line
    assert took < 30, f"{took:.1f} s from Redis death to the message"  # was 37 s (two chunk retries)


def test_the_resume_hint_replaces_the_job_id_and_never_shows_a_redis_password():
    from csv_merger.cli.app import invoked_with, resume_command

    invoked_with[:] = ["run", "a b.csv", "--redis-url", "redis://:s3cret@h:6379/0", "--job-id", "old", "--rate", "5"]
    try:
        assert resume_command("job-1") == ("csv-merger run 'a b.csv' --redis-url 'redis://:***@h:6379/0' --rate 5"
                                           " --job-id job-1")
    finally:
        invoked_with.clear()
