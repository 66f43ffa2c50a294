"""Acceptance of `csv-merger deliver` (issue 3): real processes, a real
redis-server, a real sink on 127.0.0.1. The shared-pacing test takes ~40 s
by design: it is the product's core promise (800 rows at 20/s)."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis
from conftest import REPO

from csv_merger.testing import find_free_port, wait_for_port, write_merged_csv

CLI = str(REPO / ".venv" / "bin" / "csv-merger") if (REPO / ".venv" / "bin" / "csv-merger").exists() \
    else shutil.which("csv-merger")


def write_rows(path: Path, count: int, *, start: int = 1, prefix: str = "p") -> Path:
    return write_merged_csv(path, ({"First Name": f"First{i}", "Last Name": f"Last{i}",
                                    "Work Email": f"{prefix}{i}@example.com", "Company Name": f"Company {i}",
                                    "Notes": f'note "{i}"'} for i in range(start, start + count)), kept=["Notes"])


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CLAY_WEBHOOK_AUTH")}
    e.update(CSV_MERGER_DATA_DIR=str(tmp_path / "data"), **extra)
    return e


def deliver_args(in_csv: Path, url: str, *extra) -> list[str]:
    return [CLI, "deliver", str(in_csv), "--webhook-url", url, "--allow-private-targets", *map(str, extra)]


def run(args: list[str], tmp_path: Path, timeout: float = 60, **extra_env) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env(tmp_path, **extra_env))


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.rate_measured
def test_shared_pacing_four_processes_one_redis(tmp_path, sink_factory, redis_url):
    """1. Four processes, one limit key, sink strict at 20/s burst 20: all
    800 rows delivered, <= 0.5% 429s, and the sink's record shows them paced
    at the shared rate after the burst (exact figures: bench/deliver.py)."""
    sink = sink_factory(rate=20, burst=20)
    files = [write_rows(tmp_path / f"q{q}.csv", 200, start=q * 200 + 1) for q in range(4)]
    procs = [subprocess.Popen(deliver_args(f, sink.url, "--rate", 20, "--burst", 20, "--redis-url", redis_url,
                                           "--limit-key", "shared-pacing", "--summary", f.with_suffix(".json")),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(tmp_path))
             for f in files]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outs
    stats = sink.stats()
    assert stats["accepted"] == 800 and stats["distinct_keys"] == 800
    assert stats["rejected_429"] <= 4, stats  # 0.5% of 800
    times = sorted(r["t"] for r in sink.records())
    steady = (len(times) - 20) / (times[-1] - times[19])  # accepted/s after the target's burst
    assert 0.8 * 20 <= steady <= 1.05 * 20, f"{steady:.2f} rows/s after the burst, shared rate 20/s"
    summaries = [json.loads(f.with_suffix(".json").read_text()) for f in files]
    assert sum(s["delivered"] for s in summaries) == 800
    assert sum(s["http_429"] for s in summaries) == stats["rejected_429"]


@pytest.mark.rate_measured
def test_no_death_spiral_when_configured_above_the_target(tmp_path, sink_factory):
    """2. Sink at 10/s, deliver told 40/s: every row delivered and, after the
    first 10 s, accepted >= 90% of 10/s."""
    sink = sink_factory(rate=10, burst=10)
    rows = write_rows(tmp_path / "rows.csv", 230)
    proc = run(deliver_args(rows, sink.url, "--rate", 40, "--burst", 40), tmp_path, timeout=90)
    assert proc.returncode == 0, proc.stderr
    times = sorted(r["t"] for r in sink.records())
    assert len(times) == 230 and sink.stats()["distinct_keys"] == 230
    settled = [t for t in times if t >= times[0] + 10]
    rate = (len(settled) - 1) / (settled[-1] - settled[0])
    assert rate >= 9.0, f"accepted {rate:.2f}/s after the first 10 s"


def test_retry_after_pauses_every_process(tmp_path, sink_factory, redis_url):
    """3. After 40 accepted requests the sink answers 429 Retry-After: 3 for
    3 s: no request from either process arrives in those 3 s, except ones
    already on the wire when the first 429 was sent."""
    sink = sink_factory(throttle_at=40, throttle_for=3)
    files = [write_rows(tmp_path / f"r{q}.csv", 50, start=q * 50 + 1) for q in range(2)]
    procs = [subprocess.Popen(deliver_args(f, sink.url, "--rate", 20, "--burst", 5, "--redis-url", redis_url,
                                           "--limit-key", "retry-after"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(tmp_path))
             for f in files]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    stats = sink.stats()
    assert stats["accepted"] == 100 and stats["distinct_keys"] == 100
    assert stats["throttle_started_at"] is not None
    on_the_wire = 0.15  # sent before the first 429 reached its sender (20/s pacing: at most ~3)
    late = [t for t in stats["throttle_arrival_offsets"] if on_the_wire < t < 3.0]
    assert late == [], stats["throttle_arrival_offsets"]
    assert stats["received_during_throttle"] <= 3


def test_flaky_target_and_one_rejected_row(tmp_path, sink_factory):
    """4. Every 10th request 503 -> retried and delivered; a 400 for one row
    -> that row alone in the dead-letter CSV with status and reason; exit 3."""
    sink = sink_factory(fail_every=10, reject_field="Work Email=p57@example.com")
    rows = write_rows(tmp_path / "rows.csv", 120)
    dead, summary = tmp_path / "dead.csv", tmp_path / "summary.json"
    proc = run(deliver_args(rows, sink.url, "--rate", 200, "--burst", 20, "--dead-letter", dead,
                            "--summary", summary), tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "1 row not delivered" in proc.stderr and "Traceback" not in proc.stderr
    (row,) = read_csv(dead)
    assert row["_row_number"] == "57" and row["Work Email"] == "p57@example.com"
    assert row["_status"] == "400" and "HTTP 400" in row["_reason"] and "not retried" in row["_reason"]
    assert "rejected" in row["_response"] and row["_attempts"] == "1"
    assert row["Notes"] == 'note "57"'  # original columns kept as they were
    s = json.loads(summary.read_text())
    stats = sink.stats()
    assert s["delivered"] == 119 == stats["accepted"] == stats["distinct_keys"]
    assert s["failed"] == 1 and s["dead_letter_path"] == str(dead)
    assert stats["failed_injected"] >= 11
    assert s["attempts"] == stats["received"]


@pytest.mark.parametrize("status", [202, 204])
def test_202_and_204_count_as_delivered_without_retry(tmp_path, sink_factory, status):
    """5. Any 2xx is success: one request per row, nothing retried."""
    sink = sink_factory(status=status)
    rows = write_rows(tmp_path / "rows.csv", 30)
    summary = tmp_path / "s.json"
    proc = run(deliver_args(rows, sink.url, "--rate", 100, "--summary", summary), tmp_path)
    assert proc.returncode == 0, proc.stderr
    s = json.loads(summary.read_text())
    assert (s["delivered"], s["attempts"], s["failed"]) == (30, 30, 0)
    assert sink.stats()["received"] == 30
    assert "delivered 30/30 rows" in proc.stdout


def test_resume_after_sigkill_with_the_same_job_id(tmp_path, sink_factory):
    """6. SIGKILL mid-run, run again with the same job id: every row
    delivered; duplicates <= concurrency, carrying identical keys."""
    sink = sink_factory(latency_ms=20)
    rows = write_rows(tmp_path / "rows.csv", 400)
    args = deliver_args(rows, sink.url, "--rate", 100, "--burst", 10, "--concurrency", 8, "--job-id", "resume-1")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(tmp_path))
    deadline = time.monotonic() + 120  # a loaded machine starts the process slowly
    while sink.stats()["accepted"] < 150 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    first = sink.stats()["accepted"]
    assert 150 <= first < 400
    summary = tmp_path / "s.json"
    again = run([*args, "--summary", summary], tmp_path)
    assert again.returncode == 0, again.stderr
    s = json.loads(summary.read_text())
    assert s["skipped_already_delivered"] >= first - 8
    keys = [r["key"] for r in sink.records()]
    assert set(keys) == {f"resume-1-{n}" for n in range(1, 401)}
    assert len(keys) - len(set(keys)) <= 8  # same key each time: the target can de-duplicate
    bodies = {}
    for r in sink.records():
        assert bodies.setdefault(r["key"], r["body"]) == r["body"]


def _redis_with_aof(redis_dir: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """A redis-server writing every change to an append-only file in
    ``redis_dir``; started again on the same port it reloads that file."""
    port = port or find_free_port()
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(redis_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    return proc, f"redis://127.0.0.1:{port}/0"


def test_redis_dying_mid_run_is_a_clear_error_and_the_ledger_stays_true(tmp_path, sink_factory):
    """7. Redis stops mid-run: exit 4 with one line, no traceback, and every
    row the ledger holds was acknowledged by the target."""
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    server, url = _redis_with_aof(redis_dir)
    try:
        sink = sink_factory()
        rows = write_rows(tmp_path / "rows.csv", 600)
        proc = subprocess.Popen(deliver_args(rows, sink.url, "--rate", 40, "--redis-url", url, "--job-id", "r7"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(tmp_path))
        deadline = time.monotonic() + 30
        while sink.stats()["accepted"] < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.send_signal(signal.SIGKILL)  # a crash, not a clean shutdown
        server.wait(timeout=10)
        out, err = proc.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    assert proc.returncode == 4, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("csv-merger: error: ") and "Redis" in last and "delivery stopped after" in last
    assert "Traceback" not in err
    accepted = {r["key"] for r in sink.records()}
    assert 60 <= len(accepted) < 600
    server, _ = _redis_with_aof(redis_dir, port=int(url.rsplit(":", 1)[1].split("/")[0]))
    time.sleep(0.3)  # AOF loaded
    try:
        recorded = {f"r7-{int(n)}" for n in redis.Redis.from_url(url).smembers("csv-merger:ledger:r7")}
    finally:
        server.kill()
        server.wait()
    assert recorded, "the ledger was written before Redis died"
    assert recorded <= accepted


def test_sigterm_cancels_within_two_seconds_and_counts_stay_exact(tmp_path, sink_factory):
    """Cancel: stop taking rows, let requests in flight finish, report
    cancelled=True with delivered == what the target accepted; exit 143 (128 + SIGTERM)."""
    sink = sink_factory(latency_ms=100)
    rows = write_rows(tmp_path / "rows.csv", 400)
    summary = tmp_path / "s.json"
    proc = subprocess.Popen(deliver_args(rows, sink.url, "--rate", 20, "--summary", summary),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(tmp_path))
    deadline = time.monotonic() + 30
    while sink.stats()["accepted"] < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    asked, signalled_at = time.monotonic(), time.time()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    late = max(r["t"] for r in sink.records()) - signalled_at
    print(f"deliver, SIGTERM: last request {late:+.2f} s after the signal")
    assert late <= 2.0
    assert time.monotonic() - asked < 2.0
    assert proc.returncode == 143, err
    s = json.loads(summary.read_text())
    assert s["cancelled"] is True and s["failed"] == 0
    assert s["delivered"] == sink.stats()["accepted"] < 400
    assert "[cancelled]" in out


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    assert lines[-1].startswith("csv-merger: error: "), proc.stderr
    return lines[-1]


def test_cli_errors_are_one_line_with_their_exit_codes(tmp_path, free_port):
    rows = write_rows(tmp_path / "rows.csv", 3)
    unsafe = run([CLI, "deliver", str(rows), "--webhook-url", f"http://127.0.0.1:{free_port}/x"], tmp_path)
    assert unsafe.returncode == 2 and "loopback" in _one_line_error(unsafe)
    scheme = run(deliver_args(rows, "file:///etc/passwd"), tmp_path)
    assert scheme.returncode == 2 and "scheme" in _one_line_error(scheme)
    dead_redis = f"redis://127.0.0.1:{free_port}/0"
    flag = run(deliver_args(rows, f"http://127.0.0.1:{free_port}/x", "--redis-url", dead_redis), tmp_path)
    assert flag.returncode == 4 and "Redis" in _one_line_error(flag)
    from_env = run(deliver_args(rows, f"http://127.0.0.1:{free_port}/x"), tmp_path, REDIS_URL=dead_redis)
    assert from_env.returncode == 4 and "Redis" in _one_line_error(from_env)
    missing = run(deliver_args(tmp_path / "nope.csv", f"http://127.0.0.1:{free_port}/x"), tmp_path)
    assert missing.returncode == 1 and "nope.csv" in _one_line_error(missing)
    for option, value in (("--rate", "-1"), ("--rate", "0"), ("--concurrency", "0"), ("--max-attempts", "0")):
        bad = run(deliver_args(rows, f"http://127.0.0.1:{free_port}/x", option, value), tmp_path)
        assert bad.returncode == 2 and option[2:].replace("-", " ") in _one_line_error(bad), (option, value)


def test_default_job_id_makes_a_rerun_skip_delivered_rows(tmp_path, sink_factory):
    sink = sink_factory()
    rows = write_rows(tmp_path / "rows.csv", 25)
    first = run(deliver_args(rows, sink.url, "--rate", 100), tmp_path)
    second = run(deliver_args(rows, sink.url, "--rate", 100, "--summary", tmp_path / "s.json"), tmp_path)
    assert first.returncode == second.returncode == 0, second.stderr
    job_line = first.stderr.splitlines()[0]
    assert job_line.startswith("csv-merger: job id ") and job_line == second.stderr.splitlines()[0]
    s = json.loads((tmp_path / "s.json").read_text())
    assert (s["skipped_already_delivered"], s["delivered"], s["attempts"]) == (25, 0, 0)
    assert sink.stats()["received"] == 25


def test_auth_token_from_env_is_sent_and_never_printed(tmp_path, sink_factory):
    sink = sink_factory(auth_token="s3cret-token")
    rows = write_rows(tmp_path / "rows.csv", 10)
    ok = run(deliver_args(rows, sink.url, "--rate", 100), tmp_path, CLAY_WEBHOOK_AUTH="s3cret-token")
    assert ok.returncode == 0, ok.stderr
    assert all(r["auth"] for r in sink.records()) and len(sink.records()) == 10
    wrong = run(deliver_args(rows, sink.url, "--rate", 100, "--job-id", "other", "--resend", "--auth-token", "nope-token",
                             "--dead-letter", tmp_path / "dead.csv"), tmp_path)
    assert wrong.returncode == 5  # 10 rows, all 401: the early stop (REFUSED_STOP_AFTER)
    assert {r["_status"] for r in read_csv(tmp_path / "dead.csv")} == {"401"}
    for proc in (ok, wrong):
        assert "s3cret" not in proc.stdout + proc.stderr and "nope-token" not in proc.stdout + proc.stderr


def test_rows_never_sent_are_dead_lettered_with_the_reason(tmp_path, sink_factory):
    """Over the payload limit, or a template that cannot render the row: not
    sent, dead-lettered; every other row delivered. (The destination's
    ceiling: tests/test_destinations.py.)"""
    sink = sink_factory()
    notes = [("a@x.com", "fine"), ("b@x.com", 'says "hi"'), ("c@x.com", "x" * 600), ("d@x.com", "fine too"),
             *((f"e{i}@x.com", "ok") for i in range(4))]
    rows = write_merged_csv(tmp_path / "rows.csv", ({"Work Email": e, "Notes": n} for e, n in notes), kept=["Notes"])
    template = tmp_path / "t.j2"
    template.write_text('{"email": {{ row["Work Email"] | tojson }}, "notes": "{{ row["Notes"] }}"}')
    dead = tmp_path / "dead.csv"
    proc = run(deliver_args(rows, sink.url, "--rate", 100, "--payload", template, "--dead-letter", dead), tmp_path,
               CSV_MERGER_PAYLOAD_LIMIT_BYTES="300")
    assert proc.returncode == 3, proc.stderr
    by_row = {r["_row_number"]: r for r in read_csv(dead)}
    assert set(by_row) == {"2", "3"}
    assert by_row["2"]["_status"] == "not-sent" and by_row["2"]["_reason"].startswith("row 2: template did not render JSON")
    assert by_row["3"]["_status"] == "not-sent" and "above the payload limit of 300 bytes" in by_row["3"]["_reason"]
    assert by_row["2"]["Notes"] == 'says "hi"' and by_row["3"]["_attempts"] == "0"
    assert sorted(r["body"]["email"] for r in sink.records()) == ["a@x.com", "d@x.com", *(f"e{i}@x.com" for i in range(4))]


def test_a_template_broken_for_the_first_row_stops_before_sending(tmp_path, sink_factory):
    sink = sink_factory()
    rows = write_rows(tmp_path / "rows.csv", 3)
    template = tmp_path / "t.j2"
    template.write_text('{"x": {{ row["No Such Column"] | tojson }}}')
    proc = run(deliver_args(rows, sink.url, "--payload", template), tmp_path)
    assert proc.returncode == 2 and "row 1" in _one_line_error(proc) and "No Such Column" in proc.stderr
    assert sink.stats()["received"] == 0


def test_retries_exhausted_go_to_the_dead_letter_file(tmp_path, sink_factory):
    sink = sink_factory(fail_rate=1.0, fail_status=503)
    rows = write_rows(tmp_path / "rows.csv", 3)
    dead = tmp_path / "dead.csv"
    proc = run(deliver_args(rows, sink.url, "--rate", 100, "--max-attempts", 2, "--dead-letter", dead), tmp_path)
    assert proc.returncode == 3, proc.stderr
    dl = read_csv(dead)
    assert [r["_row_number"] for r in sorted(dl, key=lambda r: int(r["_row_number"]))] == ["1", "2", "3"]
    assert all(r["_status"] == "503" and r["_attempts"] == "2" and "gave up after 2 attempts" in r["_reason"]
               for r in dl)
    assert sink.stats()["received"] == 6


def test_redirects_are_not_followed(tmp_path):
    """A target answering 307 to the metadata address: the row is dead-lettered
    with the Location, and no request goes anywhere else."""
    import http.server
    import threading

    hits = []

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            hits.append(self.path)
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(307)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        rows = write_rows(tmp_path / "rows.csv", 2)
        dead = tmp_path / "dead.csv"
        proc = run(deliver_args(rows, f"http://127.0.0.1:{server.server_port}/hook", "--dead-letter", dead), tmp_path)
    finally:
        server.shutdown()
    assert proc.returncode == 3, proc.stderr
    assert hits == ["/hook", "/hook"]
    for row in read_csv(dead):
        assert row["_status"] == "307" and "169.254.169.254" in row["_reason"] and "not followed" in row["_reason"]


def test_auth_token_from_a_prefect_secret_block(prefect_harness):
    from prefect.blocks.system import Secret

    from csv_merger.cli.deliver import _auth_token
    from csv_merger.errors import ConfigError

    Secret(value="block-token").save("clay-auth-test", overwrite=True)
    assert _auth_token(None, "clay-auth-test") == "block-token"
    assert _auth_token("flag-token", "clay-auth-test") == "flag-token"  # the flag wins
    with pytest.raises(ConfigError, match="'no-such-block'"):
        _auth_token(None, "no-such-block")


def test_merged_csv_problems_are_input_errors_naming_the_file(tmp_path):
    from csv_merger.errors import InputError
    from csv_merger.schema import PEOPLE_FIELDS
    from tasks.deliver import read_merged_csv

    header, width = ",".join(PEOPLE_FIELDS), len(PEOPLE_FIELDS)  # a merged header: every field, Source last
    dupes = tmp_path / "dupes.csv"
    dupes.write_text(f"{header},Notes,Notes\na@x.com\n")
    with pytest.raises(InputError, match=r"dupes.csv: duplicate column names \['Notes'\]"):
        list(read_merged_csv(dupes))
    long_row = tmp_path / "long.csv"
    long_row.write_text(f"{header}\na@x.com\n" + "b," * width + "c\n")
    with pytest.raises(InputError, match=rf"long.csv, line 3: row 2 has {width + 1} cells, the header has {width}"):
        list(read_merged_csv(long_row))
    for sep, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
        raw = tmp_path / "raw.csv"
        raw.write_text(f"Work Email{sep}Notes\na@x.com{sep}1\n")
        with pytest.raises(InputError, match=rf"raw.csv, line 1: the header is one column holding {name} "):
            list(read_merged_csv(raw))
    unclosed = tmp_path / "unclosed.csv"
    unclosed.write_text(f'{header}\na@x.com,ok\nb@x.com,"never closed\nc@x.com,swallowed\n')
    with pytest.raises(InputError, match=r"unclosed.csv: row 2 opens a quote that is never closed"):
        list(read_merged_csv(unclosed))
    short = tmp_path / "short.csv"
    short.write_text(f'{header}\r\na@x.com\r\n\r\n"b@x.com","two\r\nlines"\r\n')
    rows = list(read_merged_csv(short))
    assert [list(row) for _, row in rows] == [list(PEOPLE_FIELDS)] * 2  # padded with ""
    assert [(n, {k: v for k, v in row.items() if v}) for n, row in rows] == [
        (1, {"First Name": "a@x.com"}), (2, {"First Name": "b@x.com", "Last Name": "two\r\nlines"})]


def test_a_merged_header_is_required_and_a_header_alone_is_no_input(tmp_path):
    """A raw export, a partial header, an empty, BOM-only or header-only file: one InputError each."""
    from csv_merger.errors import InputError
    from csv_merger.schema import COMPANY_FIELDS, PEOPLE_FIELDS
    from tasks.deliver import read_merged_csv

    partial = tmp_path / "partial.csv"
    partial.write_text("First Name,Work Email,Notes\nAnn,ann@x.com,hi\n")
    with pytest.raises(InputError) as refused:
        list(read_merged_csv(partial))
    assert str(refused.value) == (
        f"{partial}, line 1: not a merged CSV: its header lacks 16 merged column(s) (Last Name, Full Name, "
        "Job Title, Personal Email, Phone Number, LinkedIn Profile and 10 more); run `csv-merger merge` first, "
        "or `csv-merger run` to merge and deliver in one step")
    company = tmp_path / "company.csv"  # the company schema, its e-mails numbered, plus kept columns
    company.write_text(",".join(COMPANY_FIELDS).replace("Company Email", "Company Email 1,Company Email 2")
                       + ",Notes\nAcme,acme.example\n")
    assert [row["Company Domain"] for _, row in read_merged_csv(company)] == ["acme.example"]
    for name, text, reason in (("empty.csv", "", "empty file (no header, no rows)"),
                               ("bom.csv", "\ufeff", "empty file (no header, no rows)"),
                               ("header.csv", ",".join(PEOPLE_FIELDS) + "\r\n\r\n", "no data rows: only a header")):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        with pytest.raises(InputError, match="^" + re.escape(f"{path}: {reason}")):
            list(read_merged_csv(path))


def test_a_raw_semicolon_export_is_refused_before_anything_is_sent(tmp_path, sink_factory):
    """Read with commas, ``a;b;c`` would go out as ``{"a;b;c": "1;2;3"}``: deliver sends merged CSVs only."""
    sink = sink_factory()
    raw = tmp_path / "export.csv"
    raw.write_text("a;b;c\n1;2;3\n")
    proc = run(deliver_args(raw, sink.url), tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"csv-merger: error: {raw}, line 1: the header is one column holding semicolon (';') separators: this does "
        "not look like a merged CSV; run `csv-merger merge` first, or `csv-merger run` to merge and deliver in one "
        "step"]
    assert proc.stdout == "" and sink.stats()["received"] == 0


def test_a_raw_export_or_a_header_only_file_is_refused_before_anything_is_sent(tmp_path, sink_factory):
    """deliver sends merged CSVs: a raw Apollo export would skip mapping, cleaning, de-duplication and the lead
    index; a header alone would "deliver 0/0" and succeed. Both exit 1 with one line, nothing sent."""
    sink = sink_factory()
    raw = REPO / "examples" / "apollo_export.csv"
    header_only = write_merged_csv(tmp_path / "empty.csv", [])
    for path, reason in ((raw, ", line 1: not a merged CSV: its header lacks 16 merged column(s) (Full Name, "
                               "Job Title, Work Email, Personal Email, Phone Number, LinkedIn Profile and 10 more); "
                               "run `csv-merger merge` first, or `csv-merger run` to merge and deliver in one step"),
                         (header_only, ": no data rows: only a header; nothing to deliver")):
        proc = run(deliver_args(path, sink.url), tmp_path)
        assert proc.returncode == 1
        assert proc.stderr.strip().splitlines() == [f"csv-merger: error: {path}{reason}"]
    assert sink.stats()["received"] == 0


def test_a_merge_of_the_other_type_is_refused_naming_the_type_to_give(tmp_path, sink_factory):
    """A people merge sent with --type company (or the reverse) would be shaped and indexed as the wrong kind
    of lead: exit 1, one line naming the file and the --type it was merged as, before the job id; nothing sent."""
    sink = sink_factory()
    people = write_rows(tmp_path / "people.csv", 2)
    company = write_merged_csv(tmp_path / "company.csv", [{"Company Name": "Acme", "Company Domain": "acme.example"}],
                               table_type="company")
    for path, given, merged_as, lacks in (
            (people, "company", "people", "Company Phone, Company Email"),
            (company, "people", "company", "First Name, Last Name, Full Name, Job Title, Work Email, "
                                           "Personal Email and 3 more")):
        proc = run(deliver_args(path, sink.url, "--type", given), tmp_path)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.strip().splitlines() == [
            f"csv-merger: error: {path}, line 1: merged as {merged_as}, not {given}: its header has every "
            f"{merged_as} column but lacks {lacks}; deliver it with --type {merged_as}"]
        ok = run(deliver_args(path, sink.url, "--type", merged_as, "--dry-run"), tmp_path)
        assert ok.returncode == 0, ok.stderr
    assert sink.stats()["received"] == 0


def test_429_does_not_spend_attempts(tmp_path, sink_factory):
    """With --max-attempts 1, rows answered 429 (Retry-After) are still
    delivered once the pause is over: a 429 never loses a row."""
    sink = sink_factory(throttle_at=0, throttle_for=2)
    rows = write_rows(tmp_path / "rows.csv", 10)
    summary = tmp_path / "s.json"
    proc = run(deliver_args(rows, sink.url, "--rate", 50, "--max-attempts", 1, "--summary", summary), tmp_path)
    assert proc.returncode == 0, proc.stderr
    s = json.loads(summary.read_text())
    assert s["delivered"] == 10 and s["http_429"] >= 1 and s["attempts"] == 10 + s["http_429"]
    assert sink.stats()["distinct_keys"] == 10


def test_every_row_refused_alike_stops_early_and_a_rerun_sends_the_rest(tmp_path, sink_factory):
    """A wrong token (401 for every row): stop after REFUSED_STOP_AFTER rows, exit 5 with one line,
    only the rows sent are dead-lettered; the same job id with the right token delivers every row once."""
    from tasks.deliver.refusal import REFUSED_STOP_AFTER

    sink = sink_factory(auth_token="right-token")
    rows = write_rows(tmp_path / "rows.csv", 60)
    dead, summary = tmp_path / "dead.csv", tmp_path / "s.json"
    common = ("--rate", 100, "--concurrency", 4, "--job-id", "refused-1")
    wrong = run(deliver_args(rows, sink.url, *common, "--auth-token", "wrong-token", "--dead-letter", dead,
                             "--summary", summary), tmp_path)
    assert wrong.returncode == 5, wrong.stderr
    line = _one_line_error(wrong)
    assert f"stopped: the target answered 401 to each of the first {REFUSED_STOP_AFTER} rows and accepted none" in line
    assert "auth token" in line and "--job-id refused-1" in line
    stats = sink.stats()
    assert stats["accepted"] == 0 and REFUSED_STOP_AFTER <= stats["received"] <= REFUSED_STOP_AFTER + 4
    dl = read_csv(dead)
    assert len(dl) == stats["received"] and {r["_status"] for r in dl} == {"401"}
    s = json.loads(summary.read_text())
    assert (s["delivered"], s["failed"], s["attempts"]) == (0, len(dl), stats["received"])
    assert (f"{len(dl)} rows in the dead-letter file (with the requests already in flight), {60 - len(dl)} "
            "not sent") in line
    assert s["stopped_reason"] in line
    right = run(deliver_args(rows, sink.url, *common, "--auth-token", "right-token",
                             "--dead-letter", tmp_path / "dead2.csv"), tmp_path)
    assert right.returncode == 0, right.stderr
    keys = [r["key"] for r in sink.records()]
    assert sorted(keys) == sorted(f"refused-1-{n}" for n in range(1, 61))  # every row, once


def test_a_404_for_one_row_after_deliveries_does_not_stop_the_job(tmp_path, sink_factory):
    sink = sink_factory(reject_field="Work Email=p30@example.com", reject_status=404)
    rows = write_rows(tmp_path / "rows.csv", 40)
    dead = tmp_path / "dead.csv"
    proc = run(deliver_args(rows, sink.url, "--rate", 100, "--dead-letter", dead), tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "stopped after" not in proc.stderr
    (row,) = read_csv(dead)
    assert row["_row_number"] == "30" and row["_status"] == "404"
    assert sink.stats()["accepted"] == 39


def test_a_merge_neutralised_for_spreadsheets_is_refused_and_the_exact_merge_delivers(tmp_path, sink_factory):
    """`merge` puts a ' before =, +, -, @ for spreadsheets; delivered as it stands, '=1+2 and '@annlee would
    reach the target changed. deliver refuses it with one line naming the cell; a merge with
    --no-neutralise-formulas sends the exact values."""
    sink = sink_factory()
    src = tmp_path / "export.csv"
    src.write_text("First Name,Email,Phone,Twitter,Notes\nAnn,ann@x.com,+1 617 555 1000,@annlee,=1+2\n")
    for flag, merged in (([], tmp_path / "sheet.csv"), (["--no-neutralise-formulas"], tmp_path / "exact.csv")):
        assert run([CLI, "merge", str(src), "-o", str(merged), "-q", *flag], tmp_path).returncode == 0
    refused = run(deliver_args(tmp_path / "sheet.csv", sink.url), tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"csv-merger: error: {tmp_path / 'sheet.csv'}: row 1, field Twitter: \"'@annlee\" was neutralised by "
        "`csv-merger merge` for spreadsheets (the ' before a formula sign), so the target would get it changed; "
        "merge again with --no-neutralise-formulas to deliver exact values, or use `csv-merger run`"]
    assert sink.stats()["received"] == 0
    sent = run(deliver_args(tmp_path / "exact.csv", sink.url), tmp_path)
    assert sent.returncode == 0, sent.stderr
    [record] = sink.records()
    assert (record["body"]["Twitter"], record["body"]["Notes"], record["body"]["Phone Number"]) == (
        "@annlee", "=1+2", "+1 617 555 1000")
