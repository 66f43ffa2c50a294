"""Shared fixtures: real services, really started.

- ``redis_url``: a real ``redis-server`` on a free port, started for the test
  session (the machine's own Redis, if any, is never touched). If the binary
  is missing the fixture fails (never skips) with the install hint.
- ``free_port``: a free TCP port on 127.0.0.1.
- ``corpus_dir``: ``../shared/corpus`` (real files written by other people).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("CSV_MERGER_CORPUS", REPO.parent / "shared" / "corpus"))


def find_free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@pytest.fixture
def free_port() -> int:
    return find_free_port()


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    assert CORPUS.is_dir(), f"corpus not found at {CORPUS} (set CSV_MERGER_CORPUS)"
    return CORPUS


class RedisServer:
    """A throw-away redis-server process (no persistence) on a free port."""

    def __init__(self, tmp: Path):
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server not found: install it (Debian: apt-get install redis-server)")
        self.port = find_free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)

    def flush(self) -> None:
        import redis

        redis.Redis.from_url(self.url).flushdb()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> RedisServer:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session's redis-server, emptied before each test."""
    redis_server.flush()
    return redis_server.url


class Sink:
    """A running ``csv-merger sink`` process (see csv_merger/sink.py)."""

    def __init__(self, tmp: Path, **opts):
        self.port = find_free_port()
        self.record_path = Path(opts.pop("record", tmp / f"sink-{self.port}.jsonl"))
        err_path = tmp / f"sink-{self.port}.err"
        args = [str(REPO / ".venv" / "bin" / "csv-merger"), "sink", "--port", str(self.port),
                "--record", str(self.record_path)]
        if not Path(args[0]).exists():
            args[:1] = [shutil.which("csv-merger") or "csv-merger"]
        for name, value in opts.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        with open(err_path, "w") as err:
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True)
        line = self.proc.stdout.readline()  # "sink listening on URL", or "" if it died
        if not line.startswith("sink listening on "):
            self.proc.kill()
            pytest.fail(f"sink did not start: {line}{err_path.read_text()}")
        self.url = line.split()[-1] + "/hook"
        self.base = line.split()[-1]

    def stats(self) -> dict:
        import httpx

        return httpx.get(self.base + "/stats", timeout=5).json()

    def records(self) -> list[dict]:
        import json

        if not self.record_path.exists():
            return []
        return [json.loads(line) for line in self.record_path.read_text(encoding="utf-8").splitlines()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def sink_factory(tmp_path):
    """``sink_factory(rate=20, burst=20, status=202, ...) -> Sink``: a real
    ``csv-merger sink`` on a free port (options as on its command line, with
    underscores), recording to a JSON-lines file. Sink has ``.url`` (POST
    target), ``.stats()``, ``.records()``, ``.stop()``; all stop at test end."""
    sinks: list[Sink] = []

    def start(**opts) -> Sink:
        sinks.append(Sink(tmp_path, **opts))
        return sinks[-1]

    yield start
    for sink in sinks:
        sink.stop()


@pytest.fixture(scope="session")
def prefect_harness():
    """Prefect's real engine against a throw-away API (``prefect_test_harness``:
    a server subprocess on a temporary SQLite database), once per session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A fresh ``CSV_MERGER_DATA_DIR`` (ledgers, chunks, runs) for one test, so that a
    job id seen in an earlier test (same sink port, same rows) is not resumed here."""
    from csv_merger.settings import get_settings

    monkeypatch.setenv("CSV_MERGER_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()
