"""Wording of user-facing messages."""

from __future__ import annotations

STOPPED_EARLY = "stopped before delivery started: nothing sent"
"""What a Ctrl-C (or SIGTERM) before any row was sent did: ``run`` while Prefect starts, ``deliver`` while
it reads its input, any command while Python imports it."""


def plural(n: int, noun: str, *, sep: bool = False) -> str:
    """``n`` and ``noun`` in the number ``n`` asks for: ``"1 row"``, ``"0 rows"``, ``"2 rows"`` (regular
    plurals only: ``noun + "s"``). ``sep``: thousands separators (``"1,234 rows"``)."""
    return (f"{n:,}" if sep else str(n)) + " " + (noun if n == 1 else noun + "s")


GIVE = "give"
"""How a message asks for a file on the command line (and in flows): "give a CSV text file"."""

UPLOAD = "upload"
"""How a message asks for a file on the web page, where files are uploaded: "upload a CSV text file"."""
