"""File kinds: a file whose headers show it is, say, a Google Maps place list
gives its generic headers (``title``, ``name``, ``url``, ``site``) the meaning
they have there (``file_kinds`` in synonyms.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache

from csv_merger.errors import ConfigError
from csv_merger.schema import TableType, fields_for
from tasks.merge.headers.model import ColumnMapping
from tasks.merge.headers.synonyms import SYNONYMS_PATH, Known, load_table_data, normalise_header


@dataclass(frozen=True)
class FileKind:
    """One entry of ``file_kinds``: ``headers`` maps normalised headers to a
    field (None = kept as is)."""

    name: str
    what: str
    signature: frozenset[str]
    min_signature: int
    headers: dict[str, str | None]


@cache
def file_kinds() -> tuple[FileKind, ...]:
    """The kinds listed in synonyms.yaml; ConfigError for a field that is in
    neither table type's schema."""
    known = set(fields_for("people")) | set(fields_for("company"))
    kinds = []
    for name, entry in (load_table_data().get("file_kinds") or {}).items():
        headers = {normalise_header(h): f for h, f in entry["headers"].items()}
        bad = [f for f in headers.values() if f is not None and f not in known]
        if bad:
            raise ConfigError(f"{SYNONYMS_PATH}: file kind {name!r} maps to unknown fields {bad}")
        kinds.append(FileKind(name, entry["what"], frozenset(map(normalise_header, entry["signature"])),
                              int(entry["min_signature"]), headers))
    return tuple(kinds)


def apply_kind(mappings: list[ColumnMapping], matched: dict[int, Known], table_type: TableType,
               warnings: list[str]) -> list[ColumnMapping]:
    """Remap the generic headers of a file of a known kind (first kind whose
    signature the headers meet). Overridden columns are left alone; ``matched``
    is updated so that the content rules treat the new decision as a header's."""
    keys = [normalise_header(m.header) for m in mappings]
    present = set(keys)
    for kind in file_kinds():
        seen = sorted(h for h in kind.signature if h in present)
        if len(seen) < kind.min_signature:
            continue
        fields = fields_for(table_type)
        result = []
        for m, key in zip(mappings, keys):
            if key in kind.headers and m.how not in ("override", "ignored"):
                field = kind.headers[key]
                if field is not None and field not in fields:
                    field = None
                note = f"{kind.what} (headers {', '.join(seen[:3])}): {m.header!r} is " + (
                    f"the {field}" if field else "not a lead field")
                if field != m.field:
                    warnings.append(f"column {m.index + 1} {m.header!r}: {note}")
                matched[m.index] = Known(m.header, field, note)
                m = replace(m, field=field, how="content" if field else "unmapped", note=note)
            result.append(m)
        return result
    return mappings
