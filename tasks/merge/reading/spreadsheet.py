"""Spreadsheets (.xlsx, .xlsm, .xlsb, .xls, .ods) read as rows of text, as
the spreadsheet shows them, through the same interface as a CSV file.

``open_spreadsheet("book.xlsx")`` reads the first sheet that holds data,
``open_spreadsheet("book.xlsx#Leads")`` the sheet named Leads;
``workbook_inputs(path)`` lists one ``book.xlsx#<sheet>`` input per sheet
with data, so that a merge reads every sheet (each reported on its own).
Reader: python-calamine (Rust calamine), which reads all four formats.

Cells become the text a spreadsheet shows in a General-formatted cell: text
as written (leading zeros kept), whole numbers without ``.0`` or exponent
(a phone stored as the number 14155550134 gives ``14155550134``, never
``1.4155550134E+10``), other numbers in their shortest form up to 15
significant digits (``0.1 + 0.2`` gives ``0.3``), dates and times (cells
with a date format, which the file stores as serial numbers) in ISO form
(``2024-03-01``, ``2024-03-01 09:30:00``), booleans as ``TRUE``/``FALSE``,
error cells as their code (``#N/A``). A number shown with a custom format
(zero padding such as ``00000``, currency) is read as its plain number: the
reader does not apply number formats.

Rows: leading empty rows are skipped; the first non-empty row is the header
(cleaned as a CSV header: ``layout.clean_header``); rows whose cells are all
empty are skipped; cells beyond the header's last name go to ``surplus``
and the row is listed in ``bad_rows``. ``line`` is the sheet's 1-based row
number.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from csv_merger.errors import InputError
from tasks.merge.reading.layout import clean_header, header_warnings
from tasks.merge.reading.rows import BadRow, RawRow, Source

SPREADSHEET_SUFFIXES = (".xlsx", ".xlsm", ".xlsb", ".xls", ".ods")
SHEET_MARK = "#"
"""Separates a workbook path from a sheet name: ``book.xlsx#Sheet2``."""

_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def split_sheet(path: str | Path) -> tuple[Path, str | None]:
    """``("book.xlsx", "Sheet2")`` for ``book.xlsx#Sheet2``; ``(path, None)``
    when no sheet is named (a ``#`` that follows no spreadsheet suffix is
    part of the file name, unless no such file exists and the part before it
    is a workbook by content: a workbook saved as ``export.csv`` has inputs
    ``export.csv#<sheet>``)."""
    text = str(path)
    base, mark, sheet = text.rpartition(SHEET_MARK)
    if mark and sheet and (base.lower().endswith(SPREADSHEET_SUFFIXES)
                           or (not os.path.lexists(text) and _sniffed_format(Path(base)) is not None)):
        return Path(base), sheet
    return Path(text), None


def is_spreadsheet(path: str | Path) -> bool:
    """True for a workbook: a spreadsheet suffix (before any ``#sheet``), or
    the content of one under another name (a ZIP holding ``xl/`` or an
    OpenDocument spreadsheet, or an OLE2 compound file). Never raises."""
    file, sheet = split_sheet(path)
    return sheet is not None or file.suffix.lower() in SPREADSHEET_SUFFIXES or _sniffed_format(file) is not None


def _sniffed_format(file: Path) -> str | None:
    """"xlsx", "ods" or "xls" from the file's first bytes; None for anything
    else or an unreadable file. Never raises."""
    if not file.is_file():  # opening a named pipe waits for a writer, for ever; reading it says what it is
        return None
    try:
        with open(file, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    if head.startswith(b"PK\x03\x04"):
        return "xlsx" if b"xl/" in head else "ods" if b"opendocument.spreadsheet" in head else None
    return "xls" if head.startswith(_OLE) else None


def cell_text(value: object) -> str:
    """The text a spreadsheet shows for one cell value of python-calamine."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        text = format(value, ".15g")
        if "e" in text:  # very small or large: write it out as a spreadsheet does
            text = format(value, ".15f").rstrip("0").rstrip(".")
        return text
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        seconds = int(value.total_seconds())
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return str(value)


def _workbook(file: Path, name: str):
    import python_calamine

    if not file.exists():
        raise InputError(name, "file not found")
    if not file.is_file():
        raise InputError(name, "not a regular file")
    try:
        return python_calamine.CalamineWorkbook.from_path(str(file))
    except Exception as exc:  # calamine raises its own error types and OSError
        raise InputError(name, f"cannot read the spreadsheet ({type(exc).__name__}: {exc})") from None


def _rows(sheet) -> Iterator[tuple[int, list[str]]]:
    """(1-based row number, cells as text) of every non-empty row
    (calamine's rows start at the sheet's first row, its cells at the first
    used column)."""
    for offset, values in enumerate(sheet.iter_rows()):
        cells = [cell_text(v) for v in values]
        if any(c.strip() for c in cells):
            yield offset + 1, cells


def workbook_inputs(path: str | Path) -> list[str]:
    """One input per sheet holding data (``book.xlsx#<sheet>``), in sheet
    order; ``[str(path)]`` when ``path`` names a sheet or only one sheet has
    data. Raises InputError for an unreadable workbook."""
    file, sheet = split_sheet(path)
    if sheet is not None:
        return [str(path)]
    book = _workbook(file, str(path))
    with_data = [name for name in book.sheet_names if next(_rows(book.get_sheet_by_name(name)), None)]
    if len(with_data) <= 1:
        return [str(path)]
    return [f"{file}{SHEET_MARK}{name}" for name in with_data]


@dataclass(kw_only=True)
class SheetSource(Source):
    """One sheet of workbook ``file``: a ``Source`` whose ``encoding`` is the
    format ("xlsx", "xls", "ods"...) and ``delimiter`` "", ``header_line``
    the sheet row of the header."""

    file: Path
    sheet: str

    def _records(self, bad_rows: list[BadRow]) -> Iterator[RawRow]:
        if not self.header_line:
            return
        book = _workbook(self.file, self.path)
        width = len(self.header)
        for line, cells in _rows(book.get_sheet_by_name(self.sheet)):
            if line <= self.header_line:
                continue
            surplus = cells[width:]
            while surplus and not surplus[-1].strip():
                surplus.pop()
            if surplus:
                bad_rows.append(BadRow(line, f"{len(cells)} cells, expected {width} "
                                             f"({len(surplus)} extra kept as surplus)"))
            yield RawRow(line, (cells + [""] * width)[:width], surplus)


def open_spreadsheet(path: str | Path) -> SheetSource:
    """Open one sheet of a workbook (``book.xlsx#Sheet`` or the first sheet
    with data). An empty workbook or sheet gives a source with a warning and
    no rows. Raises InputError naming the file for a missing or unreadable
    workbook or an unknown sheet (listing the sheets it has)."""
    name = str(path)
    file, wanted = split_sheet(path)
    book = _workbook(file, name)
    names = list(book.sheet_names)
    if wanted is not None and wanted not in names:
        raise InputError(name, f"the workbook has no sheet {wanted!r} (sheets: {', '.join(names)})")
    suffix = file.suffix.lower()
    # The format, as a CSV file reports its encoding: a workbook saved under another name reports what it is.
    kind = suffix.lstrip(".") if suffix in SPREADSHEET_SUFFIXES else _sniffed_format(file) or "spreadsheet"
    candidates = [wanted] if wanted is not None else names
    for sheet in candidates:
        first = next(_rows(book.get_sheet_by_name(sheet)), None)
        if first is None:
            continue
        line, raw = first
        while raw and not raw[-1].strip():  # the sheet is as wide as its widest row
            raw = raw[:-1]
        header = clean_header(raw)
        warnings = header_warnings(raw, header)
        if line > 1:
            warnings.append(f"{line - 1} empty row(s) before the header on row {line} skipped")
        if wanted is None and len(names) > 1:
            warnings.append(f"sheet {sheet!r} read (the workbook has {len(names)} sheets; name one as "
                            f"{file.name}{SHEET_MARK}<sheet>)")
        return SheetSource(name, kind, "", header, line, warnings, file=file, sheet=sheet)
    what = f"sheet {wanted!r}" if wanted is not None else "workbook"
    return SheetSource(name, kind, "", [], 0, [f"empty {what}"], file=file, sheet=candidates[0] if candidates else "")
