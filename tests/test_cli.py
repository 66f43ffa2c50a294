"""The CLI's contract: exit codes and one-line errors."""

import subprocess
import sys

from csv_merger import __version__
from csv_merger.cli import main


def test_version_prints_installed_version(capsys):
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == __version__


def test_unknown_command_is_a_usage_error():
    proc = subprocess.run([sys.executable, "-m", "csv_merger", "nope"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "No such command" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_redis_fixture_is_a_real_server(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    assert client.ping() is True
    client.set("k", "v")
    assert client.get("k") == b"v"


def test_an_invalid_setting_is_one_line_naming_the_variable(tmp_path):
    env = {**__import__("os").environ, "CSV_MERGER_RATE_LIMIT": "fast", "PORT": "abc"}
    proc = subprocess.run([sys.executable, "-m", "csv_merger", "deliver", str(tmp_path / "in.csv"),
                           "--webhook-url", "https://example.com/hook"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("csv-merger: error: invalid setting:")
    assert "CSV_MERGER_RATE_LIMIT: Input should be a valid number" in line and "PORT: " in line


def test_bad_output_paths_are_refused_before_any_work(tmp_path):
    merged = tmp_path / "in.csv"
    merged.write_text("Work Email\nada@analytical.example\n", encoding="utf-8")
    cases = [
        ["deliver", str(merged), "--webhook-url", "http://127.0.0.1:9/", "--allow-private-targets",
         "--summary", str(tmp_path)],
        ["deliver", str(merged), "--webhook-url", "http://127.0.0.1:9/", "--allow-private-targets",
         "--dead-letter", str(tmp_path / "missing" / "dl.csv")],
        ["merge", str(merged), "-o", str(tmp_path / "out.csv"), "--report", str(tmp_path)],
    ]
    for args in cases:
        proc = subprocess.run([sys.executable, "-m", "csv_merger", *args], capture_output=True, text=True)
        assert proc.returncode == 2, proc.stderr
        [line] = proc.stderr.strip().splitlines()
        assert line.startswith("csv-merger: error: --") and ("is a directory" in line or "does not exist" in line)
    assert not (tmp_path / "out.csv").exists()  # refused before merging


def _cli(*args: str, tmp_path, **extra_env: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in __import__("os").environ.items() if k != "REDIS_URL"}
    env.update(CSV_MERGER_DATA_DIR=str(tmp_path / "data"), **extra_env)
    return subprocess.run([sys.executable, "-m", "csv_merger", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_run_refuses_bad_inputs_before_prefect_starts(tmp_path):
    import os

    good = tmp_path / "in.csv"
    good.write_text("Work Email\nada@analytical.example\n", encoding="utf-8")
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "pipe")
    cases = {str(tmp_path / "missing.csv"): "no such file", str(tmp_path / "folder"): "is a directory, not a file",
             (tmp_path / "folder").as_uri(): "is a directory, not a file",
             str(tmp_path / "pipe"): "not a regular file (a pipe or device?)",
             str(tmp_path / "nope-*.csv"): "the pattern matches no file"}
    if os.geteuid() != 0:  # root reads any file
        unreadable = tmp_path / "secret.csv"
        unreadable.write_text("Work Email\n", encoding="utf-8")
        unreadable.chmod(0)
        cases[str(unreadable)] = "cannot read the file: Permission denied"
    for spec, reason in cases.items():
        proc = _cli("run", str(good), spec, "--output-dir", str(tmp_path / "out"), tmp_path=tmp_path)
        assert proc.returncode == 1, proc.stderr
        [line] = proc.stderr.strip().splitlines()
        assert line.startswith("csv-merger: error: ") and line.endswith(f": {reason}"), line
        assert not (tmp_path / "out").exists()  # the flow (which creates it) never started


def test_deliver_names_a_directory_given_as_its_input(tmp_path):
    proc = _cli("deliver", str(tmp_path), "--webhook-url", "http://127.0.0.1:9/hook", "--allow-private-targets",
                tmp_path=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"csv-merger: error: {tmp_path}: is a directory, not a file"



def test_deliver_refuses_a_binary_file_with_the_reason_merge_gives(tmp_path):
    """``deliver`` said "not UTF-8" where ``merge`` names what the file is: now both give one reason."""
    files = {"photo.csv": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4,
             "report.csv": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(range(256)) * 4,
             "dump.csv": bytes(range(256)) * 40}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        merged = _cli("merge", str(tmp_path / name), "-o", str(tmp_path / "out.csv"), "-q", tmp_path=tmp_path)
        sent = _cli("deliver", str(tmp_path / name), "--webhook-url", "http://127.0.0.1:9/hook",
                    "--allow-private-targets", tmp_path=tmp_path)
        assert merged.returncode == sent.returncode == 1, sent.stderr
        [line] = sent.stderr.strip().splitlines()  # no job id: nothing was started
        assert line == merged.stderr.strip() and ": looks like " in line and "UTF-8" not in line, line

def test_a_job_id_that_is_no_file_name_is_refused_before_anything_starts(tmp_path):
    """The job id names the ledger and ``dead-letter-<job id>.csv``: ``../`` wrote outside the data folder,
    250 characters failed mid-run with a traceback, '' was silently replaced, and a browser's copy
    "dead-letter-JOB (1).csv" became another job with other Idempotency-Keys."""
    from csv_merger.testing import write_merged_csv

    merged = write_merged_csv(tmp_path / "in.csv", [{"Work Email": "ada@analytical.example"}])
    target = ["--webhook-url", "http://127.0.0.1:9/hook", "--allow-private-targets"]
    reason = "use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
    for bad in ("../../../tmp/evil", "a b/c", "x" * 250, "", ".hidden"):
        for command in (["deliver", str(merged)], ["run", str(merged), "--output-dir", str(tmp_path / "out")]):
            proc = _cli(*command, *target, "--job-id", bad, tmp_path=tmp_path)
            assert proc.returncode == 2, proc.stderr
            assert proc.stderr.strip().splitlines() == [f"csv-merger: error: job id {bad!r}: {reason} (it names "
                                                        "the job's ledger and files)"]
    assert not (tmp_path / "out").exists() and not (tmp_path / "data").exists()
    copy = tmp_path / "dead-letter-job-1 (1).csv"
    copy.write_text("Work Email,_row_number,_status,_reason,_response,_attempts\nada@analytical.example,1,400,bad,,1\n",
                    encoding="utf-8")
    proc = _cli("redeliver", str(copy), *target, tmp_path=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (f"csv-merger: error: {copy}: the file name gives job id 'job-1 (1)': {reason} (it "
                                   "names the job's ledger and files); give the original job's --job-id")


def test_deliver_refuses_urls_and_options_before_printing_a_job_id(tmp_path):
    merged = tmp_path / "in.csv"
    merged.write_text("Work Email\nada@analytical.example\n", encoding="utf-8")
    cases = [(["--webhook-url", "ftp://example.com/hook"], "http"),
             (["--webhook-url", "http://127.0.0.1:9/hook"], "127.0.0.1"),
             (["--webhook-url", "https://example.com/hook", "--burst", "0"], "burst must be >= 1"),
             (["--webhook-url", "http://127.0.0.1:9/hook", "--allow-private-targets", "--payload", "nonsense"],
              "--payload 'nonsense'")]
    for args, reason in cases:
        proc = _cli("deliver", str(merged), *args, tmp_path=tmp_path)
        assert proc.returncode == 2, proc.stderr
        [line] = proc.stderr.strip().splitlines()  # no "job id ... (run again ...)" before the refusal
        assert line.startswith("csv-merger: error: ") and reason in line, line


def test_a_bad_suppression_list_or_a_dead_redis_is_refused_before_the_job_id(tmp_path, free_port):
    """deliver and run refuse them before any work: one line (no "job id ... (run again ...)" first), exit 1
    for the file, 4 for Redis, whose password is never shown; run before Prefect starts."""
    import os

    from csv_merger.testing import RedisServer, write_merged_csv

    merged = write_merged_csv(tmp_path / "in.csv", [{"Work Email": "ada@analytical.example"}])
    (tmp_path / "folder").mkdir()
    lists = {str(tmp_path / "missing.txt"): "no such file", str(tmp_path / "folder"): "is a directory, not a file"}
    if os.geteuid() != 0:  # root reads any file
        unreadable = tmp_path / "secret.txt"
        unreadable.write_text("ada@analytical.example\n", encoding="utf-8")
        unreadable.chmod(0)
        lists[str(unreadable)] = "cannot read the file: Permission denied"
    target = ["--webhook-url", "http://127.0.0.1:9/hook", "--allow-private-targets"]
    dead = f"redis://:s3cret@127.0.0.1:{free_port}/0"  # nothing listens there
    for command in (["deliver", str(merged)], ["run", str(merged), "--output-dir", str(tmp_path / "out")]):
        for path, reason in lists.items():
            proc = _cli(*command, *target, "--suppress", path, tmp_path=tmp_path)
            assert proc.returncode == 1, proc.stderr
            assert proc.stderr.strip() == f"csv-merger: error: --suppress {path}: {reason}"
        for given_as, option, env in (("--redis-url", ["--redis-url", dead], {}),
                                      ("REDIS_URL", [], {"REDIS_URL": dead})):
            proc = _cli(*command, *target, *option, tmp_path=tmp_path, **env)
            assert proc.returncode == 4, proc.stderr
            [line] = proc.stderr.strip().splitlines()
            assert line.startswith(f"csv-merger: error: Redis is needed ({given_as}) and unavailable: Redis at "
                                   f"redis://:***@127.0.0.1:{free_port}/0 does not answer: "), line
            assert "s3cret" not in proc.stdout + proc.stderr
    assert not (tmp_path / "out").exists()  # the flow (which creates it) never started
    live = RedisServer(tmp_path, password="s3cret")  # the PING authenticates: a live Redis with a password passes
    try:
        proc = _cli("deliver", str(merged), *target, "--redis-url", live.url, "--dry-run", tmp_path=tmp_path)
        assert proc.returncode == 0, proc.stderr
    finally:
        live.stop()


def test_a_rate_below_the_floor_is_refused_by_every_command(tmp_path):
    merged = tmp_path / "in.csv"
    merged.write_text("Work Email\nada@analytical.example\n", encoding="utf-8")
    dead = tmp_path / "dead-letter-j1.csv"
    dead.write_text("Work Email,_row_number,_status,_reason,_response,_attempts\nada@analytical.example,1,400,bad,,1\n",
                    encoding="utf-8")
    url = ["--webhook-url", "https://example.com/hook", "--rate", "1e-9"]
    for args in (["run", str(merged), *url, "--output-dir", str(tmp_path / "out")], ["deliver", str(merged), *url],
                 ["redeliver", str(dead), *url], ["deliver", str(merged), *url, "--dry-run"]):
        proc = _cli(*args, tmp_path=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip() == ("csv-merger: error: rate 1e-09 requests/s is below the floor of 0.01 "
                                       "requests/s (one request every 100 s)")
    assert not (tmp_path / "out").exists()
    nan = _cli("deliver", str(merged), *url[:-1], "nan", tmp_path=tmp_path)
    assert nan.returncode == 2 and nan.stderr.strip() == "csv-merger: error: rate nan is not a number of requests/s"


def test_redeliver_help_names_its_dead_letter_input():
    proc = subprocess.run([sys.executable, "-m", "csv_merger", "redeliver", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "Merged CSV" not in proc.stdout and "DEAD_LETTER_CSV" in proc.stdout
    assert "Dead-letter file of an earlier deliver or run" in proc.stdout


def test_counts_in_messages_agree_with_their_nouns():
    from csv_merger.wording import plural

    assert [plural(n, "row") for n in (0, 1, 2)] == ["0 rows", "1 row", "2 rows"]
    assert plural(1234, "record", sep=True) == "1,234 records"
