"""Which codec reads a file: BOM, BOM-less UTF-16, UTF-8, a legacy code page
or UTF-8 mixed with cp1252 (see the package docstring for the policy).

``detect_encoding(path, head)`` scans the whole file in BLOCK_BYTES blocks
(bounded memory) and returns (codec, decode error handler, NUL count,
warnings).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from charset_normalizer import from_bytes

from csv_merger.binary import HEAD_BYTES, NUL_SHARE, reject_binary
from csv_merger.errors import InputError
from csv_merger.wording import GIVE

BLOCK_BYTES = HEAD_BYTES
"""Bytes read per block when scanning a file's encoding (the first one is the block the binary check sees)."""

MIXED_FALLBACK = "csv_merger.cp1252_fallback"
"""Codec error handler: reads each byte that is not valid UTF-8 as cp1252."""

_CP1252_OR_LATIN1 = [bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in range(256)]


def _cp1252_fallback(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start:exc.end]
    return "".join(_CP1252_OR_LATIN1[b] for b in bad), exc.end


codecs.register_error(MIXED_FALLBACK, _cp1252_fallback)


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


def detect_encoding(path: str, head: bytes, *, verb: str = GIVE) -> tuple[str, str, int, list[str]]:
    """Return (codec, decode error handler, NUL count, warnings) for the file.

    Raises InputError for a file that is not text (``reject_binary``, its hint
    worded with ``verb``), is mostly NUL bytes or whose BOM announces
    UTF-16/32 that does not decode.
    """
    warnings: list[str] = []
    encoding = next((name for bom, name in _BOMS if head.startswith(bom)), None)
    if encoding is None and (encoding := _bomless_utf16(head)):
        warnings.append(f"UTF-16 without a byte-order mark: read as {encoding}")
    if encoding in (None, "utf-8-sig"):  # a BOM does not make an HTML page or JSON a CSV
        reject_binary(path, head, verb=verb)
        encoding = encoding or "utf-8"
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
