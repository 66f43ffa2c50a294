"""``open_csv``: inspect a file once and return a ``CsvSource`` to stream."""

from __future__ import annotations

from pathlib import Path

from csv_merger.errors import InputError
from csv_merger.wording import GIVE
from tasks.merge.reading.encoding import BLOCK_BYTES, detect_encoding
from tasks.merge.reading.layout import DELIMITERS, SEP_LINE, clean_header, find_layout, header_warnings, read_sample
from tasks.merge.reading.rows import CsvSource

EMPTY_FILE = "empty file"
ONLY_HEADER = "no data rows: only a header"
"""The warnings of a file without data rows; the merge and the web page give them as the reason."""


def open_csv(path: str | Path, *, verb: str = GIVE) -> CsvSource:
    """Inspect ``path`` and return a CsvSource ready to stream its rows.

    Reads the whole file once in 1 MiB blocks to validate its encoding
    (bounded memory). A 0-byte, blank or header-only file gives a source
    with a warning and no rows. Raises InputError (naming the file and the
    reason) for a missing, unreadable, binary, non-CSV or undecodable file
    (``verb``: how the binary check's hint asks for the right file, see
    ``csv_merger.binary.reject_binary``).
    """
    name = str(path)
    p = Path(path)
    if not p.exists():
        raise InputError(name, "file not found")
    if p.is_dir():
        raise InputError(name, "is a directory, not a CSV file")
    if not p.is_file():
        raise InputError(name, "not a regular file (a pipe or device?)")
    try:
        with open(p, "rb") as f:
            head = f.read(BLOCK_BYTES)
    except OSError as exc:
        raise InputError(name, f"cannot read the file: {exc.strerror or exc}") from None
    if not head:
        return CsvSource(name, "utf-8", ",", [], 0, warnings=[EMPTY_FILE])
    encoding, errors, nul, warnings = detect_encoding(name, head, verb=verb)
    if nul:
        warnings.append(f"{nul} NUL character(s) removed")
    text, complete = read_sample(name, encoding, errors)
    text = text.replace("\0", "")
    sep = SEP_LINE.match(text.lstrip("\ufeff"))
    forced = sep.group(1) if sep and sep.group(1) in DELIMITERS else None
    skip = text.lstrip("\ufeff")[sep.end():] if forced else text
    layout = find_layout(skip, complete, forced, 1 if forced else 0)
    source = CsvSource(name, encoding, layout.delimiter, clean_header(layout.raw_header),
                       layout.header_line, warnings, escape=layout.escape,
                       remove_nul=bool(nul), decode_errors=errors)
    if not layout.header_line:
        warnings.append(EMPTY_FILE)
        return source
    if layout.header_line > 1:
        preamble = [[sep.group(0).strip()]] if forced else []
        first = next(iter(preamble + layout.preamble), None)
        shown = f": first {layout.delimiter.join(first)[:60]!r}" if first else " (blank lines)"
        warnings.append(f"{layout.header_line - 1} line(s) before the header on line "
                        f"{layout.header_line} skipped as preamble{shown}")
    if layout.escape:
        warnings.append('quotes are escaped with backslashes (\\"), not doubled: read that way, '
                        "so any other backslash is read as an escape too")
    warnings += header_warnings(layout.raw_header, source.header)
    if complete and not layout.has_data:
        warnings.append(ONLY_HEADER)
    return source


def no_rows_reason(source: CsvSource) -> str | None:
    """None when the opened ``source`` has a data row, else why not
    (``EMPTY_FILE`` or ``ONLY_HEADER``). Reads at most one row; raises
    InputError as ``CsvSource.rows`` does."""
    rows = source.rows()
    try:
        if next(rows, None) is not None:
            return None
    finally:
        rows.close()
    return EMPTY_FILE if EMPTY_FILE in source.warnings else ONLY_HEADER
