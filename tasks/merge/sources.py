"""Resolve the flow's ``files`` argument into local paths the merge can read.

An input is a local path, a glob (``exports/*.csv``) or a URL from the
allow-list in ``csv_merger.safety.check_input_url``: ``http(s)://`` (fetched
with httpx, streamed, after the same SSRF check as webhook targets, from
the address that check approved), ``file://``, and ``s3://`` (through
fsspec, when the optional ``s3fs`` package is installed). Other schemes
(``ftp://``, fsspec's chained ``a::b`` URLs) are refused. Local files are used in place, so
the merged ``Source`` column names them as the user knows them; remote
files are copied into ``dest_dir`` first, one numbered sub-folder each, so
two URLs ending in the same file name never overwrite each other.

``expand_inputs`` and ``source_labels`` then turn a merge's local inputs into
the list of files (and workbook sheets) it reads and their Source labels.
"""

from __future__ import annotations

import glob
import shutil
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from csv_merger.errors import ConfigError, InputError
from csv_merger.safety import CheckedTarget, PinnedTransport, check_input_url
from tasks.merge.reading import is_spreadsheet, split_sheet, workbook_inputs
from tasks.merge.report import FileReport

_GLOB_CHARS = set("*?[")


def _is_url(spec: str) -> bool:
    scheme = urlsplit(spec).scheme
    return len(scheme) > 1 and "://" in spec  # "C:\\x" is a Windows drive, not a scheme


def check_readable_file(path: str | Path) -> None:
    """Raise InputError naming ``path`` unless it is a regular file this process can read: "no such
    file", "is a directory, not a file", "not a regular file (a pipe or device?)" or "cannot read the
    file: <reason>". Opens the file (never a pipe: the type is checked first) and reads nothing."""
    p = Path(path)
    if not p.exists():
        raise InputError(str(path), "no such file")
    if p.is_dir():
        raise InputError(str(path), "is a directory, not a file")
    if not p.is_file():
        raise InputError(str(path), "not a regular file (a pipe or device?)")
    try:
        with open(p, "rb"):
            pass
    except OSError as exc:
        raise InputError(str(path), f"cannot read the file: {exc.strerror or exc}") from None


def _expand_local(spec: str) -> list[Path]:
    if _GLOB_CHARS & set(spec):
        matches = sorted(glob.glob(spec, recursive=True))
        if not matches:
            raise InputError(spec, "the pattern matches no file")
        return [Path(m) for m in matches if Path(m).is_file()]
    workbook, sheet = split_sheet(spec)
    check_readable_file(workbook if sheet else spec)  # book.xlsx#Leads: the workbook is the file
    return [Path(spec)]


def _fetch_http(url: str, target: Path, checked: CheckedTarget | None) -> None:
    import httpx

    try:  # connect to the address check_input_url approved, never a fresh DNS answer
        with httpx.Client(transport=PinnedTransport(checked), follow_redirects=False,
                          timeout=httpx.Timeout(30.0, connect=5.0)) as client, client.stream("GET", url) as resp:
            if resp.status_code != 200:
                raise InputError(url, f"cannot download: HTTP {resp.status_code}")
            with open(target, "wb") as local:
                for block in resp.iter_bytes(1 << 20):
                    local.write(block)
    except httpx.HTTPError as exc:
        raise InputError(url, f"cannot download: {exc}") from None


def _fetch_fsspec(url: str, target: Path) -> None:
    import fsspec  # Prefect depends on fsspec

    with fsspec.open(url, "rb") as remote, open(target, "wb") as local:
        shutil.copyfileobj(remote, local, length=1 << 20)


def _download(url: str, dest: Path, allow_private: bool) -> Path:
    checked = check_input_url(url, allow_private)
    name = Path(unquote(urlsplit(url).path)).name or "download.csv"
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / name
    try:
        if urlsplit(url).scheme.lower() in ("http", "https"):
            _fetch_http(url, target, checked)
        else:
            _fetch_fsspec(url, target)
    except ImportError as exc:  # e.g. s3:// without s3fs
        raise ConfigError(f"{url}: this kind of URL needs an extra package ({exc})") from None
    except (OSError, ValueError) as exc:
        raise InputError(url, f"cannot download: {exc}") from None
    return target


def check_local_inputs(files: Sequence[str]) -> None:
    """The checks ``resolve_inputs`` makes of local paths, globs and ``file://`` URLs, with its
    errors, without downloading anything (other URLs are checked when fetched): lets a command
    refuse a missing, unreadable or non-file input before slow work starts. Raises InputError."""
    for spec in map(str, files):
        if not _is_url(spec):
            _expand_local(spec)
        elif urlsplit(spec).scheme == "file":
            _expand_local(unquote(urlsplit(spec).path))


def resolve_inputs(files: Sequence[str], dest_dir: str | Path, *, allow_private: bool = False) -> list[Path]:
    """Turn paths, globs and URLs into a list of local files, in order.

    ``file://`` URLs are used in place; other URLs are downloaded into
    ``dest_dir/<n>/``. A local file named twice is listed twice: the merge
    (``expand_inputs``) reads it once and warns. ``allow_private`` lets http(s) URLs point at loopback/private
    hosts (tests, a local file server). Raises ``InputError`` naming the
    input for a missing file, a glob that matches nothing or a failed
    download, ``UnsafeTargetError`` for a refused URL (a scheme outside the
    allow-list, an internal host), and ``ConfigError``
    when a URL scheme needs a package that is not installed or ``files`` is
    empty.
    """
    if not files:
        raise ConfigError("no input files given")
    out: list[Path] = []
    for n, spec in enumerate(files):
        spec = str(spec)
        if _is_url(spec) and urlsplit(spec).scheme == "file":
            found = _expand_local(unquote(urlsplit(spec).path))
        elif _is_url(spec):
            found = [_download(spec, Path(dest_dir) / str(n), allow_private)]
        else:
            found = _expand_local(spec)
        out.extend(found)
    return out


# --- local inputs of one merge ------------------------------------------------



def expand_inputs(inputs: Sequence[str | Path],
                  exclude: Path | None = None) -> tuple[list[Path], list[FileReport], list[str]]:
    """Expand paths and globs, in the order given, without repeats: returns
    (paths, failures, warnings).

    A glob matching nothing becomes a failed ``FileReport`` (the caller
    raises or skips it). A glob never picks ``exclude`` (the output file of
    an earlier run). A plain path is kept even if missing: reading it gives
    the error. A workbook with several sheets holding data becomes one
    ``book.xlsx#<sheet>`` input per sheet (``reading.workbook_inputs``). A
    file named more than once (again, by another spelling or link, or by an
    overlapping glob) is read once, under its first name, and gets one
    warning (``given_twice``).
    """
    paths: list[Path] = []
    failures: list[FileReport] = []
    seen: set[Path] = set()
    named: dict[Path, list[str]] = {}  # each file (resolved) -> the names the inputs gave it
    for item in inputs:
        text = str(item)
        if not Path(text).exists() and _GLOB_CHARS & set(text):
            matches = [Path(m) for m in sorted(glob.glob(text, recursive=True)) if Path(m).is_file()]
            matches = [m for m in matches if exclude is None or m.resolve() != exclude]
            if not matches:
                failures.append(FileReport(path=text, skipped=True, error="no file matches this pattern"))
            candidates = matches
        else:
            candidates = [Path(text)]
        for candidate in candidates:
            named.setdefault(candidate.resolve(), []).append(str(candidate))
        candidates = [Path(p) for c in candidates for p in _sheets(c)]
        for path in candidates:
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                paths.append(path)
    return paths, failures, [given_twice(names) for names in named.values() if len(names) > 1]


def given_twice(names: Sequence[str]) -> str:
    """The warning for one file the inputs named ``len(names)`` times, first
    name first: ``"a.csv: given twice (also as /data/a.csv): read once"``."""
    others = [n for n in dict.fromkeys(names[1:]) if n != names[0]]
    times = "twice" if len(names) == 2 else f"{len(names)} times"
    return f"{names[0]}: given {times}" + (f" (also as {', '.join(others)})" if others else "") + ": read once"


def _sheets(path: Path) -> list[str]:
    """``workbook_inputs`` of a workbook; an unreadable one stays one input
    (reading it gives the error)."""
    if not is_spreadsheet(path):
        return [str(path)]
    try:
        return workbook_inputs(path)
    except InputError:
        return [str(path)]


def source_labels(paths: Sequence[Path]) -> list[str]:
    """A Source label per path: the shortest trailing part of the path that
    no other input shares (``leads.csv``, or ``a/leads.csv`` and
    ``b/leads.csv`` when two inputs share a base name)."""
    parts = [p.resolve().parts for p in paths]
    labels = []
    for i, own in enumerate(parts):
        for n in range(1, len(own) + 1):
            tail = own[-n:]
            if all(other[-n:] != tail for j, other in enumerate(parts) if j != i):
                break
        labels.append("/".join(tail))
    return labels
