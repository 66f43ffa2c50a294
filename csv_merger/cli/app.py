"""The Typer application every sub-command module registers on."""

from pathlib import Path

import typer

from csv_merger.errors import ConfigError

app = typer.Typer(
    name="csv-merger",
    help="Merge lead-list CSVs and deliver them to a webhook at the target's rate.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: wraps at any width, never cuts an option name off
)


@app.callback()
def _root() -> None:
    """Merge lead-list CSVs and deliver them to a webhook at the target's rate."""


def check_output_paths(**paths: Path | None) -> None:
    """Refuse, before any work, an output file (``option=path``) whose folder
    does not exist or that is a directory. Raises ConfigError naming the option."""
    for option, path in paths.items():
        if path is None:
            continue
        flag = "--" + option.replace("_", "-")
        if path.is_dir():
            raise ConfigError(f"{flag} {path}: is a directory, expected a file name")
        if not path.parent.is_dir():
            raise ConfigError(f"{flag} {path}: directory {path.parent} does not exist")
