"""``csv-merger version``."""

from csv_merger import __version__
from csv_merger.cli.app import app


@app.command()
def version() -> None:
    """Print the installed version."""
    print(__version__)
