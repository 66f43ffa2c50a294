"""The Typer application every sub-command module registers on."""

import typer

app = typer.Typer(
    name="csv-merger",
    help="Merge lead-list CSVs and deliver them to a webhook at the target's rate.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Merge lead-list CSVs and deliver them to a webhook at the target's rate."""
