"""Where the table starts and how it is written: delimiter, quoting style,
preamble and header, chosen from a sample of the decoded text.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass

from tasks.merge.cleaning import EMAIL_RE

DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")
"""Candidate delimiters. On a perfect tie the one rarest inside text wins
(TAB, then ``|``, then ``;``): a TSV whose header and rows each hold one
comma ("City, State" / "Austin, TX") is still a TSV."""

SAMPLE_CHARS = 1 << 20
"""Upper bound of decoded text read to detect dialect, preamble and header."""

SNIFF_RECORDS = 100
"""Records (header included) compared when choosing the delimiter."""

MAX_PREAMBLE = 20
"""Records before the header that may be skipped as preamble."""


def dialect(delimiter: str, escape: bool, strict: bool = False) -> dict:
    """Keyword arguments for ``csv.reader``: RFC 4180 doubled quotes, or
    backslash escapes when ``escape``."""
    if escape:
        return {"delimiter": delimiter, "doublequote": False, "escapechar": "\\", "strict": strict}
    return {"delimiter": delimiter, "strict": strict}


SEP_LINE = re.compile(r"sep=(.)[ \t]*(?:\r\n|\r|\n|$)", re.IGNORECASE)
_CONTROL_RUN = re.compile(r"\s*[\x00-\x1f\x7f]+[\s\x00-\x1f\x7f]*")
_NUMBER = re.compile(r"[+-]?\d+(?:[.,]\d+)?")


@dataclass
class Layout:
    """Where the table starts and how it is written, from the sample."""

    delimiter: str
    escape: bool
    header_line: int              # 0: no header (empty file)
    raw_header: list[str]
    has_data: bool
    preamble: list[list[str]]     # non-blank records skipped before the header


def _is_blank(row: list[str]) -> bool:
    return not any(row) or (len(row) == 1 and not row[0].strip())


def _parse(text: str, delimiter: str, escape: bool, complete: bool,
           strict: bool = False) -> list[tuple[int, list[str]]]:
    """The first SNIFF_RECORDS + MAX_PREAMBLE non-blank records of ``text``
    as (start line, fields). ``complete``: ``text`` is the whole file (else
    the last record may be cut and is dropped). Raises csv.Error only when
    ``strict``."""
    reader = csv.reader(io.StringIO(text, newline=""), **dialect(delimiter, escape, strict))
    records: list[tuple[int, list[str]]] = []
    prev = 0
    try:
        for row in reader:
            if not _is_blank(row):
                records.append((prev + 1, row))
            prev = reader.line_num
            if len(records) > SNIFF_RECORDS + MAX_PREAMBLE:
                return records
    except csv.Error as exc:
        if strict and (complete or "unexpected end of data" not in str(exc)):
            raise
    if not complete and records:
        records.pop()
    return records


def _split_preamble(records: list[tuple[int, list[str]]]) -> int:
    """Index of the header among ``records``. Leading ``#`` records are
    preamble unless as wide as most records (a header like ``#,Name``);
    leading one-field records are preamble when at least two records share
    a wider usual field count (ties go to the wider count)."""
    counts = Counter(len(row) for _, row in records[:SNIFF_RECORDS])
    usual = max(counts, key=lambda width: (counts[width], width))
    i = 0
    while i < min(len(records) - 1, MAX_PREAMBLE):
        row = records[i][1]
        if row[0].lstrip().startswith("#"):
            if len(row) == usual and usual > 1:
                break
        elif len(row) != 1 or usual == 1 or counts[usual] < 2:
            break
        i += 1
    return i


def _choose(text: str, complete: bool, delimiters: tuple[str, ...], escape: bool):
    """Best (delimiter, records, header index) among ``delimiters``, or
    None when ``text`` holds no record. A header of one field loses to any
    wider one; then the share of rows with the header's field count decides,
    then fewer preamble records, then the header's width, then the rarer
    delimiter (see DELIMITERS)."""
    best = None
    for delimiter in delimiters:
        records = _parse(text, delimiter, escape, complete)
        if not records:
            continue
        start = _split_preamble(records)
        header, rest = records[start][1], records[start + 1:start + SNIFF_RECORDS]
        fits = sum(len(row) == len(header) for _, row in rest) / len(rest) if rest else 1.0
        score = (len(header) > 1, fits, -start, len(header), ",;|\t".find(delimiter))
        if best is None or score > best[0]:
            best = (score, delimiter, records, start)
    if best is None:
        return None
    (wide, *_), delimiter, records, start = best
    return (delimiter if wide else delimiters[0]), records, start


def _backslash_escaped(text: str, delimiter: str, complete: bool) -> bool:
    """True when ``text`` is not valid RFC 4180 but is valid with ``\\"``
    escapes (MySQL/PHP style)."""
    if '\\"' not in text:
        return False
    try:
        _parse(text, delimiter, False, complete, strict=True)
        return False
    except csv.Error:
        pass
    try:
        _parse(text, delimiter, True, complete, strict=True)
        return True
    except csv.Error:
        return False


def find_layout(text: str, complete: bool, forced: str | None, line_offset: int) -> Layout:
    """Choose delimiter, quoting style, preamble and header from ``text``
    (``forced``: a delimiter named by a ``sep=`` line)."""
    chosen = _choose(text, complete, (forced,) if forced else DELIMITERS, False)
    if chosen is None:
        return Layout(forced or ",", False, 0, [], False, [])
    delimiter, records, start = chosen
    escape = _backslash_escaped(text, delimiter, complete)
    if escape:
        _, records, start = _choose(text, complete, (delimiter,), True)
    return Layout(delimiter, escape, records[start][0] + line_offset, records[start][1],
                   len(records) > start + 1, [row for _, row in records[:start]])


def _clean_name(cell: str) -> str:
    return _CONTROL_RUN.sub(" ", cell.replace("\ufeff", "")).strip()


def clean_header(raw: list[str]) -> list[str]:
    """Header names as written, minus BOM, control characters and
    surrounding whitespace; trailing empty names dropped, an empty name in
    the middle (or every name, when all are empty) named ``Column N``
    (N = 1-based position)."""
    names = [_clean_name(cell) for cell in raw]
    width = len(names)
    while width and not names[width - 1]:
        width -= 1
    return [name or f"Column {i}" for i, name in enumerate(names[:width or len(names)], 1)]


def header_warnings(raw: list[str], header: list[str]) -> list[str]:
    warnings = []
    if len(raw) > len(header):
        warnings.append("header ends with a delimiter: the empty trailing column is dropped")
    written = [_clean_name(cell) for cell in raw[:len(header)]]
    filled = [name for name in written if name]
    if filled and (all(_NUMBER.fullmatch(name) for name in filled)
                   or any(EMAIL_RE.fullmatch(name.lower()) for name in filled)):
        warnings.append("first row looks like data, not a header: kept as the header, "
                        "so its values are column names, not a record")
    renamed = [header[i] for i, name in enumerate(written) if not name]
    if renamed:
        warnings.append(f"empty header name(s) named {', '.join(renamed)}")
    repeated = {name: k for name, k in Counter(header).items() if k > 1}
    if repeated:
        listed = ", ".join(f"{name!r} x{k}" for name, k in repeated.items())
        warnings.append(f"duplicate header names kept as separate columns: {listed}")
    return warnings


def read_sample(path: str, encoding: str, errors: str) -> tuple[str, bool]:
    """The file's first SAMPLE_CHARS characters (at least 200 lines when
    that fits), and whether that is the whole file."""
    with open(path, encoding=encoding, errors=errors, newline="") as f:
        parts: list[str] = []
        size = breaks = 0
        while size < SAMPLE_CHARS and breaks < 2 * (SNIFF_RECORDS + MAX_PREAMBLE):
            part = f.read(1 << 16)
            if not part:
                return "".join(parts), True
            parts.append(part)
            size += len(part)
            breaks += part.count("\n") + part.count("\r")
        return "".join(parts), f.read(1) == ""
