"""Every sub-command, registered on ``app`` by importing its module (``main`` imports this once its
Ctrl-C handler is in place: these imports take most of a second)."""

from csv_merger.settings import set_prefect_defaults

# No telemetry from an offline machine, time for the ephemeral API to start: before anything imports Prefect.
set_prefect_defaults()

from csv_merger.cli.app import app  # noqa: E402
from csv_merger.cli import version  # noqa: E402,F401  (registers commands)
from csv_merger.cli import run  # noqa: E402,F401
from csv_merger.cli import demo  # noqa: E402,F401
from csv_merger.cli import worker  # noqa: E402,F401
from csv_merger.cli import web  # noqa: E402,F401
from csv_merger.cli import sink  # noqa: E402,F401
from csv_merger.cli import deliver  # noqa: E402,F401
from csv_merger.cli import merge  # noqa: E402,F401
from csv_merger.cli import destinations  # noqa: E402,F401
from csv_merger.cli import mappings  # noqa: E402,F401

__all__ = ["app"]
