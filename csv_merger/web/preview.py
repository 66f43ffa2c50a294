"""What the page shows for one file before anything is sent.

Combines the merge engine's ``inspect_file`` (encoding, delimiter, rows,
bad rows, warnings) with the header mapper's per-column detail (how each
column was matched and why), so duplicate header names stay separate rows.

Mapping overrides are ``{header: canonical field | "ignore" | "keep"}``.
The mapper knows fields and "ignore"; "keep" (keep the column under its own
header) is honoured here only for a column the mapper leaves unmapped anyway,
and refused for one it would map (ValueError naming the column).
"""

from __future__ import annotations

from pathlib import Path

from tasks.schema import TableType

BAD_ROW_EXAMPLES = 5
KEEP = "keep"


def mapper_overrides(mapping: dict[str, str]) -> dict[str, str] | None:
    """The overrides the mapper and the merge understand (``keep`` entries removed)."""
    return {header: target for header, target in mapping.items() if target != KEEP} or None


def column_mappings(path: Path, table_type: TableType, mapping: dict[str, str]) -> tuple[list[dict], list[str]]:
    """One ``{index, header, field, how, note}`` per header (``field`` None = kept under
    its own header) and the mapper's warnings. Raises InputError for an unreadable
    file, ValueError for a "keep" the merge could not honour."""
    from tasks.headers import map_headers
    from tasks.reading import open_csv

    source = open_csv(path)
    columns, warnings = map_headers(source.header, table_type, overrides=mapper_overrides(mapping),
                                    sample=source.sample())
    rows = []
    for c in columns:
        if mapping.get(c.header) == KEEP and c.field is not None:
            raise ValueError(f"column {c.header!r} maps to {c.field!r} automatically; 'keep as is' is only "
                             "available for unmapped columns (choose 'ignore' or another field)")
        rows.append({"index": c.index, "header": c.header, "field": c.field, "how": c.how, "note": c.note})
    return rows, warnings


def preview_file(path: Path, table_type: TableType, mapping: dict[str, str]) -> dict:
    """``{encoding, delimiter, rows, bad_rows, bad_row_examples, warnings, columns}``.

    Raises InputError for a file that cannot be read as CSV (binary, empty,
    undecodable), ValueError as ``column_mappings``.
    """
    from tasks.merging import inspect_file

    columns, mapping_warnings = column_mappings(path, table_type, mapping)
    report = inspect_file(path, table_type, mapper_overrides(mapping))
    return {
        "encoding": report.encoding,
        "delimiter": report.delimiter,
        "rows": report.rows,
        "bad_rows": len(report.bad_rows),
        "bad_row_examples": [row.model_dump() for row in report.bad_rows[:BAD_ROW_EXAMPLES]],
        "warnings": list(dict.fromkeys([*report.warnings, *mapping_warnings])),
        "columns": columns,
    }
