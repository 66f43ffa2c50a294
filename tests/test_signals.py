"""Stopping csv-merger's processes the way the world does (issue 9): SIGTERM (docker stop, systemd,
Railway), Ctrl-C in a real (pseudo-)terminal, SIGKILL. Real processes throughout: the `csv-merger`
command, its own ephemeral Prefect API, a real sink.

A graceful stop means: no request reaches the sink more than 2 s after the signal, the summary is
written with counts equal to what the sink accepted, the run ends Cancelled, exit 128 + signal.
Prefect's ephemeral API is our child: it never outlives us.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from csv_merger.testing import find_free_port, wait_for_port, write_merged_csv

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(str(p) for p in (REPO / "examples").glob("*.csv"))
API = "prefect.server.api.server"


def _env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "CSV_MERGER_API_TOKEN"))}
    env.update(CSV_MERGER_DATA_DIR=str(tmp_path / "data"), PREFECT_HOME=str(tmp_path / "prefect"))
    return env  # no PREFECT_API_URL: the command starts Prefect's ephemeral API, as a user gets it


def _run_args(sink, tmp_path: Path) -> list[str]:
    return [sys.executable, "-m", "csv_merger", "run", *EXAMPLES, "--webhook-url", sink.url,
            "--allow-private-targets", "--rate", "10", "--burst", "5", "--summary", str(tmp_path / "summary.json")]


def _prefect_api(pid: int, timeout: float = 60.0) -> psutil.Process:
    """The ephemeral Prefect API started by process ``pid``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for p in psutil.Process(pid).children(recursive=True) if API in " ".join(p.cmdline())]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"process {pid} never started Prefect's API")


def _assert_graceful(sink, signalled_at: float, summary_path: Path, label: str) -> None:
    """Nothing sent 2 s after the signal; the summary says Cancelled with the sink's exact count."""
    records = sink.records()
    late = max(r["t"] for r in records) - signalled_at
    print(f"{label}: {len(records)} rows accepted, last request {late:+.2f} s after the signal")
    assert late <= 2.0
    summary = json.loads(summary_path.read_text())
    assert summary["state"] == "Cancelled" and summary["delivery"]["cancelled"]
    assert summary["delivery"]["delivered"] == len(records) == len({r["key"] for r in records}) < 80


@pytest.mark.timeout(300)
@pytest.mark.slow
def test_sigterm_to_run_cancels_gracefully_and_stops_its_prefect_api(sink_factory, tmp_path):
    sink = sink_factory(rate=100, burst=100)
    proc = subprocess.Popen(_run_args(sink, tmp_path), env=_env(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    api = _prefect_api(proc.pid)
    sink.wait_accepted(10, proc)
    proc.send_signal(signal.SIGTERM)
    signalled_at = time.time()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in out + err and "[Cancelled]" in out
    _assert_graceful(sink, signalled_at, tmp_path / "summary.json", "run, SIGTERM")
    gone, alive = psutil.wait_procs([api], timeout=15)
    assert not alive, "Prefect's API outlived csv-merger run"


@pytest.mark.timeout(300)
@pytest.mark.slow
def test_ctrl_c_in_a_terminal_cancels_gracefully(sink_factory, tmp_path):
    """The terminal sends SIGINT to its whole foreground process group, not only to csv-merger."""
    import fcntl
    import pty
    import termios

    sink = sink_factory(rate=100, burst=100)
    master, slave = pty.openpty()
    proc = subprocess.Popen(_run_args(sink, tmp_path), env=_env(tmp_path), cwd=tmp_path, stdin=slave,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))  # our pty: its terminal
    os.close(slave)
    try:
        _prefect_api(proc.pid)
        sink.wait_accepted(10, proc)
        os.write(master, b"\x03")  # Ctrl-C, typed
        signalled_at = time.time()
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(master)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in out + err and "ConnectError" not in err and "[Cancelled]" in out
    _assert_graceful(sink, signalled_at, tmp_path / "summary.json", "run, Ctrl-C in a terminal")


@pytest.mark.timeout(300)
@pytest.mark.slow
def test_a_resumed_run_cancelled_again_counts_the_rows_the_earlier_run_delivered(sink_factory, tmp_path):
    """The cancel line of a resume said "N of 80 rows delivered", as if the earlier run's rows were still to
    send; now it names them too, and this run's count plus the earlier run's is what the sink accepted."""
    sink = sink_factory(rate=100, burst=100)
    counts, lines = [], []
    for stop_at in (10, 20):  # the second run resumes the same job (same rows, same URL) from the ledger
        proc = subprocess.Popen(_run_args(sink, tmp_path), env=_env(tmp_path), cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        sink.wait_accepted(stop_at, proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 143, err
        summary = json.loads((tmp_path / "summary.json").read_text())
        counts.append(summary["delivery"]["delivered"])
        lines.append(err.strip().splitlines()[-1])
    first, second = counts
    job = summary["job_id"]
    assert summary["delivery"]["skipped_already_delivered"] == first
    assert first + second == sink.stats()["accepted"] < 80
    assert lines == [f"csv-merger: error: job {job} cancelled: {first} of 80 rows delivered",
                     f"csv-merger: error: job {job} cancelled: {second} of 80 rows delivered "
                     f"({first} more delivered by an earlier run)"]


@pytest.mark.timeout(300)
def test_prefect_api_dies_with_a_killed_run_or_web(sink_factory, tmp_path):
    sink = sink_factory(rate=100, burst=100)
    run = subprocess.Popen(_run_args(sink, tmp_path), env=_env(tmp_path), cwd=tmp_path,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = find_free_port()
    web = subprocess.Popen([sys.executable, "-m", "csv_merger", "web", "--port", str(port)], env=_env(tmp_path),
                           cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    apis = []
    try:
        wait_for_port(port, timeout=60)
        apis = [_prefect_api(run.pid), _prefect_api(web.pid)]
        run.kill()
        web.kill()
        gone, alive = psutil.wait_procs(apis, timeout=15)
        assert not alive, f"Prefect API outlived its parent: {[p.pid for p in alive]}"
    finally:
        for proc in (run, web, *apis):
            if proc.poll() is None if isinstance(proc, subprocess.Popen) else proc.is_running():
                proc.kill()


def _catches_sigterm(pid: int) -> bool:
    """True once ``pid`` has a SIGTERM handler: `run` installs its stop handler (SIGINT is caught from start)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


@pytest.mark.timeout(300)
def test_ctrl_c_while_prefect_starts_sends_nothing_and_writes_the_summary(sink_factory, tmp_path):
    """Ctrl-C (SIGINT to the process group) once `run` handles signals, before its Prefect API is up."""
    sink = sink_factory(rate=100, burst=100)
    proc = subprocess.Popen(_run_args(sink, tmp_path), env=_env(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    children: set[psutil.Process] = set()
    try:
        while not _catches_sigterm(proc.pid):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.01)
        children.update(psutil.Process(proc.pid).children(recursive=True))
        os.killpg(proc.pid, signal.SIGINT)
        signalled_at = time.monotonic()
        out, err = proc.communicate(timeout=120)
        print(f"run, Ctrl-C while starting: exit {proc.returncode} {time.monotonic() - signalled_at:.2f} s after")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in out + err
    assert "stopped before delivery started: nothing sent" in err
    assert sink.stats()["accepted"] == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["state"] == "Cancelled" and summary["delivery"] is None
    gone, alive = psutil.wait_procs(list(children), timeout=5)
    assert not alive


@pytest.mark.timeout(300)
def test_double_ctrl_c_leaves_no_prefect_api_behind(sink_factory, tmp_path):
    """The second Ctrl-C ends `run` at once: its ephemeral API is killed first, not left to a slow shutdown."""
    sink = sink_factory(rate=100, burst=100)
    proc = subprocess.Popen(_run_args(sink, tmp_path), env=_env(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    api = None
    try:
        api = _prefect_api(proc.pid, timeout=180)
        sink.wait_accepted(5, proc)
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)
        proc.communicate(timeout=30)
        exited_at = time.monotonic()
        gone, alive = psutil.wait_procs([api], timeout=0.5)  # killed before run exits (was: ~1 s more)
        print(f"run, double Ctrl-C: API gone {time.monotonic() - exited_at:.2f} s after run exited")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        if api is not None and api.is_running():
            api.kill()
    assert proc.returncode == -signal.SIGINT
    assert not alive, "Prefect's API outlived csv-merger run's second Ctrl-C"


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def _demo_at(proc: subprocess.Popen, moment: str, record: Path) -> list[psutil.Process]:
    """Wait until the demo ``proc`` reaches ``moment`` ("starting": it handles signals and its sink was started;
    "delivering": its sink accepted 30 rows; "ending": all 80), then return its processes (sink, Prefect API)."""
    sink_started = lambda: any("sink" in p.cmdline() for p in psutil.Process(proc.pid).children())  # noqa: E731
    reached = {"starting": lambda: _catches_sigterm(proc.pid) and sink_started(),
               "delivering": lambda: len(_lines(record)) >= 30, "ending": lambda: len(_lines(record)) >= 80}[moment]
    deadline = time.monotonic() + 180
    while not reached():
        assert proc.poll() is None and time.monotonic() < deadline, f"exit {proc.returncode} before {moment}"
        time.sleep(0.01)
    return psutil.Process(proc.pid).children(recursive=True)


@pytest.mark.timeout(300)
@pytest.mark.slow
@pytest.mark.parametrize("moment, signum", [("starting", signal.SIGINT), ("delivering", signal.SIGINT),
                                            ("delivering", signal.SIGTERM), ("ending", signal.SIGINT)])
def test_a_stop_to_the_demos_process_group_ends_it_cleanly_and_leaves_no_process(moment, signum, tmp_path):
    """Ctrl-C (SIGINT to the process group) or SIGTERM to it stopped the demo's sink first, and the demo, asking
    the dead sink what it received, ended with an httpx.ConnectError traceback, exit 1. Now, at any moment:
    the usual stop lines, the sink's true count, exit 128 + signal, and neither the sink nor Prefect's API left."""
    out_dir, signalled_at = tmp_path / "demo", 0.0
    record = out_dir / "sink-received.jsonl"
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "csv_merger", "demo", "--output-dir", str(out_dir)],
                                env=_env(tmp_path), cwd=tmp_path, stdout=out, stderr=err, start_new_session=True)
    try:
        children = _demo_at(proc, moment, record)
        os.killpg(proc.pid, signum)
        signalled_at = time.time()
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out, err = (tmp_path / "out.txt").read_text(), (tmp_path / "err.txt").read_text()
    records = [json.loads(line) for line in _lines(record)]
    print(f"demo, {signal.Signals(signum).name} while {moment}: exit {proc.returncode}, {len(records)} rows "
          f"accepted, stderr ends {err.strip()[-90:]!r}")
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, f"left running: {[p.cmdline()[:4] for p in alive]}"
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in out + err and "Error" not in err
    last = err.strip().splitlines()[-1]
    if moment == "starting":
        assert last.endswith("stopped before delivery started: nothing sent") and not records
    elif moment == "delivering":
        assert "csv-merger: stopping: no new requests" in err and "[Cancelled]" in out
        assert max(r["t"] for r in records) - signalled_at <= 2.0
        assert re.fullmatch(rf"csv-merger: error: job job-\w+ cancelled: {len(records)} of 80 rows delivered", last)
        assert f"received {len(records)} rows ({len(records)} distinct idempotency keys" in out and len(records) < 80
    else:
        assert f"received 80 rows (80 distinct idempotency keys" in out


def _own_imports_begun(pid: int) -> bool:
    """True once process ``pid`` maps a compiled module from site-packages: csv-merger's own imports have
    begun. Python's start-up (interpreter, site, the few imports that reach ``main``) maps none, and no
    program can answer a signal there; ``main`` installs its Ctrl-C handler before it imports anything."""
    try:
        return any(".so" in line and "site-packages" in line for line in Path(f"/proc/{pid}/maps").open())
    except (FileNotFoundError, ProcessLookupError):  # it ended
        return True


EARLY_MOMENTS_S = (0.05, 0.1, 0.2, 0.3, 0.5, 0.8)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("command", ["run", "deliver"])
def test_ctrl_c_at_any_early_moment_is_one_line_and_exit_130(command, tmp_path):
    """SIGINT 0.05 .. 0.8 s after start (while Python imports the commands, typer parses, deliver reads its
    input or run starts Prefect): never a traceback, exit 130, one line. A moment that falls in Python's own
    start-up waits for its end (``_own_imports_begun``), so no moment passes by luck."""
    target = ["--webhook-url", "http://127.0.0.1:9/hook", "--allow-private-targets"]  # nothing listens: nothing sent
    if command == "run":
        args = [*EXAMPLES, *target, "--summary", str(tmp_path / "summary.json")]
    else:
        rows = ({"Work Email": f"p{i}@example.com", "First Name": f"P{i}"} for i in range(100_000))
        args = [str(write_merged_csv(tmp_path / "merged.csv", rows)), *target]
    for moment in EARLY_MOMENTS_S:
        (tmp_path / "summary.json").unlink(missing_ok=True)
        proc = subprocess.Popen([sys.executable, "-m", "csv_merger", command, *args], env=_env(tmp_path), cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started = time.monotonic()
        try:
            while not _own_imports_begun(proc.pid):
                time.sleep(0.002)
            time.sleep(max(0.0, started + moment - time.monotonic()))
            sent_at = time.monotonic() - started
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        print(f"{command}, Ctrl-C {sent_at:.3f} s after start: exit {proc.returncode}, stderr {err.strip()[-90:]!r}")
        assert "Traceback" not in out + err, err
        assert proc.returncode == 130, err
        if "job id" not in err:  # before delivery started (deliver can reach it within 0.8 s: a graceful stop then)
            assert err.strip() == "csv-merger: stopped before delivery started: nothing sent"
        if (tmp_path / "summary.json").exists():  # run's own handler stopped it: its summary says so
            summary = json.loads((tmp_path / "summary.json").read_text())
            assert summary["state"] == "Cancelled" and summary["delivery"] is None
