"""The merge-and-deliver flow on Prefect's real engine, against a real sink (and real Redis).

The bundled examples hold 111 rows of 80 distinct people (examples/README.md).
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from flows.merge_and_deliver import merge_and_deliver, summary_of
from tasks.artifacts import artifact_key
from tasks.deliver import read_merged_csv
from tasks.summary import PipelineIncomplete

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(str(p) for p in (REPO / "examples").glob("*.csv"))

pytestmark = pytest.mark.usefixtures("prefect_harness", "data_dir")


def _artifact(kind: str, job_id: str):
    """The latest artifact of that kind for the job (None if there is none)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[artifact_key(kind, job_id)])),
                                      sort=ArtifactSort.CREATED_DESC, limit=1)
    return found[0] if found else None


def _payload(row: dict[str, str]) -> str:
    """The flat payload of a merged row (empty cells omitted), canonically serialised."""
    return json.dumps({k: v for k, v in row.items() if v}, sort_keys=True)


def _run(sink, tmp_path, **kw):
    opts = dict(webhook_url=sink.url, chunk_size=25, rate_limit=200.0, burst=50, output_dir=str(tmp_path),
                allow_private_targets=True)
    return merge_and_deliver(EXAMPLES, **{**opts, **kw})


def test_examples_end_to_end_every_row_once_with_artifacts(sink_factory, tmp_path):
    sink = sink_factory(rate=400, burst=100)
    summary = _run(sink, tmp_path)

    merged = [row for _, row in read_merged_csv(summary.merged_csv)]
    assert (summary.report.rows_in, summary.report.rows_out, len(merged)) == (111, 80, 80)
    assert summary.state == "Completed" and summary.chunks == 4 and summary.dead_letter_path is None
    d = summary.delivery
    assert (d.delivered, d.failed, d.skipped_already_delivered, d.rows_total) == (80, 0, 0, 80)
    stats = sink.stats()
    assert (stats["accepted"], stats["distinct_keys"], stats["duplicate_keys"]) == (80, 80, 0)
    bodies = [r["body"] for r in sink.records()]
    assert sorted(json.dumps(b, sort_keys=True) for b in bodies) == sorted(_payload(r) for r in merged)
    zips = {b["Work Email"]: b.get("Company Postal Code") for b in bodies if "Work Email" in b}
    assert zips["maria.lopez@acme.io"] == "02134"  # leading zero kept end to end
    assert any(b.get("startedRole") == "May 2021" for b in bodies)

    table = _artifact("merge-report", summary.job_id)
    rows = json.loads(table.data)
    assert sorted((Path(r["file"]).name, r["rows"]) for r in rows) == [
        ("apollo_export.csv", 41), ("hubspot_contacts.csv", 35), ("salesnav_scrape.csv", 35)]
    assert {r["encoding"] for r in rows if r["file"].endswith("hubspot_contacts.csv")} == {"cp1252"}
    assert _artifact("delivery-progress", summary.job_id).data == 100.0
    markdown = _artifact("job-summary", summary.job_id).data
    assert "| 80 | 0 | 0 | 0 |" in markdown and "Completed" in markdown


def test_progress_artifact_is_monotonic_and_100_only_when_finished():
    from prefect import flow

    from tasks.artifacts import DeliveryProgress

    key = f"progress-{time.monotonic_ns()}"

    def shown() -> float:
        time.sleep(0.3)  # a few pushes of the 0.05 s pump
        return _artifact("delivery-progress", key).data

    @flow
    def feed() -> list[float]:
        progress = DeliveryProgress(key, rows_total=10, interval_s=0.05)
        progress.set_chunk(0, 5)
        seen = [shown()]
        progress.set_chunk(0, 3)  # a late, lower report never moves it back
        seen.append(shown())
        progress.set_chunk(1, 5)  # every row handled, but the run is not over
        seen.append(shown())
        seen += [progress.finish(complete=False), shown()]
        done = DeliveryProgress(key + "-done", rows_total=4, interval_s=0.05)
        done.set_chunk(0, 4)
        return seen + [done.finish(complete=True)]

    assert feed() == [50.0, 50.0, 99.9, 99.9, 99.9, 100.0]


def test_live_progress_file_has_429s_and_the_limiters_rate(tmp_path):
    """What the web page reads while a job runs: 429s and the lowest rate of the running chunks."""
    from prefect import flow

    from tasks.artifacts import DeliveryProgress

    live = tmp_path / "delivery-progress.json"

    def read() -> dict:
        time.sleep(0.3)  # a few writes of the 0.05 s pump
        return json.loads(live.read_text(encoding="utf-8"))

    @flow
    def feed() -> list[dict]:
        progress = DeliveryProgress(f"live-{time.monotonic_ns()}", rows_total=10, interval_s=0.05, live_path=live)
        progress.set_chunk(0, 3, http_429=2, current_rate=5.0)
        progress.set_chunk(1, 2, http_429=1, current_rate=7.5)
        seen = [read()]
        progress.set_chunk(0, 5, http_429=2, current_rate=None)  # chunk 0 done: its limiter is gone
        seen.append(read())
        progress.set_chunk(1, 5, http_429=1, current_rate=None)
        progress.finish(complete=True)
        return seen + [json.loads(live.read_text(encoding="utf-8"))]

    assert feed() == [{"handled": 5, "rows_total": 10, "http_429": 3, "current_rate": 5.0},
                      {"handled": 7, "rows_total": 10, "http_429": 3, "current_rate": 7.5},
                      {"handled": 10, "rows_total": 10, "http_429": 3, "current_rate": None}]


def test_without_webhook_it_only_merges(tmp_path):
    summary = merge_and_deliver(EXAMPLES, output_dir=str(tmp_path))
    assert summary.delivery is None and summary.state == "Completed"
    assert Path(summary.merged_csv) == tmp_path / "merged.csv"
    assert sum(1 for _ in read_merged_csv(summary.merged_csv)) == 80
    assert json.loads((tmp_path / "merge-report.json").read_text())["rows_out"] == 80


def test_delivered_values_stay_exact_while_merge_only_output_is_neutralised(sink_factory, tmp_path):
    leads = tmp_path / "leads.csv"
    leads.write_text("Email,Twitter,Notes\nada@analytical.example,@ada,=HYPERLINK(\"x\")\n", encoding="utf-8")
    sink = sink_factory(rate=400, burst=100)
    delivered = merge_and_deliver([str(leads)], webhook_url=sink.url, output_dir=str(tmp_path / "d"),
                                  allow_private_targets=True)
    assert delivered.delivery.delivered == 1
    body = sink.records()[0]["body"]
    assert (body["Twitter"], body["Notes"]) == ("@ada", '=HYPERLINK("x")')
    merged_only = merge_and_deliver([str(leads)], output_dir=str(tmp_path / "m"))
    [(_, row)] = read_merged_csv(merged_only.merged_csv)
    assert (row["Twitter"], row["Notes"]) == ("'@ada", '\'=HYPERLINK("x")')


def test_running_the_same_job_again_resumes_through_redis(sink_factory, tmp_path, redis_url):
    sink = sink_factory(rate=400, burst=100)
    first = _run(sink, tmp_path / "1", redis_url=redis_url)
    again = _run(sink, tmp_path / "2", redis_url=redis_url)
    assert again.job_id == first.job_id  # derived from the merged rows + URL, not random
    assert (again.delivery.delivered, again.delivery.skipped_already_delivered) == (0, 80)
    assert sink.stats()["accepted"] == 80


def test_resume_after_a_run_that_failed_midway(sink_factory, tmp_path, redis_url):
    picky = sink_factory(rate=400, burst=100, reject_field="Company Name=DataForge", reject_status=400)
    state = _run(picky, tmp_path / "1", redis_url=redis_url, job_id="job-resume", return_state=True)
    assert state.is_failed()
    with pytest.raises(PipelineIncomplete):
        state.result()
    first = summary_of(state)
    dataforge = [r for _, r in read_merged_csv(first.merged_csv) if r["Company Name"] == "DataForge"]
    assert first.state == "Failed" and len(dataforge) == 8
    assert (first.delivery.delivered, first.delivery.failed) == (72, 8)
    with open(first.dead_letter_path, newline="", encoding="utf-8") as fh:
        dead = list(csv.DictReader(fh))
    assert sorted(r["Work Email"] for r in dead) == sorted(r["Work Email"] for r in dataforge)

    healthy = sink_factory(rate=400, burst=100)
    second = _run(healthy, tmp_path / "2", redis_url=redis_url, job_id="job-resume")
    assert second.state == "Completed"
    assert (second.delivery.delivered, second.delivery.skipped_already_delivered) == (8, 72)
    assert {r["body"]["Company Name"] for r in healthy.records()} == {"DataForge"}
    keys = [r["key"] for r in picky.records()] + [r["key"] for r in healthy.records()]
    assert len(keys) == len(set(keys)) == 80  # every row once over both runs


def _flow_run_id(name: str, timeout: float = 30.0):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))
            if runs:
                return runs[0].id
            time.sleep(0.2)
    raise AssertionError(f"flow run {name} not found")


def _wait_accepted(sink, n: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while sink.stats()["accepted"] < n:
        assert time.monotonic() < deadline, f"sink got fewer than {n} rows in {timeout}s"
        time.sleep(0.1)


def test_cancel_mid_run_stops_requests_and_ends_cancelled(sink_factory, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling

    sink = sink_factory(rate=10, burst=10)
    name = f"cancel-{os.getpid()}-{time.monotonic_ns()}"
    states = []
    runner = threading.Thread(target=lambda: states.append(merge_and_deliver.with_options(flow_run_name=name)(
        EXAMPLES, webhook_url=sink.url, chunk_size=20, rate_limit=10.0, burst=10, output_dir=str(tmp_path),
        allow_private_targets=True, return_state=True)))
    runner.start()
    _wait_accepted(sink, 15)
    with get_client(sync_client=True) as client:  # what Cancel in the UI / `prefect flow-run cancel` does
        client.set_flow_run_state(_flow_run_id(name), Cancelling())
    cancelled_at = time.time()
    runner.join(timeout=60)
    assert not runner.is_alive()

    (state,) = states
    assert state.is_cancelled()
    summary = summary_of(state)
    accepted = sink.stats()["accepted"]
    assert summary.state == "Cancelled" and summary.delivery.cancelled
    assert summary.delivery.delivered == accepted and 15 <= accepted < 80  # counts as of the cancel, exact
    assert max(r["t"] for r in sink.records()) <= cancelled_at + 2.0  # no new request 2 s after the cancel
    assert _artifact("delivery-progress", summary.job_id).data < 100.0


def _cli(args, tmp_path, **popen):
    env = {**os.environ, "CSV_MERGER_DATA_DIR": str(tmp_path / "data")}
    env.pop("PREFECT_API_URL", None)  # the CLI's own ephemeral API, as a user gets it
    return subprocess.Popen([sys.executable, "-m", "csv_merger", "run", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def test_cli_run_exit_3_with_dead_letters_and_clean_output(sink_factory, tmp_path):
    sink = sink_factory(rate=400, burst=100, reject_field="Company Name=IBM")
    proc = _cli([*EXAMPLES, "--webhook-url", sink.url, "--allow-private-targets", "--rate", "200",
                 "-o", str(tmp_path / "out.csv")], tmp_path)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 3, err
    assert "Traceback" not in out + err and "temporary server" not in err
    assert "80 rows merged from 111; 72 delivered, 8 failed" in out
    assert "csv-merger: error: 8 of 80 rows dead-lettered" in err
    assert sum(1 for _ in read_merged_csv(tmp_path / "out.csv")) == 80


def test_cli_bad_input_is_one_line_without_traceback(tmp_path):
    (tmp_path / "photo.csv").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    proc = _cli([str(tmp_path / "photo.csv"), *EXAMPLES], tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert err.strip().splitlines() == [f"csv-merger: error: {tmp_path / 'photo.csv'}: looks like a PNG image, "
                                        "not CSV: give the CSV file itself"]  # "upload" is the web page's word
    assert out == "" and not list((tmp_path / "data").rglob("merged.csv"))  # nothing merged, nothing sent



def test_cli_run_reads_a_file_given_twice_once_and_warns(tmp_path):
    """``run a.csv ./a.csv`` (merge only): one read, one warning naming the file, as ``merge`` gives."""
    src = tmp_path / "a.csv"
    src.write_text("First Name,Email\nAnn,ann@acme.example\nBob,bob@beta.example\n")
    proc = _cli(["a.csv", "./a.csv", "--output-dir", str(tmp_path / "out")], tmp_path)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert [line for line in err.splitlines() if "warning" in line] == [
        "csv-merger: warning: a.csv: given twice: read once"]
    assert "2 rows merged from 2 [Completed]" in out

def test_cli_run_refuses_a_quote_never_closed_and_delivers_nothing(sink_factory, tmp_path):
    """A quote never closed swallowed Bob and Cid into Ann's record: ``run`` refuses the file (as
    ``merge`` does) instead of delivering that one garbage record."""
    sink = sink_factory()
    src = tmp_path / "unclosed.csv"
    src.write_text('Name,Email,Company\n"Ann,ann@x.com,Acme\nBob,bob@x.com,Beta\nCid,cid@x.com,Gamma\n')
    proc = _cli([str(src), "--output-dir", str(tmp_path / "out"), "--webhook-url", sink.url,
                 "--allow-private-targets"], tmp_path)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 1, err
    assert err.strip().splitlines() == [
        f"csv-merger: error: {src}, line 2: a quote opened on this line is never closed: lines 2-4 (to the end "
        "of the file) were read as one record; close that quote or remove it, then try again"]
    assert out == "" and not list(tmp_path.rglob("merged.csv")) and sink.stats()["received"] == 0


def test_cli_run_refuses_inputs_without_a_data_row_and_delivers_nothing(sink_factory, tmp_path):
    """Header-only and empty inputs and nothing else: exit 1, one line naming each file and why (as
    ``merge``; the web page answers 422 alike), not a "Completed" job of 0 rows."""
    sink = sink_factory()
    header, empty = tmp_path / "header.csv", tmp_path / "empty.csv"
    header.write_text("First Name,Email\n")
    empty.write_bytes(b"\xef\xbb\xbf")
    proc = _cli([str(header), str(empty), "--output-dir", str(tmp_path / "out"), "--webhook-url", sink.url,
                 "--allow-private-targets"], tmp_path)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 1, err
    assert err.strip().splitlines() == [
        f"csv-merger: error: {header}, {empty}: no input holds a record ({header}: no data rows: only a header; "
        f"{empty}: empty file): nothing to merge"]
    assert out == "" and not list(tmp_path.rglob("merged.csv")) and sink.stats()["received"] == 0


@pytest.mark.slow
def test_demo_quick_start_delivers_the_examples_to_its_own_sink(tmp_path):
    env = {**os.environ, "CSV_MERGER_DATA_DIR": str(tmp_path / "data")}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run([sys.executable, "-m", "csv_merger", "demo", "--output-dir", str(tmp_path / "demo")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "80 rows merged from 111; 80 delivered, 0 failed" in done.stdout
    assert "received 80 rows (80 distinct idempotency keys, 0 x 429)" in done.stdout
    assert f"merged CSV:   {tmp_path / 'demo' / 'merged.csv'}" in done.stdout and "Traceback" not in done.stderr
    assert len((tmp_path / "demo" / "sink-received.jsonl").read_text().splitlines()) == 80
    # demo has no --job-id (its sink lives for one run): the job id comes with no hint to resume with one
    assert re.search(r"^  job id:       job-\w+$", done.stdout, re.MULTILINE) and "--job-id" not in done.stdout + done.stderr


def test_redis_and_token_come_from_prefect_blocks(redis_url, monkeypatch):
    from prefect.blocks.system import Secret
    from prefect_redis import RedisDatabase

    from csv_merger.settings import get_settings
    from tasks.stages import resolve_auth_token, resolve_redis_url

    suffix = time.monotonic_ns()
    RedisDatabase.from_connection_string(redis_url).save(f"redis-{suffix}", overwrite=True)
    Secret(value="s3cret-token").save(f"auth-{suffix}", overwrite=True)
    for name in ("REDIS_URL", "CSV_MERGER_REDIS_URL", "CLAY_WEBHOOK_AUTH", "CSV_MERGER_AUTH_BLOCK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CSV_MERGER_REDIS_BLOCK", f"redis-{suffix}")
    get_settings.cache_clear()
    try:
        assert resolve_redis_url(None) == redis_url
        assert resolve_redis_url("redis://elsewhere:6379/1") == "redis://elsewhere:6379/1"  # explicit wins
        assert resolve_auth_token(f"auth-{suffix}") == "s3cret-token"
        assert resolve_auth_token(None) is None
    finally:
        get_settings.cache_clear()


@pytest.mark.slow
def test_python_api_call_is_clean_and_sends_no_telemetry(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DO_NOT_TRACK", "PREFECT_SERVER_ANALYTICS_ENABLED", "PREFECT_API_URL")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), CSV_MERGER_DATA_DIR=str(tmp_path / "data"))
    code = ("from flows.merge_and_deliver import merge_and_deliver\n"
            f"s = merge_and_deliver({EXAMPLES!r}, output_dir={str(tmp_path / 'out')!r})\n"
            "print('rows_out', s.report.rows_out)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "rows_out 80" in proc.stdout
    assert "telemetry" not in (proc.stdout + proc.stderr).lower() and "Traceback" not in proc.stderr


def test_a_target_refusing_every_row_fails_the_run_without_chunk_retries(sink_factory, tmp_path):
    sink = sink_factory(rate=400, burst=100, auth_token="right-token")  # we send none: 401 for every row
    state = _run(sink, tmp_path, chunk_size=100, return_state=True)
    assert state.is_failed()
    received = sink.stats()["received"]
    assert 10 <= received <= 10 + 8  # stopped after 10 refusals (+ requests in flight), never retried


def test_a_target_never_reached_fails_the_run_with_the_reason_not_a_hang(tmp_path, free_port, monkeypatch):
    from csv_merger.settings import get_settings
    from tasks.deliver import TargetRefusedError

    monkeypatch.setenv("CSV_MERGER_UNREACHABLE_STOP_S", "3")  # default 60 s
    get_settings.cache_clear()
    try:
        started = time.monotonic()
        state = merge_and_deliver(EXAMPLES, webhook_url=f"http://127.0.0.1:{free_port}/hook", chunk_size=25,
                                  output_dir=str(tmp_path), allow_private_targets=True, return_state=True)
        took = time.monotonic() - started
    finally:
        get_settings.cache_clear()
    assert state.is_failed() and took < 3 + 30, took  # not the 600 s outage budget, no chunk retries
    with pytest.raises(TargetRefusedError) as stopped:
        summary_of(state)
    reason = f"stopped: could not connect to 127.0.0.1:{free_port} for 3 s (connection refused)"
    assert str(stopped.value).startswith(reason) and "check the webhook URL" in str(stopped.value)
    assert stopped.value.summary.stopped_reason == str(stopped.value) and stopped.value.summary.delivered == 0
    assert reason in state.message


def test_cli_run_keeps_the_redis_password_out_of_the_prefect_database(sink_factory, tmp_path):
    """Issue 9 item 9: `csv-merger run --redis-url redis://:PASSWORD@...` stores no password
    (flow-run parameters, logs, artifacts) in the Prefect database the run used."""
    import secrets

    from conftest import prefect_database_text

    from csv_merger.testing import RedisServer

    password = "pw-" + secrets.token_hex(8)
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis", password=password)
    try:
        sink = sink_factory(rate=400, burst=100)
        import prefect.settings

        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # the harness's API and database
        env.update(CSV_MERGER_DATA_DIR=str(tmp_path / "data"),
                   PREFECT_API_URL=str(prefect.settings.PREFECT_API_URL.value()))
        proc = subprocess.Popen([sys.executable, "-m", "csv_merger", "run", *EXAMPLES, "--webhook-url", sink.url,
                                 "--allow-private-targets", "--rate", "200", "--redis-url", server.url,
                                 "--summary", str(tmp_path / "summary.json")], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        assert sink.stats()["accepted"] == 80
        import redis

        assert redis.Redis.from_url(server.url).keys("csv-merger:ledger:*"), "the run used the Redis ledger"
    finally:
        server.stop()
    stored = prefect_database_text()
    assert "merge-and-deliver" in stored  # the database the run used
    assert password not in stored
    assert password not in out + err + (tmp_path / "summary.json").read_text()
    assert not [p for p in (tmp_path / "data").rglob("*") if p.is_file() and password.encode() in p.read_bytes()]


@pytest.mark.parametrize("store", ["local", "redis"])
@pytest.mark.slow
def test_a_400_chunk_job_is_a_few_consumer_task_runs_and_every_row_once(sink_factory, tmp_path, redis_url, store):
    """Issue 10: chunks are pulled by long-lived consumers, so task runs do not grow with chunks."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    people = tmp_path / "people.csv"
    people.write_text("Email,First Name\n" + "".join(f"p{i}@lead{i}.example,P{i}\n" for i in range(4000)))
    sink = sink_factory(rate=100_000, burst=10_000)
    summary = merge_and_deliver([str(people)], webhook_url=sink.url, chunk_size=10, rate_limit=100_000.0,
                                burst=10_000, output_dir=str(tmp_path / "out"), allow_private_targets=True,
                                redis_url=redis_url if store == "redis" else None)
    assert summary.state == "Completed" and summary.chunks == 400
    assert summary.delivery.delivered == 4000 and summary.delivery.failed == 0
    assert [c.chunk for c in summary.per_chunk] == list(range(400))
    assert sum(c.delivered for c in summary.per_chunk) == 4000
    assert summary.per_chunk[7].model_dump() == dict(chunk=7, first_row=71, last_row=80, delivered=10, failed=0,
                                                     skipped=0, http_429=0)
    stats = sink.stats()
    assert (stats["accepted"], stats["distinct_keys"], stats["duplicate_keys"]) == (4000, 4000, 0)
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[summary.flow_run_id])))
    names = sorted(r.name.rsplit("-", 1)[0] if r.name.startswith(("chunk", "merge", "queue")) else r.name
                   for r in runs)
    assert names == ["chunk", "consumer-1", "consumer-2", "consumer-3", "consumer-4", "merge", "queue-chunks"], names
