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
