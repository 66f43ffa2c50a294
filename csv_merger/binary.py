"""Files that are not CSV text: known magic numbers, HTML/XML, JSON, control bytes.

``reject_binary(path, head)`` raises InputError naming what the file looks
like and what to do instead (e.g. "export it as CSV"); ``reject_binary_file(path)``
reads the first block itself. A base module: the merge reads inputs and delivery
reads merged CSVs, and both refuse a binary file with the same reason.
"""

from __future__ import annotations

import codecs
import json
import re
from pathlib import Path

from csv_merger.errors import InputError
from csv_merger.wording import GIVE

HEAD_BYTES = 1 << 20
"""Bytes of a file's first block, the block the check looks at."""

NUL_SHARE = 0.3
"""Share of NULs (first block or whole file) above which a file is rejected
as binary; fewer NULs are removed with a warning."""

CONTROL_SHARE = 0.05
"""Share of other control bytes (not TAB, LF, VT, FF, CR, SUB) in the first
block above which a file is rejected as binary; text has next to none."""

STRUCTURE_BYTES = 64 << 10
"""Bytes of the first block read to recognise HTML, XML and JSON."""

_EXCEL = "export it as CSV (File > Save As > CSV UTF-8)"
_MAGIC: tuple[tuple[bytes, str, str], ...] = (
    (b"%PDF-", "a PDF document", "export the table as CSV"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 workbook (.xls) or other Office file", _EXCEL),
    (b"\x89PNG\r\n\x1a\n", "a PNG image", "{verb} the CSV file itself"),
    (b"\xff\xd8\xff", "a JPEG image", "{verb} the CSV file itself"),
    (b"GIF8", "a GIF image", "{verb} the CSV file itself"),
    (b"\x1f\x8b", "a gzip archive", "decompress it first"),
    (b"\xfd7zXZ\x00", "an xz archive", "decompress it first"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "extract the CSV first"),
    (b"Rar!\x1a\x07", "a RAR archive", "extract the CSV first"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive", "decompress it first"),
    (b"SQLite format 3\x00", "an SQLite database", "export the table as CSV"),
    (b"\x7fELF", "an executable", "{verb} a CSV file"),
)
_WIDE_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE)  # UTF-32 LE opens like UTF-16 LE
_CONTROL_BYTES = bytes(b for b in range(1, 32) if b not in b"\t\n\r\x0b\x0c\x1a")


def reject_binary(path: str, head: bytes, *, verb: str = GIVE) -> None:
    """Raise InputError if ``head`` (the file's first block) is not text.

    ``verb`` asks for the right file in the entry point's words: ``GIVE``
    (command line, flows: "give a CSV text file") or ``UPLOAD`` (the web
    page), from ``csv_merger.wording``.
    """
    def reject(what: str, hint: str) -> None:
        raise InputError(path, f"looks like {what}, not CSV: {hint.format(verb=verb)}")

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
    text = head[:STRUCTURE_BYTES].decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
    if markup := _markup(text):
        if markup == "xml" and b"urn:schemas-microsoft-com:office:spreadsheet" in head:
            reject("an Excel 2003 XML spreadsheet", _EXCEL)
        if markup == "html":
            reject("an HTML page", "the download may have returned a web page; save the CSV itself")
        reject("an XML document", "export the data as CSV")
    if json_kind := _json(text):
        reject(json_kind, "export the data as CSV")
    control = len(head) - len(head.translate(None, _CONTROL_BYTES))
    if control > CONTROL_SHARE * len(head) or head.count(0) > NUL_SHARE * len(head):
        control += head.count(0)
        reject(f"a binary file ({100 * control // len(head)}% control bytes in the first block)",
               "{verb} a CSV text file")


def reject_binary_file(path: str | Path) -> None:
    """``reject_binary`` on the file's first ``HEAD_BYTES``, unless they open
    with a UTF-16/32 byte-order mark (text in another encoding: its reader
    names the encoding). Raises InputError for a file that cannot be opened,
    or is not text."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError as exc:
        raise InputError(str(path), f"cannot open: {exc.strerror or exc}") from None
    if not head.startswith(_WIDE_BOMS):
        reject_binary(str(path), head)


_COMMENT = re.compile(r"(?:<!--.*?-->\s*)+", re.S)
_TAG = re.compile(r"<(?:[?!]?[A-Za-z][\w.:-]*)[^<>]*>", re.S)
_HTML = re.compile(r"<(?:!doctype\s+html|html|head|body|title|meta|div|p|h1|table)\b", re.I)


def _markup(text: str) -> str | None:
    """"html" or "xml" when the text opens with a tag (after comments) and its
    first line ends with one, as no CSV header does; else None."""
    if comments := _COMMENT.match(text):
        text = text[comments.end():]
    first = text.split("\n", 1)[0].strip()
    if not (_TAG.match(text) and (first.endswith(">") or text.lower().startswith(("<?xml", "<!doctype")))):
        return None
    return "html" if _HTML.search(text[:4096]) else "xml"


def _json(text: str) -> str | None:
    """What JSON the text opens with ("a JSON array", "JSON Lines",
    "a JSON document"), or None. The first value must decode and be
    followed by what JSON puts there, so a CSV cell starting with "{" or
    "[" is not mistaken for JSON."""
    decoder = json.JSONDecoder()
    if text.startswith("["):
        rest = text[1:].lstrip()
        if rest.startswith("]"):
            return "a JSON array"
        try:
            value, end = decoder.raw_decode(rest)
        except ValueError:
            return None
        after = rest[end:].lstrip()
        return "a JSON array" if isinstance(value, (dict, list)) and after[:1] in (",", "]") else None
    if text.startswith("{"):
        try:
            value, end = decoder.raw_decode(text)
        except ValueError:
            return None
        line_rest, _, later = text[end:].partition("\n")
        if line_rest.strip():
            return None
        return "JSON Lines" if later.lstrip().startswith("{") else "a JSON document"
    return None
