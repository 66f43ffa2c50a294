"""Command line: ``csv-merger COMMAND``.

Each sub-command lives in its own module and registers itself on ``app``
(``commands`` imports them all); heavy imports (Prefect, httpx) happen inside
the commands so that a quick command stays quick. ``main`` turns expected
errors into one line on stderr, a Ctrl-C before any work too: its handler
is in place before anything heavy is imported (``stopping.StopWhileLoading``),
so this module imports nothing else that takes time.
"""

from __future__ import annotations

import sys

from csv_merger.cli.stopping import StopWhileLoading


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit code (0 ok, see errors.py). A Ctrl-C before the
    command's work starts (while it loads, or before delivery starts) exits 130 with one line."""
    with StopWhileLoading():
        return _run_app(argv)


def _run_app(argv: list[str] | None) -> int:
    from csv_merger.cli.app import invoked_with
    from csv_merger.cli.commands import app
    from csv_merger.errors import CsvMergerError

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
