"""``csv-merger setup`` and ``csv-merger worker``: the Prefect work pool side.

``setup`` prepares the Prefect API in ``PREFECT_API_URL`` (work pool,
blocks, deployments; see deployments/setup.py). ``worker`` starts a Prefect
process worker polling the pool (``WORK_POOL``); run one per machine or
Railway replica. The pool's concurrency limit (``WORKER_COUNT``), not the
number of workers, caps how many flow runs execute at once.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

import typer

from csv_merger.cli.app import app
from csv_merger.errors import ConfigError


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
    """Start a Prefect process worker on the csv-merger work pool (runs until stopped)."""
    from csv_merger.settings import get_settings

    _require_api()
    args = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool or get_settings().work_pool,
            "--type", "process"]
    if name:
        args += ["--name", name]
    os.execv(sys.executable, args)
