"""Uploaded files on local disk: safe names, size limit, expiry.

Each upload lives in its own folder ``<root>/<upload_id>/<safe name>`` so two
files with the same name are both kept and a name can never escape ``root``.
The folder's metadata is ``.upload.json``: a safe name never starts with a
dot, so no upload (not even one named ``upload.json``) can overwrite it. The
metadata holds no server path; the file's path is derived from the folder.
The stored name is the sanitised original (Unicode kept), so the merged CSV's
``Source`` column shows what the user uploaded.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

_RESERVED = set('<>:"/\\|?*')  # Windows-reserved plus both path separators
_MAX_NAME_BYTES = 200  # below the usual 255-byte file-name limit, room for suffixes
META_NAME = ".upload.json"
"""The upload folder's own metadata file; never a sanitised name (those never start with a dot)."""


class UploadTooLarge(Exception):
    """An upload exceeded the byte limit. ``limit`` in bytes."""

    def __init__(self, name: str, limit: int):
        self.name, self.limit = name, limit
        super().__init__(f"{name}: file is larger than the upload limit of {limit:,} bytes")


def sanitise_filename(name: str) -> str:
    """A safe single path component from a browser-supplied file name.

    Keeps Unicode letters (NFC-normalised), drops any directory part (``/``
    or ``\\``), control characters and reserved characters, strips leading
    dots and spaces (no hidden files, no ``..``), and trims to 200 UTF-8
    bytes keeping the extension. Never raises; falls back to ``upload.csv``.
    """
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        "_" if ch in _RESERVED else ch
        for ch in name
        if unicodedata.category(ch)[0] != "C"  # control, format, surrogate, unassigned
    )
    name = name.strip().lstrip(". ")
    if not name:
        return "upload.csv"
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext) > 10:
        stem, dot, ext = name, "", ""
    while len(f"{stem}{dot}{ext}".encode()) > _MAX_NAME_BYTES and stem:
        stem = stem[:-1]
    return f"{stem}{dot}{ext}" or "upload.csv"


@dataclass(frozen=True)
class Upload:
    """One stored upload. ``size`` in bytes, ``created_at`` in Unix seconds."""

    id: str
    name: str
    path: Path
    size: int
    created_at: float


class UploadStore:
    """Uploads under ``root``, at most ``limit_bytes`` each, kept ``ttl_s`` seconds."""

    def __init__(self, root: Path, limit_bytes: int, ttl_s: float):
        self.root, self.limit_bytes, self.ttl_s = Path(root), limit_bytes, ttl_s
        self.root.mkdir(parents=True, exist_ok=True)

    def save(self, filename: str, data: BinaryIO) -> Upload:
        """Copy ``data`` into a new upload folder.

        Raises UploadTooLarge (nothing kept) when it exceeds the limit.
        """
        upload_id = secrets.token_hex(8)
        name = sanitise_filename(filename)
        folder = self.root / upload_id
        folder.mkdir()
        path = folder / name
        size = 0
        with path.open("wb") as out:
            while block := data.read(1 << 20):
                size += len(block)
                if size > self.limit_bytes:
                    out.close()
                    shutil.rmtree(folder, ignore_errors=True)
                    raise UploadTooLarge(name, self.limit_bytes)
                out.write(block)
        upload = Upload(upload_id, name, path, size, time.time())
        meta = {k: v for k, v in asdict(upload).items() if k != "path"}
        (folder / META_NAME).write_text(json.dumps(meta), encoding="utf-8")
        return upload

    def get(self, upload_id: str) -> Upload | None:
        """The upload with this id, or None (unknown, malformed or expired)."""
        if not (upload_id.isalnum() and upload_id.isascii()):
            return None
        folder = self.root / upload_id
        try:
            meta = json.loads((folder / META_NAME).read_text(encoding="utf-8"))
            name = sanitise_filename(meta["name"])  # a path component of ours, whatever the file says
            return Upload(upload_id, name, folder / name, meta["size"], meta["created_at"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def delete(self, upload_id: str) -> bool:
        """Remove an upload; True when it existed."""
        upload = self.get(upload_id)
        if upload is None:
            return False
        shutil.rmtree(self.root / upload.id, ignore_errors=True)
        return True

    def expire(self, now: float | None = None) -> list[str]:
        """Remove uploads older than the TTL (and stray folders); return their ids."""
        now = time.time() if now is None else now
        removed = []
        for folder in self.root.iterdir():
            upload = self.get(folder.name)
            try:
                created = upload.created_at if upload else folder.stat().st_mtime
            except FileNotFoundError:  # deleted meanwhile (a refused upload)
                continue
            if now - created >= self.ttl_s:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
        return removed


def link_input(upload: Upload, folder: Path) -> Path:
    """Give the job its own link to an upload, so upload expiry cannot pull it away mid-run."""
    target = folder / upload.id / upload.name
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(upload.path, target)
    except OSError:
        shutil.copyfile(upload.path, target)
    return target
