"""Read one CSV export as rows of text, whatever tool wrote it.

``open_csv(path)`` inspects the file once (encoding, binary check, dialect,
preamble, header) and returns a ``CsvSource``; ``CsvSource.rows()`` then
streams the data rows with bounded memory. Policies, each tested:

- Encoding: a byte-order mark decides (UTF-8, UTF-16 LE/BE, UTF-32); UTF-16
  without a BOM is recognised by its NUL pattern. Otherwise the whole file
  is scanned in 1 MiB blocks: valid UTF-8 is read as UTF-8; a file with no
  valid multi-byte UTF-8 at all is a legacy code page, detected with
  charset-normalizer on its non-ASCII lines, cp1252 preferred whenever
  charset-normalizer finds it plausible (Excel's Western default; it is a
  superset of latin-1's printable range); a file mixing valid UTF-8 with
  invalid bytes (two exports concatenated) is read as UTF-8 with each
  invalid byte read as cp1252, with a warning. The BOM never reaches a
  header.
- Delimiter: one of ``,`` ``;`` TAB ``|``, chosen by consistency of field
  counts over the first records parsed with the csv module (quotes
  respected), then fewer preamble lines, then the number of fields, then
  the delimiter rarest in text; a header with a single field gives ``,``
  (a one-column file is never split on a letter). An Excel
  ``sep=;`` first line is obeyed. Quotes are RFC 4180 (doubled); backslash
  escaping (``\\"``) is used only when the sample is not valid RFC 4180
  but is valid with backslash escapes (then a lone backslash elsewhere is
  also read as an escape: warned).
- Preamble: blank lines, one-field lines (titles, LinkedIn's ``Notes:``
  block) and ``#`` comment lines before the header are skipped, with a
  warning naming how many and the first one.
- Header: BOM, control characters (a run of whitespace holding one becomes
  one space) and surrounding whitespace are removed; everything else is
  kept as written. Trailing empty names (a trailing delimiter) are dropped;
  an empty name in the middle becomes ``Column N`` (N = 1-based position)
  so its values are kept. Duplicate names are kept (both columns), warned.
- Rows: every cell is text, as written (no stripping, no type inference).
  Blank lines and records whose cells are all empty are skipped. A short
  row is padded with "" and listed in ``bad_rows``; a long row keeps the
  first ``len(header)`` cells and puts the rest in ``surplus`` (listed),
  except that empty trailing cells (trailing delimiters) are just dropped.
  NUL characters are removed (warned). A quote never closed is reported
  on the record that swallowed the rest of the file (``unclosed_quote``;
  the merge refuses such a file).
- Spreadsheets (.xlsx, .xlsm, .xlsb, .xls, .ods, by name or content) are
  read by ``open_source`` with the ``spreadsheet`` module instead, one sheet
  per input (``book.xlsx#Sheet2``), every cell as the text it shows.
- Not CSV: known magic numbers (PDF, XLSX/ZIP, XLS, images, archives,
  SQLite), HTML/XML, JSON / JSON Lines (also behind a UTF-8
  BOM), over 5% control bytes or 30% NULs raise InputError
  with a hint (e.g. "export it as CSV"); so do missing files, directories,
  pipes and UTF-16/32 that does not decode. An empty or header-only file
  is a warning here (``EMPTY_FILE``, ``ONLY_HEADER``); the merge refuses a
  run in which no input has a data row.
- Line numbers are 1-based physical lines where a record starts; CR, LF and
  CRLF each end one line (Python's universal newlines), so quoted newlines
  and bare-CR files are counted right.
"""

from pathlib import Path

from csv_merger.wording import GIVE
from tasks.merge.reading.csv_file import EMPTY_FILE, ONLY_HEADER, no_rows_reason, open_csv
from tasks.merge.reading.encoding import BLOCK_BYTES, MIXED_FALLBACK
from tasks.merge.reading.layout import DELIMITERS, clean_header
from tasks.merge.reading.rows import BadRow, CsvSource, RawRow, Source
from tasks.merge.reading.spreadsheet import (
    SheetSource,
    is_spreadsheet,
    open_spreadsheet,
    split_sheet,
    workbook_inputs,
)


def open_source(path: str | Path, *, verb: str = GIVE) -> Source:
    """Open any input the merge reads: a workbook sheet (``.xlsx``, ``.xls``,
    ``.ods``, ``book.xlsx#Sheet``; ``spreadsheet`` module) or a CSV file
    (``open_csv``, ``verb`` as there). Both stream ``RawRow``s with the same
    reporting. Raises InputError naming the file and the reason."""
    return open_spreadsheet(path) if is_spreadsheet(path) else open_csv(path, verb=verb)


__all__ = ["BLOCK_BYTES", "DELIMITERS", "EMPTY_FILE", "MIXED_FALLBACK", "ONLY_HEADER", "BadRow", "CsvSource",
           "RawRow", "SheetSource", "Source", "clean_header", "is_spreadsheet", "no_rows_reason", "open_csv",
           "open_source", "split_sheet", "workbook_inputs"]
