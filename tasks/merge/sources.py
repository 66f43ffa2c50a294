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
"""

from __future__ import annotations

import glob
import shutil
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from csv_merger.errors import ConfigError, InputError
from csv_merger.safety import CheckedTarget, PinnedTransport, check_input_url

_GLOB_CHARS = set("*?[")


def _is_url(spec: str) -> bool:
    scheme = urlsplit(spec).scheme
    return len(scheme) > 1 and "://" in spec  # "C:\\x" is a Windows drive, not a scheme


def _expand_local(spec: str) -> list[Path]:
    if _GLOB_CHARS & set(spec):
        matches = sorted(glob.glob(spec, recursive=True))
        if not matches:
            raise InputError(spec, "the pattern matches no file")
        return [Path(m) for m in matches if Path(m).is_file()]
    path = Path(spec)
    if not path.is_file():
        raise InputError(spec, "no such file" if not path.exists() else "not a regular file")
    return [path]


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


def resolve_inputs(files: Sequence[str], dest_dir: str | Path, *, allow_private: bool = False) -> list[Path]:
    """Turn paths, globs and URLs into a list of local files, in order.

    ``file://`` URLs are used in place; other URLs are downloaded into
    ``dest_dir/<n>/``. Duplicates (the same local file named twice) are kept
    once. ``allow_private`` lets http(s) URLs point at loopback/private
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
        out.extend(p for p in found if p not in out)
    return out
