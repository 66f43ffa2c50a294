"""The destination ledger: a webhook's lifetime ceiling counted across jobs
and processes (Redis or the local database), never passed, and shown.
Real sink, real CLI processes, real redis-server."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from csv_merger.testing import write_merged_csv



def _merged(path: Path, n: int, start: int = 1) -> Path:
    return write_merged_csv(path, ({"First Name": f"Ann{i}", "Work Email": f"ann{i}@acme.example"}
                                   for i in range(start, start + n)))


def _cli(env: dict, *args: str, wait: bool = True):
    cmd = [sys.executable, "-m", "csv_merger", *args]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)


def test_a_destination_stops_at_its_ceiling_across_jobs(store_env, tmp_path, sink_factory):
    sink = sink_factory()
    assert _cli(store_env, "destinations", "set", sink.url, "49990").returncode == 0
    first = _cli(store_env, "deliver", str(_merged(tmp_path / "a.csv", 30)), "--webhook-url", sink.url,
                 "--allow-private-targets", "--job-id", "a", "--dead-letter", str(tmp_path / "dead-letter-a.csv"))
    assert first.returncode == 3, first.stderr
    assert sink.stats()["accepted"] == 10  # 49,990 + 10 = the ceiling, not one more
    assert "fewer of its 50,000 lifetime submissions left than rows to send" in first.stderr
    assert "delivered 10/30 rows, 20 failed" in first.stdout and "50,000 of 50,000 used" in first.stdout
    with open(tmp_path / "dead-letter-a.csv", newline="", encoding="utf-8") as f:
        dead = list(csv.DictReader(f))
    assert len(dead) == 20 and {d["_status"] for d in dead} == {"not-sent"}
    assert all("is full (50,000 submissions" in d["_reason"] for d in dead)

    second = _cli(store_env, "deliver", str(_merged(tmp_path / "b.csv", 5, start=100)), "--webhook-url", sink.url,
                  "--allow-private-targets", "--job-id", "b")
    assert second.returncode == 3 and sink.stats()["accepted"] == 10  # another job: still full

    other = sink_factory()  # roll over by hand: the failed rows to a second webhook, same keys
    moved = _cli(store_env, "redeliver", str(tmp_path / "dead-letter-a.csv"), "--webhook-url", other.url,
                 "--allow-private-targets", "--dead-letter", str(tmp_path / "dl2.csv"))
    assert moved.returncode == 0, moved.stderr
    assert other.stats()["accepted"] == 20 and "20 of 50,000 used" in moved.stdout
    listed = _cli(store_env, "destinations", "list").stdout
    assert "50,000 of 50,000 used" in listed and "20 of 50,000 used" in listed
    assert sink.url not in listed and "/hook" not in listed  # the URL is a credential: only its hash is kept


def test_concurrent_jobs_never_pass_the_ceiling(tmp_path, sink_factory, redis_url):
    env = {**os.environ, "CSV_MERGER_DATA_DIR": str(tmp_path / "data"), "REDIS_URL": redis_url}
    sink = sink_factory()
    assert _cli(env, "destinations", "set", sink.url, "49985").returncode == 0
    procs = [_cli(env, "deliver", str(_merged(tmp_path / f"p{n}.csv", 20, start=100 * n)), "--webhook-url",
                  sink.url, "--allow-private-targets", "--job-id", f"p{n}", "--rate", "100", "--burst", "100",
                  wait=False) for n in range(3)]
    for proc in procs:
        proc.communicate(timeout=180)
    assert sink.stats()["accepted"] == 15  # 60 rows offered by three processes, 15 left
    assert "50,000 of 50,000 used" in _cli(env, "destinations", "list").stdout


def test_rows_the_target_refuses_do_not_count(store_env, tmp_path, sink_factory):
    sink = sink_factory(reject_field="First Name=Ann2")
    done = _cli(store_env, "deliver", str(_merged(tmp_path / "a.csv", 3)), "--webhook-url", sink.url,
                "--allow-private-targets", "--job-id", "r")
    assert done.returncode == 3
    assert "2 of 50,000 used" in done.stdout  # the refused row gave its reservation back
    assert "count forgotten, 2 lead identities forgotten" in _cli(store_env, "destinations", "forget", sink.url).stdout
    assert "no destination recorded yet" in _cli(store_env, "destinations", "list").stdout


def test_a_stopped_job_gives_back_what_it_never_sent(tmp_path, sink_factory):
    """Rows waiting for the limiter when the job is stopped were reserved, never sent: released."""
    import signal

    env = {**os.environ, "CSV_MERGER_DATA_DIR": str(tmp_path / "data")}
    sink = sink_factory()
    proc = _cli(env, "deliver", str(_merged(tmp_path / "a.csv", 200)), "--webhook-url", sink.url,
                "--allow-private-targets", "--job-id", "stop", "--rate", "10", "--burst", "2", wait=False)
    sink.wait_accepted(15, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    accepted = sink.stats()["accepted"]
    assert f"{accepted} of 50,000 used" in out and f"{accepted} of 50,000 used" in _cli(env, "destinations", "list").stdout


def test_rollover_to_the_next_destination_never_passes_a_ceiling(store_env, tmp_path, sink_factory):
    """Issue 13's acceptance: a destination at 49,990 of 50,000, a second one after it: 10 rows
    go to the first, the rest roll over, none past the ceiling, every row delivered once overall."""
    full, spare = sink_factory(), sink_factory()
    assert _cli(store_env, "destinations", "set", full.url, "49990").returncode == 0
    done = _cli(store_env, "deliver", str(_merged(tmp_path / "a.csv", 40)), "--webhook-url", full.url,
                "--webhook-url", spare.url, "--allow-private-targets", "--job-id", "roll", "--rate", "100",
                "--burst", "50", "--concurrency", "8")
    assert done.returncode == 0, done.stderr
    assert full.stats()["accepted"] == 10 and spare.stats()["accepted"] == 30
    sent = [r["body"]["Work Email"] for r in full.records() + spare.records()]
    assert sorted(sent) == sorted(f"ann{i}@acme.example" for i in range(1, 41))  # each row once overall
    assert "delivered 40/40 rows, 0 failed" in done.stdout
    assert "50,000 of 50,000 used" in done.stdout and "30 of 50,000 used" in done.stdout
    again = _cli(store_env, "deliver", str(_merged(tmp_path / "b.csv", 5, start=100)), "--webhook-url", full.url,
                 "--webhook-url", spare.url, "--allow-private-targets", "--job-id", "roll2")
    assert again.returncode == 0 and full.stats()["accepted"] == 10 and spare.stats()["accepted"] == 35


def test_a_lead_at_any_destination_of_the_job_is_skipped(store_env, tmp_path, sink_factory):
    first, second = sink_factory(), sink_factory()
    assert _cli(store_env, "deliver", str(_merged(tmp_path / "a.csv", 5)), "--webhook-url", second.url,
                "--allow-private-targets", "--job-id", "one").returncode == 0
    both = _cli(store_env, "deliver", str(_merged(tmp_path / "b.csv", 8)), "--webhook-url", first.url,
                "--webhook-url", second.url, "--allow-private-targets", "--job-id", "two")
    assert both.returncode == 0, both.stderr
    assert first.stats()["accepted"] == 3 and "skipped 5 already at the destination" in both.stdout


def test_destinations_set_refuses_a_non_http_url_and_warns_above_the_ceiling(store_env, sink_factory):
    bad = _cli(store_env, "destinations", "set", "ftp://example.com/hook", "10")
    assert bad.returncode == 2 and "not an http(s) URL" in bad.stderr
    over = _cli(store_env, "destinations", "set", sink_factory().url, "60000")
    assert over.returncode == 0 and "above the ceiling of 50,000" in over.stderr


def test_concurrent_jobs_rolling_over_never_pass_either_ceiling(tmp_path, sink_factory, redis_url):
    env = {**os.environ, "CSV_MERGER_DATA_DIR": str(tmp_path / "data"), "REDIS_URL": redis_url}
    full, spare = sink_factory(), sink_factory()
    assert _cli(env, "destinations", "set", full.url, "49985").returncode == 0
    assert _cli(env, "destinations", "set", spare.url, "49980").returncode == 0
    procs = [_cli(env, "deliver", str(_merged(tmp_path / f"p{n}.csv", 20, start=100 * n)), "--webhook-url",
                  full.url, "--webhook-url", spare.url, "--allow-private-targets", "--job-id", f"r{n}",
                  "--rate", "100", "--burst", "100", wait=False) for n in range(3)]
    for proc in procs:
        proc.communicate(timeout=180)
    assert full.stats()["accepted"] == 15 and spare.stats()["accepted"] == 20  # 60 rows offered, 35 left in all
    assert _cli(env, "destinations", "list").stdout.count("50,000 of 50,000 used") == 2


def test_spellings_of_one_webhook_are_one_destination():
    """Each spelling was a new destination with its own 50,000 and its own lead index, so every lead went
    again; path and query still tell webhooks apart, and an already canonical URL keeps its stored id."""
    import hashlib

    from tasks.deliver.destinations import destination_id

    url = "https://api.clay.com/v3/sources/webhook/pull-in-data-from-a-webhook-abc?token=x"
    same = [url, f"  {url} ", url.replace("https://api.clay.com", "HTTPS://API.Clay.com"),
            url.replace("api.clay.com", "api.clay.com:443"), url + "#section",
            "https://api.clay.com/v3/sources/webhook/pull-in-data-from-a-webhook-abc?token=x#"]
    assert {destination_id(u) for u in same} == {hashlib.sha256(url.encode()).hexdigest()[:24]}
    assert destination_id("http://127.0.0.1:8000/a?") == destination_id("http://127.0.0.1:8000/a")
    others = [url.replace("token=x", "token=X"), url.replace("/v3/", "//v3/"), url.replace("https", "http"),
              url.replace("api.clay.com", "api.clay.com:8443")]
    assert len({destination_id(u) for u in [url, *others]}) == 5
