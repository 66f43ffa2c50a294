"""Command line: ``csv-merger COMMAND``.

Each sub-command lives in its own module and registers itself on ``app``;
heavy imports (Prefect, httpx) happen inside the commands so that a quick
command stays quick. ``main`` turns expected errors into one line on stderr.
"""

from __future__ import annotations

import sys

from csv_merger.errors import CsvMergerError
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


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit code (0 ok, see errors.py)."""
    from csv_merger.cli.app import invoked_with

    invoked_with[:] = sys.argv[1:] if argv is None else argv
    try:
        app(args=argv, prog_name="csv-merger")  # standalone: usage errors exit 2
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except CsvMergerError as exc:
        print(f"csv-merger: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
