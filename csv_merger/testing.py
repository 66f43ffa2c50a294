"""Real processes for tests and benchmarks: a throw-away ``redis-server``, a
``csv-merger sink`` and a ``prefect server``, each on a free port of 127.0.0.1;
and ``write_merged_csv`` for a delivery input laid out as the merge writes it.

Imported by ``tests/conftest.py`` (as fixtures) and by ``bench/*.py``; no
pytest import here, so a benchmark runs with the package alone. Both raise
RuntimeError with a one-line reason when the process cannot start.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from csv_merger.schema import fields_for


def find_free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:port;
    TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class RedisServer:
    """A throw-away redis-server process on a free port; ``url`` is its
    ``redis://[:PASSWORD@]127.0.0.1:PORT/0``. ``tmp`` is its working folder.

    No persistence unless ``appendonly=True`` (AOF, fsync every second).
    ``password`` sets ``requirepass``. ``kill()`` ends it at once (SIGKILL,
    as a crash or an out-of-memory kill does); ``start()`` starts it again on
    the same port (empty, unless AOF kept its data).
    """

    def __init__(self, tmp: Path, *, appendonly: bool = False, password: str | None = None):
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise RuntimeError("redis-server not found: install it (Debian: apt-get install redis-server)")
        self.tmp, self.appendonly, self.password = tmp, appendonly, password
        self.port = find_free_port()
        auth = f":{password}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"
        self.start()

    def start(self) -> None:
        """Start the server (again) on ``self.port``; waits until it listens."""
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes" if self.appendonly else "no", "--dir", str(self.tmp)]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)

    def kill(self) -> None:
        """End the server at once (SIGKILL): no shutdown save, clients see the connection drop."""
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def flush(self) -> None:
        """Empty its database 0."""
        import redis

        redis.Redis.from_url(self.url).flushdb()


class Sink:
    """A running ``csv-merger sink`` process (see csv_merger/sink.py) recording
    every accepted request to a JSON-lines file in ``tmp``.

    ``opts`` are its command-line options with underscores (``rate=20``,
    ``burst=20``, ``status=202``; ``record=PATH`` to choose the file, None
    to record nothing, e.g. for throughput figures). ``url``
    is the POST target (``/hook``), ``base`` the server's root.
    """

    def __init__(self, tmp: Path, **opts):
        self.port = find_free_port()
        record = opts.pop("record", tmp / f"sink-{self.port}.jsonl")
        self.record_path = Path(record) if record is not None else None
        err_path = tmp / f"sink-{self.port}.err"
        args = [sys.executable, "-m", "csv_merger", "sink", "--port", str(self.port)]
        if self.record_path is not None:
            args += ["--record", str(self.record_path)]
        for name, value in opts.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        with open(err_path, "w") as err:
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True)
        line = self.proc.stdout.readline()  # "sink listening on URL", or "" if it died
        if not line.startswith("sink listening on "):
            self.proc.kill()
            raise RuntimeError(f"sink did not start: {line}{err_path.read_text()}")
        self.base = line.split()[-1]
        self.url = self.base + "/hook"

    def stats(self) -> dict:
        """The sink's counters (``GET /stats``): accepted, rejected_429, duplicate_keys..."""
        import httpx

        return httpx.get(self.base + "/stats", timeout=5).json()

    def wait_accepted(self, n: int, proc=None, timeout: float = 120.0) -> None:
        """Block until the sink accepted ``n`` requests; AssertionError when ``proc`` (a
        subprocess.Popen sending to it) exits first, with its output, or after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while self.stats()["accepted"] < n:
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"exit {proc.returncode} before {n} rows were accepted: {proc.communicate()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the sink accepted fewer than {n} rows in {timeout} s")
            time.sleep(0.05)

    def records(self) -> list[dict]:
        """Every accepted request so far, in order (one dict per JSON line)."""
        if self.record_path is None or not self.record_path.exists():
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


class PrefectServer:
    """``prefect server start`` on a free port with its own PREFECT_HOME (SQLite) in ``tmp``.

    ``env`` is ``os.environ`` plus what reaches it (``PREFECT_API_URL``) and
    quiet, offline, quick-polling worker settings: pass it to the processes
    (setup, workers, flows) that should use this server. Raises RuntimeError
    when it is not healthy within ``timeout`` seconds.
    """

    def __init__(self, tmp: Path, timeout: float = 120.0):
        import httpx

        port = find_free_port()
        self.url = f"http://127.0.0.1:{port}/api"
        self.env = {**os.environ, "PREFECT_HOME": str(tmp / "prefect-home"), "PREFECT_API_URL": self.url,
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING", "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
                    "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "1",
                    "CSV_MERGER_DATA_DIR": str(tmp / "data")}
        self.log = tmp / "prefect-server.log"
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                          "--port", str(port)], env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prefect server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"prefect server not healthy after {timeout:g} s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def write_merged_csv(path: Path, records: Iterable[Mapping[str, str]], *, kept: Sequence[str] = (),
                     table_type: str = "people") -> Path:
    """Write ``records`` ({column: text}) as ``csv-merger merge`` lays them
    out, so ``csv-merger deliver`` takes the file: every canonical field of
    ``table_type`` (``Source`` included), then the ``kept`` columns; a
    missing cell is empty (and so left out of a flat payload). UTF-8, RFC 4180."""
    columns = [*fields_for(table_type), *kept]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(records)
    return path
