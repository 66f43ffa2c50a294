"""Dead-letter CSV: rows that were not delivered, and why.

Columns: the row's own columns (merged-CSV header order), then
``_row_number`` (1-based data row), ``_status`` (HTTP status, or a word for
rows never answered: ``not-sent``, ``timeout``, ``connection-error``),
``_reason`` (one line), ``_response`` (first 500 bytes of the response
body, decoded as UTF-8 with replacement) and ``_attempts`` (requests sent).
UTF-8, written row by row and flushed, so a crash keeps what was written.
The file is created on the first dead row only and replaced on each run
(a resumed job retries earlier dead rows).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

from csv_merger.errors import InputError

DEAD_LETTER_COLUMNS = ("_row_number", "_status", "_reason", "_response", "_attempts")
RESPONSE_EXCERPT_BYTES = 500


def response_excerpt(body: bytes) -> str:
    """First 500 bytes of a response body as text (invalid UTF-8 replaced)."""
    return body[:RESPONSE_EXCERPT_BYTES].decode("utf-8", errors="replace")


class DeadLetterWriter:
    """Appends dead rows to ``path``; ``columns`` = the input's header."""

    def __init__(self, path: str | Path, columns: Sequence[str]):
        self.path, self.columns, self.count = Path(path), list(columns), 0
        self._file = None
        self._writer = None

    def write(self, row_number: int, record: Mapping[str, str], *, status: int | str, reason: str,
              response: str = "", attempts: int = 0) -> None:
        """Append one dead row (creates the file with its header first)."""
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", encoding="utf-8", newline="")
            self._writer = csv.writer(self._file)
            self._writer.writerow([*self.columns, *DEAD_LETTER_COLUMNS])
        self._writer.writerow([*(record.get(c, "") for c in self.columns),
                               row_number, status, reason, response, attempts])
        self._file.flush()
        self.count += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def read_dead_letter(path: str | Path) -> list[tuple[int, dict[str, str]]]:
    """The rows of a dead-letter file as (original row number, record) with the
    ``DEAD_LETTER_COLUMNS`` removed and every other cell exactly as written,
    so a re-delivery sends the original values under the original
    Idempotency-Keys. Raises InputError naming the file (and line) when it is
    not a dead-letter file, holds no row, or a row number is not a positive
    whole number. Its other columns are not checked against the merged
    schema: the rows were accepted for delivery once and keep their keys."""
    try:
        f = open(path, encoding="utf-8", newline="")
    except OSError as exc:
        raise InputError(str(path), f"cannot open: {exc.strerror or exc}") from None
    with f:
        reader = csv.DictReader(f)
        missing = [c for c in DEAD_LETTER_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(str(path), f"not a dead-letter file: no {', '.join(missing)} column")
        columns = [c for c in reader.fieldnames if c not in DEAD_LETTER_COLUMNS]
        rows = []
        for record in reader:
            number = record["_row_number"]
            if not number.isdigit() or int(number) < 1:
                raise InputError(str(path), f"_row_number {number!r} is not a row number", line=reader.line_num)
            if None in record:
                raise InputError(str(path), "row has more cells than the header", line=reader.line_num)
            rows.append((int(number), {c: "" if record[c] is None else record[c] for c in columns}))
        if not rows:
            raise InputError(str(path), "no data rows: only a header; nothing to deliver again")
        return rows
