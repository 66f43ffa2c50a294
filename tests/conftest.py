"""Shared fixtures: real services, really started.

- ``redis_url``: a real ``redis-server`` on a free port, started for the test
  session (the machine's own Redis, if any, is never touched). If the binary
  is missing the fixture fails (never skips) with the install hint.
- ``free_port``: a free TCP port on 127.0.0.1.
- ``corpus_dir``: ``../shared/corpus`` (real files written by other people);
  the tests that need it are skipped with a one-line reason when it is
  missing (set ``CSV_MERGER_CORPUS``).

With ``CSV_MERGER_REQUIRE_ALL_TESTS=1`` (``.ci/run`` sets it) a run in which
any test was skipped fails: CI has the corpus and Chromium, so nothing may
be left out there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from csv_merger.testing import PrefectServer, RedisServer, Sink, find_free_port

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("CSV_MERGER_CORPUS", REPO.parent / "shared" / "corpus"))


@pytest.fixture
def free_port() -> int:
    return find_free_port()


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"corpus of real CSV files not found at {CORPUS}: set CSV_MERGER_CORPUS to enable")
    return CORPUS


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> RedisServer:
    try:
        server = RedisServer(tmp_path_factory.mktemp("redis"))
    except RuntimeError as exc:  # never a skip: the Redis tests are required
        pytest.fail(str(exc))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session's redis-server, emptied before each test."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def sink_factory(tmp_path):
    """``sink_factory(rate=20, burst=20, status=202, ...) -> Sink``: a real
    ``csv-merger sink`` on a free port (options as on its command line, with
    underscores), recording to a JSON-lines file. Sink has ``.url`` (POST
    target), ``.stats()``, ``.records()``, ``.stop()``; all stop at test end."""
    sinks: list[Sink] = []

    def start(**opts) -> Sink:
        try:
            sinks.append(Sink(tmp_path, **opts))
        except RuntimeError as exc:
            pytest.fail(str(exc))
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
def prefect_server(tmp_path):
    """A real ``prefect server start`` on a free port (its own SQLite); yields the
    environment that reaches it (``PrefectServer.env``: PREFECT_API_URL and
    quick worker polling)."""
    try:
        server = PrefectServer(tmp_path)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield server.env
    server.stop()


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A fresh ``CSV_MERGER_DATA_DIR`` (ledgers, chunks, runs) for one test, so that a
    job id seen in an earlier test (same sink port, same rows) is not resumed here."""
    from csv_merger.settings import get_settings

    monkeypatch.setenv("CSV_MERGER_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


def prefect_database_text() -> str:
    """Every text and JSON value stored in the harness's Prefect database (flow-run parameters,
    states, logs, artifacts, blocks...), one per line: for tests that look for a secret in it."""
    import sqlite3

    import prefect.settings

    db = sqlite3.connect(str(prefect.settings.PREFECT_SERVER_DATABASE_CONNECTION_URL.value()).split(":///", 1)[1])
    try:
        found = []
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for row in db.execute(f'SELECT * FROM "{table}"'):
                found += [f"{table}: {v if isinstance(v, str) else v.decode('utf-8', 'replace')}"
                          for v in row if isinstance(v, (str, bytes))]
        return "\n".join(found)
    finally:
        db.close()


def pytest_collection_modifyitems(config, items):
    """With xdist (``pytest -n 3 --dist loadgroup``; ``make test`` runs without it): the tests that
    measure a rate across processes share one group, so they run one at a time (side by side they
    would measure each other), and they and the slow tests come first, so no long test is left
    alone at the end."""
    for item in items:
        if item.get_closest_marker("rate_measured"):
            item.add_marker(pytest.mark.xdist_group("rate_measured"))
    items.sort(key=lambda item: (not item.get_closest_marker("rate_measured"), not item.get_closest_marker("slow")))


def pytest_sessionfinish(session, exitstatus):
    """Fail the run when a test was skipped and every test is required (CI)."""
    if os.environ.get("CSV_MERGER_REQUIRE_ALL_TESTS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped:
        reporter.write_line("")
        reporter.write_line(f"CSV_MERGER_REQUIRE_ALL_TESTS=1: {skipped} test(s) skipped, none may be", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(params=["local", "redis"])
def store_env(request, tmp_path) -> dict[str, str]:
    """The environment for a CLI process whose ledgers and indexes live either
    in the local data folder ("local") or in the session's redis-server ("redis")."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["CSV_MERGER_DATA_DIR"] = str(tmp_path / "data")
    if request.param == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    return env
