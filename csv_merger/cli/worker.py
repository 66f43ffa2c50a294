"""``csv-merger setup`` and ``csv-merger worker``: the Prefect work pool side.

``setup`` prepares the Prefect API in ``PREFECT_API_URL`` (work pool,
blocks, deployments; see deployments/setup.py). ``worker`` starts a Prefect
process worker polling the pool (``WORK_POOL``); run one per machine or
Railway replica. The pool's concurrency limit (``WORKER_COUNT``), not the
number of workers, caps how many flow runs execute at once. Prefect's own
worker lets its flow runs go on after SIGTERM; ``worker`` cancels them first
(graceful stop, see ``worker``), so a redeploy or ``docker stop`` stops sending.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Optional

import typer

from csv_merger.cli.app import app
from csv_merger.cli.stopping import GracefulStop
from csv_merger.wording import plural
from csv_merger.errors import ConfigError

STOP_WAIT_S = 60.0  # for the cancelled runs' requests in flight, then for Prefect's worker to exit


def _require_api() -> None:
    if not os.environ.get("PREFECT_API_URL"):
        from prefect.settings import PREFECT_API_URL

        if not PREFECT_API_URL.value():
            raise ConfigError("PREFECT_API_URL is not set: point it at your Prefect server "
                              "(e.g. http://127.0.0.1:4200/api) or Prefect Cloud workspace")


@app.command()
def setup() -> None:
    """Create/update the work pool (limit WORKER_COUNT), register blocks, apply the deployments."""
    _require_api()
    from deployments.setup import main

    main()


@app.command()
def worker(
    pool: Optional[str] = typer.Option(None, "--pool", help="Work pool to poll (default: WORK_POOL, csv-merger)."),
    name: Optional[str] = typer.Option(None, "--name", help="Worker name shown in the Prefect UI."),
) -> None:
    """Start a Prefect process worker on the csv-merger work pool (runs until stopped).

    SIGTERM or Ctrl-C cancels the flow runs it executes (as Cancel in the UI:
    no new request within a second or two, summary and Cancelled state), then
    stops the worker; exit 143 (SIGTERM) or 130 (Ctrl-C).
    """
    from csv_merger.prefect_api import tied_popen
    from csv_merger.settings import get_settings

    _require_api()
    args = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool or get_settings().work_pool,
            "--type", "process"]
    if name:
        args += ["--name", name]
    import psutil  # noqa: F401  (imported now, as _stop_gracefully's: a stop must not wait seconds for imports)
    import prefect.client.orchestration  # noqa: F401
    import prefect.states  # noqa: F401

    with GracefulStop() as stop:
        child = tied_popen(args)  # its own session: a terminal's Ctrl-C is ours to handle; dies with us
        while child.poll() is None and stop.signum is None:
            time.sleep(0.2)
        if stop.signum is not None:
            _stop_gracefully(child)
    raise typer.Exit(stop.exit_code or child.returncode)


def _flow_run_processes(pid: int) -> dict[str, list]:
    """{flow run id: its processes} among the descendants of ``pid`` (a Prefect process worker
    starts each flow run with ``PREFECT__FLOW_RUN_ID`` in its environment)."""
    import psutil

    found: dict[str, list] = {}
    for proc in psutil.Process(pid).children(recursive=True):
        try:
            run_id = proc.environ().get("PREFECT__FLOW_RUN_ID")
        except psutil.Error:  # gone meanwhile
            continue
        if run_id:
            found.setdefault(run_id, []).append(proc)
    return found


def _stop_gracefully(child) -> None:
    """Cancel the flow runs under ``child`` through the API (its worker stops each run's process, whose
    delivery stops at once), wait for their processes to end and for the worker to record them
    Cancelled, then stop the worker itself."""
    import psutil
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling

    runs = _flow_run_processes(child.pid)
    print(f"csv-merger worker: stopping: cancelling {plural(len(runs), 'flow run')} (again to abort)",
          file=sys.stderr, flush=True)
    with get_client(sync_client=True) as client:
        for run_id in runs:
            try:
                client.set_flow_run_state(run_id, Cancelling(message="the worker is stopping"), force=True)
            except Exception as exc:  # already finished, or the API is gone: the wait below still bounds it
                print(f"csv-merger worker: flow run {run_id} not cancelled: {exc}", file=sys.stderr, flush=True)
        deadline = time.monotonic() + STOP_WAIT_S
        psutil.wait_procs([p for procs in runs.values() for p in procs], timeout=STOP_WAIT_S)
        while runs and time.monotonic() < deadline:  # the worker finalises a cancelled run after its exit
            if all(_is_final(client, run_id) for run_id in runs):
                break
            time.sleep(0.2)
    child.terminate()  # Prefect's worker: stop polling, then exit
    try:
        child.wait(timeout=STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _is_final(client, flow_run_id: str) -> bool:
    try:
        state = client.read_flow_run(flow_run_id).state
    except Exception:  # the API is away: nothing more to wait for
        return True
    return state is None or state.is_final()
