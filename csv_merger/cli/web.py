"""``csv-merger web``: serve the upload page (ui_static/) and the job API."""

from __future__ import annotations

from typing import Optional

import typer

from csv_merger.cli.app import app
from csv_merger.errors import ConfigError


@app.command()
def web(
    host: Optional[str] = typer.Option(None, help="Address to bind (default: CSV_MERGER_HOST, 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, min=1, max=65535, help="TCP port (default: PORT, 8000)."),
    allow_private_targets: bool = typer.Option(
        False, "--allow-private-targets",
        help="Accept webhook URLs on loopback/private addresses (a local sink, tests). Off in production.",
    ),
    embedded: bool = typer.Option(
        False, "--embedded",
        help="Run jobs in this process even when PREFECT_API_URL is set (the API then only tracks them).",
    ),
    deployment: str = typer.Option(
        "merge-and-deliver/merge-and-deliver", help="With a Prefect API: the deployment (flow/deployment) jobs run.",
    ),
) -> None:
    """Upload page and job API: drop CSVs, check the mapping, start, watch, cancel, download.

    Beyond loopback the API demands CSV_MERGER_API_TOKEN and the server will
    not start without it. Jobs run as flow runs of the merge-and-deliver
    deployment when PREFECT_API_URL is set, else embedded in this process.
    """
    import socket

    import uvicorn

    from csv_merger.prefect_api import tie_ephemeral_api
    from csv_merger.settings import get_settings
    from csv_merger.web import create_app

    tie_ephemeral_api()  # an ephemeral API (no PREFECT_API_URL) dies with this server, whatever kills it
    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    application = create_app(settings, host=host, allow_private_targets=allow_private_targets,
                             embedded=embedded, deployment=deployment)
    try:  # bound here, so a busy or bad address is one line before anything is printed or started
        listener = socket.create_server((host, port))
    except (OSError, OverflowError) as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {getattr(exc, 'strerror', None) or exc}") from None
    application.state.service.runner.prepare()  # start Prefect's API now, not at the first job
    print(f"csv-merger web: http://{host}:{port}/ ({application.state.service.runner.name} runs)", flush=True)
    uvicorn.Server(uvicorn.Config(application, log_level="warning")).run(sockets=[listener])
