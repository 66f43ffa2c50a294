"""Mapping presets: a mapping saved once for one tool's export, applied by
itself to every later file with the same header fingerprint.

A preset is one YAML file ``<name>.yaml`` in the store's folder (setting
``mappings_dir``; default ``<data_dir>/mappings``): ``name``,
``fingerprint``, ``table_type``, ``headers`` (as saved) and ``mapping``
({source header: canonical field | "ignore" | "keep"}, the form of a
``--mapping`` file). The fingerprint is computed from the set of
normalised headers (``normalise_header``), so the same export with its
columns in another order, or spelled ``first_name`` instead of ``First
Name``, is recognised; one more or one fewer column is another export.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from csv_merger.errors import ConfigError
from tasks.merge.headers.model import ColumnMapping
from tasks.merge.headers.overrides import IGNORE, KEEP, check_overrides
from tasks.merge.headers.synonyms import normalise_header

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def default_presets_dir() -> Path:
    """Setting ``mappings_dir``, else ``<data_dir>/mappings``."""
    from csv_merger.settings import get_settings

    settings = get_settings()
    return settings.mappings_dir or settings.data_dir / "mappings"


def header_fingerprint(headers: Iterable[str]) -> str:
    """16 hex characters (SHA-256) of the sorted, distinct, non-empty
    normalised headers."""
    keys = sorted({normalise_header(h) for h in headers} - {""})
    return hashlib.sha256("\x1f".join(keys).encode("utf-8")).hexdigest()[:16]


def frozen_mapping(mappings: Iterable[ColumnMapping]) -> dict[str, str]:
    """A file's mapping decisions as preset entries: the field, "ignore" for
    an ignored column, "keep" for a column kept under its own header (so a
    later file is mapped the same way whatever its sampled values say)."""
    return {m.header: m.field or (IGNORE if m.how == "ignored" else KEEP) for m in mappings}


@dataclass(frozen=True)
class Preset:
    """A saved mapping (see module docstring)."""

    name: str
    fingerprint: str
    table_type: str | None
    headers: list[str]
    mapping: dict[str, str]


class PresetStore:
    """The presets in folder ``root`` (created on the first save).

    ``save``, ``get``, ``all``, ``delete``, ``find(headers)``. Raises
    ConfigError, naming the preset file, for a bad name, an unreadable or
    malformed preset, or a mapping target that is not a canonical field.
    """

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_presets_dir()

    def _path(self, name: str) -> Path:
        if not _NAME.fullmatch(name):
            raise ConfigError(f"mapping preset name {name!r}: use 1-64 letters, digits, '_', '-' or '.' "
                              "(starting with a letter or digit)")
        return self.root / f"{name}.yaml"

    def save(self, name: str, headers: list[str], mapping: Mapping[str, str],
             table_type: str | None = None) -> Preset:
        """Save (or replace) preset ``name`` for files with ``headers``.
        ConfigError if another preset already has this fingerprint."""
        path = self._path(name)
        checked = check_overrides(mapping)
        preset = Preset(name, header_fingerprint(headers), table_type, list(headers), checked)
        other = self.find(headers)
        if other is not None and other.name != name:
            raise ConfigError(f"mapping preset {other.name!r} already covers files with these headers; "
                              f"delete it first (csv-merger mappings delete {other.name})")
        self.root.mkdir(parents=True, exist_ok=True)
        data = {"name": name, "fingerprint": preset.fingerprint, "table_type": table_type,
                "headers": preset.headers, "mapping": checked}
        temporary = path.with_suffix(".yaml.tmp")
        temporary.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
        os.replace(temporary, path)  # atomic: a reader never sees half a preset
        return preset

    def get(self, name: str) -> Preset:
        """The preset ``name``; ConfigError if there is none."""
        path = self._path(name)
        if not path.is_file():
            raise ConfigError(f"no mapping preset {name!r} in {self.root}")
        return self._read(path)

    def all(self) -> list[Preset]:
        """Every preset, by name; none when the folder does not exist."""
        if not self.root.is_dir():
            return []
        return [self._read(path) for path in sorted(self.root.glob("*.yaml"))]

    def delete(self, name: str) -> None:
        """Remove preset ``name``; ConfigError if there is none."""
        path = self._path(name)
        if not path.is_file():
            raise ConfigError(f"no mapping preset {name!r} in {self.root}")
        path.unlink()

    def find(self, headers: Iterable[str]) -> Preset | None:
        """The preset saved for files with these headers (same fingerprint)."""
        fingerprint = header_fingerprint(headers)
        return next((p for p in self.all() if p.fingerprint == fingerprint), None)

    @staticmethod
    def _read(path: Path) -> Preset:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            headers = [str(h) for h in data["headers"]]
            mapping = check_overrides({str(k): v for k, v in (data.get("mapping") or {}).items()})
            return Preset(str(data.get("name") or path.stem), header_fingerprint(headers),
                          data.get("table_type"), headers, mapping)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{path}: not a mapping preset ({type(exc).__name__}: {exc})") from None
