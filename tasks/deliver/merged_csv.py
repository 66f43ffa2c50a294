"""Reading the merge's output back as rows to deliver."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from csv_merger.binary import reject_binary_file
from csv_merger.errors import InputError
from csv_merger.schema import TableType, fields_for

MERGE_FIRST = "run `csv-merger merge` first, or `csv-merger run` to merge and deliver in one step"

OTHER_SEPARATORS = {";": "semicolon", "\t": "tab", "|": "pipe"}
"""Separators of raw exports: a one-column header holding one of them means
the file is not a merged CSV (which ``csv-merger merge`` writes with commas)."""


def read_merged_csv(path: str | Path, table_type: TableType | None = None) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a merged CSV as (1-based data row number, {header: text}).

    UTF-8 (BOM allowed). Raises InputError naming the file (and line) for a
    missing/undecodable file, a binary one (with the reason ``csv-merger merge``
    gives: ``csv_merger.binary``), an empty file, a header that is not the merged
    schema (``check_merged_header``: a raw export, or the other table type's
    merge when ``table_type`` is given), a duplicate header, a
    quote never closed, a row with more cells than the header, or no data row
    (raised once the header was read and the file ended); short rows are
    padded with "".
    """
    reject_binary_file(path)  # a PNG is "a PNG image", not "not UTF-8"
    try:
        f = open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputError(str(path), f"cannot open: {exc.strerror or exc}") from None
    with f:
        reader = csv.reader(f, strict=True)  # a quote never closed is an error, not one record to the end
        n, header = 0, None
        try:
            header = next(reader, None)
            if not header:
                raise InputError(str(path), f"empty file (no header, no rows): nothing to deliver; {MERGE_FIRST}")
            _refuse_raw_export(str(path), header)
            check_merged_header(str(path), header, table_type)
            dupes = sorted({h for h in header if header.count(h) > 1})
            if dupes:
                raise InputError(str(path), f"duplicate column names {dupes}: cannot build one JSON object per row")
            for cells in reader:
                if not cells:
                    continue
                n += 1
                if len(cells) > len(header):
                    raise InputError(str(path), f"row {n} has {len(cells)} cells, the header has {len(header)}",
                                     line=reader.line_num)
                yield n, dict(zip(header, cells + [""] * (len(header) - len(cells))))
            if not n:
                raise InputError(str(path), "no data rows: only a header; nothing to deliver")
        except UnicodeDecodeError as exc:
            raise InputError(str(path), f"not UTF-8 (a merged CSV is UTF-8): {exc.reason}") from None
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                where = f"row {n + 1}" if n or header else "the header"
                raise InputError(str(path), f"{where} opens a quote that is never closed: it and every line after it"
                                            " would be one record; close or remove that quote") from None
            raise InputError(str(path), f"CSV error: {exc}", line=reader.line_num) from None


def refuse_neutralised(path: str | Path, rows: list[tuple[int, dict[str, str]]]) -> None:
    """Raise InputError naming the first cell that ``csv-merger merge`` neutralised for spreadsheets
    (a ``'`` before ``= + - @``): delivered as it stands, the target would get the value changed.
    ``rows``: (row number, record) as ``read_merged_csv`` yields them."""
    for number, record in rows:
        for field, value in record.items():
            if value[:1] == "'" and value[1:2] in ("=", "+", "-", "@"):
                raise InputError(str(path), f"row {number}, field {field}: {value!r} was neutralised by `csv-merger "
                                 "merge` for spreadsheets (the ' before a formula sign), so the target would get it "
                                 "changed; merge again with --no-neutralise-formulas to deliver exact values, or use "
                                 "`csv-merger run`")


def _refuse_raw_export(path: str, header: list[str]) -> None:
    """Raise InputError when the header is one column holding another
    separator: each row would be sent as one field named after the whole header."""
    if len(header) != 1:
        return
    for sep, name in OTHER_SEPARATORS.items():
        if sep in header[0]:
            raise InputError(path, f"the header is one column holding {name} ({sep!r}) separators: this does not "
                                   f"look like a merged CSV; {MERGE_FIRST}", line=1)


def check_merged_header(path: str, header: list[str], table_type: TableType | None = None) -> None:
    """Raise InputError unless ``header`` holds every canonical field of the
    people or the company schema (of ``table_type`` when given), ``Source``
    included, as ``csv-merger merge`` writes them (further columns are kept
    columns and allowed; ``Company Email 1`` stands for ``Company Email``). A
    raw export sent as is would skip mapping, cleaning and de-duplication, and
    the lead index could not match its rows; the other type's merge would be
    shaped and indexed as the wrong kind of lead, so the message names the
    ``--type`` it was merged as. Otherwise the message names the columns
    missing for the schema of which more columns are there (people on a tie).
    """
    present = set(header)
    if "Company Email 1" in present:
        present.add("Company Email")
    types: tuple[TableType, ...] = ("people", "company")
    merged_as = [t for t in types if present.issuperset(fields_for(t))]
    if merged_as and (table_type is None or table_type in merged_as):
        return
    if merged_as:
        [other] = merged_as
        missing = [f for f in fields_for(table_type) if f not in present]
        raise InputError(path, f"merged as {other}, not {table_type}: its header has every {other} column but lacks "
                               f"{_listed(missing)}; deliver it with --type {other}", line=1)
    schema = max((fields_for(t) for t in types), key=lambda fields: len(present.intersection(fields)))
    missing = [f for f in schema if f not in present]
    raise InputError(path, f"not a merged CSV: its header lacks {len(missing)} merged column(s) ({_listed(missing)}); "
                           f"{MERGE_FIRST}", line=1)


def _listed(columns: list[str]) -> str:
    """The first six ``columns`` and how many more."""
    return ", ".join(columns[:6]) + (f" and {len(columns) - 6} more" if len(columns) > 6 else "")
