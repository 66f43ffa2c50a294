"""Streaming an opened CSV's records and repairing ragged ones.

A ``CsvSource`` (built by ``open_csv``) re-reads the file from its header
line; a short row is padded with "", a long row's extra cells go to
``surplus``, each listed in ``bad_rows`` with its line; a quote never
closed is reported on the record that swallowed the rest of the file.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice

from csv_merger.errors import InputError
from tasks.merge.reading.layout import dialect

MAX_CELL_CHARS = 64 << 20
"""Largest cell read (csv's default, 128 KiB, refuses real notes fields);
a cell this big is almost surely a quote never closed."""
csv.field_size_limit(MAX_CELL_CHARS)


@dataclass(frozen=True)
class BadRow:
    """A row that did not fit the header: ``line`` is the 1-based physical
    line where the record starts, ``reason`` says what was done;
    ``unclosed_quote`` marks the record a never-closed quote ran to the end
    of the file (its lines were read as one record, not as rows)."""

    line: int
    reason: str
    unclosed_quote: bool = False


@dataclass(slots=True)
class RawRow:
    """One data record: ``cells`` has exactly ``len(header)`` texts (as in
    the file, not stripped); ``surplus`` holds fields beyond the header."""

    line: int
    cells: list[str]
    surplus: list[str]


@dataclass
class Source:
    """An opened input, ready to stream: what the merge uses of a CSV file
    (``CsvSource``) or a spreadsheet sheet (``spreadsheet.SheetSource``).

    ``header_line``: 1-based line (sheet row) of the header, 0 when the
    input is empty. ``warnings`` is filled when it is opened; ``bad_rows`` is
    (re)filled while ``rows()`` is iterated.
    """

    path: str
    encoding: str
    delimiter: str
    header: list[str]
    header_line: int
    warnings: list[str] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)

    def rows(self) -> Iterator[RawRow]:
        """Stream the data rows (header and preamble excluded). Each call
        re-opens the input and refills ``bad_rows``. Raises InputError if it
        cannot be read (e.g. a CSV quote never closed)."""
        self.bad_rows.clear()
        return self._records(self.bad_rows)

    def sample(self, n: int = 200) -> list[list[str]]:
        """The cells of the first ``n`` data rows, without touching ``bad_rows``."""
        records = self._records([])
        try:
            return [row.cells for row in islice(records, n)]
        finally:
            records.close()

    def _records(self, bad_rows: list[BadRow]) -> Iterator[RawRow]:
        raise NotImplementedError


@dataclass
class CsvSource(Source):
    """An opened CSV file. Build it with ``open_csv``.

    ``encoding`` is a Python codec name, ``delimiter`` one of
    ``layout.DELIMITERS``, ``header_line`` the 1-based physical line of the
    header. How to read the text: ``escape`` (quotes backslash-escaped, not
    doubled), ``remove_nul`` (the file holds NUL characters),
    ``decode_errors`` (a codec error handler: "strict", or MIXED_FALLBACK for
    mixed encodings).
    """

    escape: bool = False
    remove_nul: bool = False
    decode_errors: str = "strict"

    def _records(self, bad_rows: list[BadRow]) -> Iterator[RawRow]:
        if not self.header_line:
            return
        n = len(self.header)
        base = self.header_line - 1
        prev = start = 0
        row: list[str] = []
        try:
            with self._open() as lines:
                reader = csv.reader(lines, **dialect(self.delimiter, self.escape))
                next(reader, None)  # the header
                prev = reader.line_num
                for row in reader:
                    start = base + prev + 1
                    prev = reader.line_num
                    if len(row) == n and any(row):
                        yield RawRow(start, row, [])
                    elif any(row) and (len(row) > 1 or row[0].strip()):
                        yield _fit(row, n, start, base + prev, bad_rows)
            if base + prev > start and any(cell.endswith(("\n", "\r")) for cell in row):
                self._check_last_quote(start, base + prev, bad_rows)
        except csv.Error as exc:
            raise InputError(self.path, f"unreadable CSV ({exc}): is a quote never closed?",
                             line=base + prev + 1) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(self.path, f"cannot read the file any more: {exc}") from None

    @contextmanager
    def _open(self, skip: int | None = None) -> Iterator[Iterator[str]]:
        """The file's physical lines from line ``skip + 1`` (default: the
        header), NULs removed when needed."""
        with open(self.path, encoding=self.encoding, errors=self.decode_errors, newline="") as f:
            lines: Iterator[str] = iter(f)
            if self.remove_nul:
                lines = (line.replace("\0", "") for line in lines)
            yield islice(lines, self.header_line - 1 if skip is None else skip, None)

    def _check_last_quote(self, start: int, end: int, bad_rows: list[BadRow]) -> None:
        """The last record spans lines and ends with a line break: if a
        quote opened in it is never closed (the rest of the file was read
        into one field), say so in its bad-row entry (replacing the ragged
        one: a record that swallowed lines has no meaningful field count)."""
        with self._open(skip=start - 1) as lines:
            try:
                for _ in csv.reader(lines, **dialect(self.delimiter, self.escape, strict=True)):
                    pass
                return
            except csv.Error as exc:
                if "unexpected end of data" not in str(exc):
                    return
        if bad_rows and bad_rows[-1].line == start:
            bad_rows.pop()
        bad_rows.append(BadRow(start, f"a quote opened on this line is never closed: lines {start}-{end} "
                                      "(to the end of the file) were read as one record", unclosed_quote=True))


def _fit(row: list[str], n: int, start: int, end: int, bad_rows: list[BadRow]) -> RawRow:
    """Fit a ragged row to ``n`` cells without shifting any value."""
    spans = f"; record spans lines {start}-{end}" if end > start else ""
    fields = f"{len(row)} field{'s' if len(row) != 1 else ''}, expected {n}"
    if len(row) < n:
        bad_rows.append(BadRow(start, f"{fields} (padded with empty cells){spans}"))
        return RawRow(start, row + [""] * (n - len(row)), [])
    extra = row[n:]
    while extra and not extra[-1].strip():
        extra.pop()
    if extra:
        bad_rows.append(BadRow(
            start, f"{fields} ({len(extra)} extra kept as surplus){spans}"))
    return RawRow(start, row[:n], extra)
