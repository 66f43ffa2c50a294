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
  on the record that swallowed the rest of the file.
- Not CSV: known magic numbers (PDF, XLSX/ZIP, XLS, images, archives,
  SQLite), HTML/XML, over 5% control bytes or 30% NULs raise InputError
  with a hint (e.g. "export it as CSV"); so do missing files, directories,
  pipes and UTF-16/32 that does not decode. An empty or header-only file
  is a warning, never an error.
- Line numbers are 1-based physical lines where a record starts; CR, LF and
  CRLF each end one line (Python's universal newlines), so quoted newlines
  and bare-CR files are counted right.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from charset_normalizer import from_bytes

from csv_merger.errors import InputError
from tasks.cleaning import EMAIL_RE

DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")
"""Candidate delimiters. On a perfect tie the one rarest inside text wins
(TAB, then ``|``, then ``;``): a TSV whose header and rows each hold one
comma ("City, State" / "Austin, TX") is still a TSV."""

BLOCK_BYTES = 1 << 20
"""Bytes read per block when scanning a file's encoding."""

SAMPLE_CHARS = 1 << 20
"""Upper bound of decoded text read to detect dialect, preamble and header."""

SNIFF_RECORDS = 100
"""Records (header included) compared when choosing the delimiter."""

MAX_PREAMBLE = 20
"""Records before the header that may be skipped as preamble."""

NUL_SHARE = 0.3
"""Share of NULs (first block or whole file) above which a file is rejected
as binary; fewer NULs are removed with a warning."""

CONTROL_SHARE = 0.05
"""Share of other control bytes (not TAB, LF, VT, FF, CR, SUB) in the first
block above which a file is rejected as binary; text has next to none."""

MIXED_FALLBACK = "csv_merger.cp1252_fallback"

MAX_CELL_CHARS = 64 << 20
"""Largest cell read (csv's default, 128 KiB, refuses real notes fields);
a cell this big is almost surely a quote never closed."""
csv.field_size_limit(MAX_CELL_CHARS)
"""Codec error handler: reads each byte that is not valid UTF-8 as cp1252."""

_CP1252_OR_LATIN1 = [bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in range(256)]


def _cp1252_fallback(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start:exc.end]
    return "".join(_CP1252_OR_LATIN1[b] for b in bad), exc.end


codecs.register_error(MIXED_FALLBACK, _cp1252_fallback)


@dataclass(frozen=True)
class BadRow:
    """A row that did not fit the header: ``line`` is the 1-based physical
    line where the record starts, ``reason`` says what was done."""

    line: int
    reason: str


@dataclass(slots=True)
class RawRow:
    """One data record: ``cells`` has exactly ``len(header)`` texts (as in
    the file, not stripped); ``surplus`` holds fields beyond the header."""

    line: int
    cells: list[str]
    surplus: list[str]


@dataclass
class CsvSource:
    """An opened CSV file, ready to stream. Build it with ``open_csv``.

    ``encoding`` is a Python codec name, ``delimiter`` one of
    ``DELIMITERS``, ``header_line`` the 1-based physical line of the header
    (0 for an empty file). ``warnings`` is filled by ``open_csv``;
    ``bad_rows`` is (re)filled while ``rows()`` is iterated. How to read
    the text: ``escape`` (quotes backslash-escaped, not doubled),
    ``remove_nul`` (the file holds NUL characters), ``decode_errors`` (a
    codec error handler: "strict", or MIXED_FALLBACK for mixed encodings).
    """

    path: str
    encoding: str
    delimiter: str
    header: list[str]
    header_line: int
    warnings: list[str] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)
    escape: bool = False
    remove_nul: bool = False
    decode_errors: str = "strict"

    def rows(self) -> Iterator[RawRow]:
        """Stream the data rows (header and preamble excluded). Each call
        re-opens the file and refills ``bad_rows``. Raises InputError if the
        file cannot be parsed (e.g. an opening quote never closed)."""
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
        if not self.header_line:
            return
        n = len(self.header)
        base = self.header_line - 1
        prev = start = 0
        row: list[str] = []
        try:
            with self._open() as lines:
                reader = csv.reader(lines, **_dialect(self.delimiter, self.escape))
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
        into one field), say so in its bad-row entry."""
        with self._open(skip=start - 1) as lines:
            try:
                for _ in csv.reader(lines, **_dialect(self.delimiter, self.escape, strict=True)):
                    pass
                return
            except csv.Error as exc:
                if "unexpected end of data" not in str(exc):
                    return
        reason = f"a quote is never closed: lines {start}-{end} (end of file) were read as one record"
        if bad_rows and bad_rows[-1].line == start:
            reason = f"{bad_rows.pop().reason}; {reason}"
        bad_rows.append(BadRow(start, reason))


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


def _dialect(delimiter: str, escape: bool, strict: bool = False) -> dict:
    if escape:
        return {"delimiter": delimiter, "doublequote": False, "escapechar": "\\", "strict": strict}
    return {"delimiter": delimiter, "strict": strict}


# --- binary and non-CSV files ------------------------------------------------

_EXCEL = "export it as CSV (File > Save As > CSV UTF-8)"
_MAGIC: tuple[tuple[bytes, str, str], ...] = (
    (b"%PDF-", "a PDF document", "export the table as CSV"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 workbook (.xls) or other Office file", _EXCEL),
    (b"\x89PNG\r\n\x1a\n", "a PNG image", "upload the CSV file itself"),
    (b"\xff\xd8\xff", "a JPEG image", "upload the CSV file itself"),
    (b"GIF8", "a GIF image", "upload the CSV file itself"),
    (b"\x1f\x8b", "a gzip archive", "decompress it first"),
    (b"\xfd7zXZ\x00", "an xz archive", "decompress it first"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "extract the CSV first"),
    (b"Rar!\x1a\x07", "a RAR archive", "extract the CSV first"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive", "decompress it first"),
    (b"SQLite format 3\x00", "an SQLite database", "export the table as CSV"),
    (b"\x7fELF", "an executable", "upload a CSV file"),
)
_CONTROL_BYTES = bytes(b for b in range(1, 32) if b not in b"\t\n\r\x0b\x0c\x1a")


def _reject_binary(path: str, head: bytes) -> None:
    """Raise InputError if ``head`` (the file's first block) is not text."""
    def reject(what: str, hint: str) -> None:
        raise InputError(path, f"looks like {what}, not CSV: {hint}")

    if head.startswith(b"PK\x03\x04"):
        if b"xl/" in head or path.lower().endswith((".xlsx", ".xlsm")):
            reject("an Excel workbook (.xlsx)", _EXCEL)
        if b"content.xml" in head or path.lower().endswith(".ods"):
            reject("an OpenDocument spreadsheet (.ods)", "export it as CSV")
        reject("a ZIP archive", "extract the CSV first")
    if re.match(rb"BZh[1-9]1AY&SY", head):
        reject("a bzip2 archive", "decompress it first")
    for magic, what, hint in _MAGIC:
        if head.startswith(magic):
            reject(what, hint)
    start = head[:512].lstrip().lower()
    if start.startswith((b"<!doctype html", b"<html")):
        reject("an HTML page", "the download may have returned a web page; save the CSV itself")
    if start.startswith(b"<?xml"):
        if b"urn:schemas-microsoft-com:office:spreadsheet" in head:
            reject("an Excel 2003 XML spreadsheet", _EXCEL)
        reject("an XML document", "export the data as CSV")
    control = len(head) - len(head.translate(None, _CONTROL_BYTES))
    if control > CONTROL_SHARE * len(head) or head.count(0) > NUL_SHARE * len(head):
        control += head.count(0)
        reject(f"a binary file ({100 * control // len(head)}% control bytes in the first block)",
               "upload a CSV text file")


# --- encoding ------------------------------------------------------------------

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass
class _Scan:
    """What one pass over the whole file found."""

    chars: int = 0
    nul: int = 0
    invalid: int = 0          # bytes not valid in the codec (utf-8 only)
    first_invalid: int = -1   # byte offset of the first one
    multibyte: bool = False   # saw at least one valid non-ASCII UTF-8 character


def _scan(path: str, encoding: str) -> _Scan:
    """Decode the whole file in blocks (bounded memory), counting NULs.

    For UTF-8 (with or without BOM) invalid bytes are counted, not raised;
    for other codecs a UnicodeDecodeError propagates.
    """
    utf8 = codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")
    decoder = codecs.getincrementaldecoder("utf-8" if utf8 else encoding)()
    ascii_compatible = utf8 or encoding.startswith("cp")
    scan = _Scan()
    offset = 0
    with open(path, "rb") as f:
        if utf8:
            f.read(len(codecs.BOM_UTF8) if encoding == "utf-8-sig" else 0)
        while block := f.read(BLOCK_BYTES):
            if ascii_compatible and block.isascii() and not decoder.getstate()[0]:
                scan.chars += len(block)
                scan.nul += block.count(b"\0")
            else:
                text = _decode_utf8(decoder, block, scan, offset) if utf8 else decoder.decode(block)
                scan.chars += len(text)
                scan.nul += text.count("\0")
            offset += len(block)
        if utf8:
            _decode_utf8(decoder, b"", scan, offset, final=True)
        else:
            decoder.decode(b"", final=True)
    return scan


def _decode_utf8(decoder: codecs.IncrementalDecoder, block: bytes, scan: _Scan, offset: int,
                 final: bool = False) -> str:
    """Decode a UTF-8 block. From the first invalid byte on, the decoder
    drops invalid bytes, counted as the bytes consumed minus the UTF-8
    length of what decoded (all in C: no per-character Python work)."""
    if decoder.errors == "strict":
        try:
            text = decoder.decode(block, final)
            scan.multibyte = scan.multibyte or not block.isascii()
            return text
        except UnicodeDecodeError:  # the decoder's buffer is left as it was
            decoder.errors = "ignore"
            scan.first_invalid = offset
    pending = len(decoder.getstate()[0])
    text = decoder.decode(block, final)
    valid = len(text.encode())
    scan.invalid += pending + len(block) - len(decoder.getstate()[0]) - valid
    scan.multibyte = scan.multibyte or valid > len(text)
    return text


def _non_ascii_lines(path: str, limit: int = 1 << 16) -> bytes:
    """The whole file if it is at most ``limit`` bytes, else up to ``limit``
    bytes of its lines holding non-ASCII bytes (read block by block): the
    only part that tells single-byte code pages apart."""
    picked: list[bytes] = []
    size = 0
    with open(path, "rb") as f:
        if len(whole := f.read(limit + 1)) <= limit:
            return whole
        f.seek(0)
        while size < limit and (block := f.read(BLOCK_BYTES)):
            if block.isascii():
                continue
            for line in block.split(b"\n"):
                if not line.isascii():
                    picked.append(line[:limit] + b"\n")
                    size += len(picked[-1])
    return b"".join(picked)


def _legacy_candidates(sample: bytes) -> list[str]:
    """Code pages to try, best first. cp1252 (Excel's Western default)
    leads unless charset-normalizer rejects it and recognises a language in
    another code page (e.g. cp1251 Russian, cp1250 Polish): on a few bytes
    its best guess is noise (it calls a lone latin-1 "©" cp932). latin-1,
    which decodes anything, comes last."""
    best = from_bytes(sample).best()
    guess = codecs.lookup(best.encoding).name if best is not None else "cp1252"
    if guess in ("iso8859-1", "iso8859-15", "latin-1"):
        guess = "cp1252"
    cp1252_plausible = from_bytes(sample, cp_isolation=["cp1252"]).best() is not None
    if cp1252_plausible or best is None or not best.coherence:
        order = ["cp1252", guess]
    else:
        order = [guess, "cp1252"]
    return list(dict.fromkeys(order + ["latin-1"]))


def _bomless_utf16(head: bytes) -> str | None:
    """'utf-16-le'/'utf-16-be' when ``head`` has the NUL-every-other-byte
    pattern of UTF-16 text without a BOM, else None."""
    if len(head) < 4:
        return None
    even, odd = head[0::2], head[1::2]
    if odd.count(0) > 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


def _detect_encoding(path: str, head: bytes) -> tuple[str, str, int, list[str]]:
    """Return (codec, decode error handler, NUL count, warnings) for the file.

    Raises InputError for a file that is mostly NUL bytes or whose BOM
    announces UTF-16/32 that does not decode.
    """
    warnings: list[str] = []
    encoding = next((name for bom, name in _BOMS if head.startswith(bom)), None)
    if encoding is None and (encoding := _bomless_utf16(head)):
        warnings.append(f"UTF-16 without a byte-order mark: read as {encoding}")
    if encoding is None:
        _reject_binary(path, head)
        encoding = "utf-8"
    try:
        scan = _scan(path, encoding)
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not valid {encoding.upper()} text ({exc.reason})") from None
    if scan.nul > NUL_SHARE * scan.chars:
        raise InputError(path, f"{scan.nul} of {scan.chars} characters are NUL bytes: "
                               "looks like a binary or damaged file, not CSV")
    if not scan.invalid:
        return encoding, "strict", scan.nul, warnings
    if scan.multibyte:
        warnings.append(
            f"mixes UTF-8 with another encoding: {scan.invalid} byte(s) that are not valid "
            f"UTF-8 (first in the block at byte {scan.first_invalid}) were read as cp1252")
        return encoding, MIXED_FALLBACK, scan.nul, warnings
    for candidate in _legacy_candidates(_non_ascii_lines(path)):
        try:
            _scan(path, candidate)
        except UnicodeDecodeError:
            continue
        if candidate == "latin-1":
            warnings.append("encoding unclear: read as latin-1 (ISO-8859-1)")
        return candidate, "strict", scan.nul, warnings
    raise AssertionError("latin-1 decodes any byte")  # pragma: no cover


# --- dialect, preamble and header ------------------------------------------------

_SEP_LINE = re.compile(r"sep=(.)[ \t]*(?:\r\n|\r|\n|$)", re.IGNORECASE)
_CONTROL_RUN = re.compile(r"\s*[\x00-\x1f\x7f]+[\s\x00-\x1f\x7f]*")
_NUMBER = re.compile(r"[+-]?\d+(?:[.,]\d+)?")


@dataclass
class _Layout:
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
    reader = csv.reader(io.StringIO(text, newline=""), **_dialect(delimiter, escape, strict))
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


def _layout(text: str, complete: bool, forced: str | None, line_offset: int) -> _Layout:
    """Choose delimiter, quoting style, preamble and header from ``text``
    (``forced``: a delimiter named by a ``sep=`` line)."""
    chosen = _choose(text, complete, (forced,) if forced else DELIMITERS, False)
    if chosen is None:
        return _Layout(forced or ",", False, 0, [], False, [])
    delimiter, records, start = chosen
    escape = _backslash_escaped(text, delimiter, complete)
    if escape:
        _, records, start = _choose(text, complete, (delimiter,), True)
    return _Layout(delimiter, escape, records[start][0] + line_offset, records[start][1],
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


def _header_warnings(raw: list[str], header: list[str]) -> list[str]:
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


def _read_sample(path: str, encoding: str, errors: str) -> tuple[str, bool]:
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


def open_csv(path: str | Path) -> CsvSource:
    """Inspect ``path`` and return a CsvSource ready to stream its rows.

    Reads the whole file once in 1 MiB blocks to validate its encoding
    (bounded memory). A 0-byte, blank or header-only file gives a source
    with a warning and no rows. Raises InputError (naming the file and the
    reason) for a missing, unreadable, binary, non-CSV or undecodable file.
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
        return CsvSource(name, "utf-8", ",", [], 0, warnings=["empty file"])
    encoding, errors, nul, warnings = _detect_encoding(name, head)
    if nul:
        warnings.append(f"{nul} NUL character(s) removed")
    text, complete = _read_sample(name, encoding, errors)
    text = text.replace("\0", "")
    sep = _SEP_LINE.match(text.lstrip("\ufeff"))
    forced = sep.group(1) if sep and sep.group(1) in DELIMITERS else None
    skip = text.lstrip("\ufeff")[sep.end():] if forced else text
    layout = _layout(skip, complete, forced, 1 if forced else 0)
    source = CsvSource(name, encoding, layout.delimiter, clean_header(layout.raw_header),
                       layout.header_line, warnings, escape=layout.escape,
                       remove_nul=bool(nul), decode_errors=errors)
    if not layout.header_line:
        warnings.append("empty file")
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
    warnings += _header_warnings(layout.raw_header, source.header)
    if complete and not layout.has_data:
        warnings.append("header only, no data rows")
    return source
