"""The user's mapping: override targets checked and spelled canonically, and
mapping files (YAML or JSON) read."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import yaml

from csv_merger.errors import ConfigError
from csv_merger.schema import COMPANY_FIELDS, PEOPLE_FIELDS, TableType, fields_for
from tasks.merge.headers.model import MERGE_OWNED, ColumnMapping
from tasks.merge.headers.synonyms import normalise_header

IGNORE = "ignore"
"""Override target that drops a column on purpose (``how="ignored"``)."""
KEEP = "keep"
"""Override target that keeps a column under its own header even when it would
map automatically (``field`` None, ``how="override"``)."""

_ALL_FIELDS = tuple(dict.fromkeys(f for f in PEOPLE_FIELDS + COMPANY_FIELDS if f != MERGE_OWNED))
_TARGETS = {normalise_header(f): f for f in _ALL_FIELDS} | {IGNORE: IGNORE, KEEP: KEEP}


def _canonical_target(source: str, target: object) -> str:
    """The canonical spelling of an override target ("work email" ->
    "Work Email"); ConfigError naming the entry otherwise."""
    if not isinstance(target, str):
        raise ConfigError(f"mapping entry {source!r}: target must be a field name, not {target!r}")
    key = normalise_header(target)
    if key == normalise_header(MERGE_OWNED):
        raise ConfigError(f"mapping entry {source!r}: 'Source' is filled by the merge with the "
                          "input file names and cannot be a mapping target")
    if key not in _TARGETS:
        valid = ", ".join(_ALL_FIELDS)
        raise ConfigError(f"mapping entry {source!r}: {target!r} is not a canonical field "
                          f"(valid: {valid}; or {IGNORE!r} or {KEEP!r})")
    return _TARGETS[key]


def check_overrides(overrides: Mapping[str, str]) -> dict[str, str]:
    checked = {}
    for source, target in overrides.items():
        if not isinstance(source, str):
            raise ConfigError(f"mapping entry {source!r}: the source header must be text")
        checked[source] = _canonical_target(source, target)
    return checked


def from_override(index: int, header: str, target: str, table_type: TableType,
                   warnings: list[str]) -> ColumnMapping:
    if target == IGNORE:
        return ColumnMapping(index, header, None, "ignored", "ignored by the mapping")
    if target == KEEP:
        return ColumnMapping(index, header, None, "override", "kept under its own header by the mapping")
    if target not in fields_for(table_type):
        warnings.append(f"column {index + 1} {header!r}: mapping target {target!r} is not a "
                        f"{table_type} field; the column is kept under its own header")
        return ColumnMapping(index, header, None, "unmapped",
                             f"mapping target {target!r} is not a {table_type} field")
    return ColumnMapping(index, header, target, "override", "set by the mapping")


def load_mapping_file(path: str | Path) -> dict[str, str]:
    """Read a mapping file: YAML (``.yaml``/``.yml``, or any other name) or
    JSON (``.json``), one object {source header: canonical field | "ignore" |
    "keep"}: "ignore" drops the column, "keep" keeps it under its own header.

    Targets are matched like headers ("work email" is "Work Email") and
    returned in canonical spelling. Raises ConfigError naming the file and the
    bad entry, with the list of valid names, for an unreadable or malformed
    file or a target that is not a canonical field of either schema.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the mapping file ({exc})") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}"
                          f" ({' '.join(str(exc).split())})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected an object {{source header: canonical field | "
                          f"{IGNORE!r}}}, got {type(data).__name__}")
    # YAML reads a header such as 2024 as a number: it is still a header.
    data = {str(k) if isinstance(k, (int, float)) and not isinstance(k, bool) else k: v
            for k, v in data.items()}
    try:
        return check_overrides(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
