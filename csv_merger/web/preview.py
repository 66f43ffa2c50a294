"""What the page shows for one file before anything is sent.

Combines the merge engine's ``inspect_file`` (encoding, delimiter, rows,
bad rows, warnings) with the header mapper's per-column detail (how each
column was matched and why), so duplicate header names stay separate rows.
Mapping overrides are ``{header: canonical field | "ignore" | "keep"}``, as
``tasks.merge.headers.map_headers`` takes them.
"""

from __future__ import annotations

from pathlib import Path

from csv_merger.schema import TableType

BAD_ROW_EXAMPLES = 5


def preview_file(path: Path, table_type: TableType, mapping: dict[str, str], presets_dir: Path | None = None) -> dict:
    """``{preset, encoding, delimiter, rows, bad_rows, bad_row_examples, warnings, columns}``.

    ``preset``: the name of the mapping preset saved for the file's headers
    (applied under ``mapping``; folder ``presets_dir``, None: the setting), or None.

    ``columns``: one ``{index, header, field, how, note}`` per header, in file
    order (``field`` None = kept under its own header, or ignored when
    ``how`` is "ignored"). Raises InputError for a file that cannot be read
    as CSV (binary, empty, undecodable), ConfigError for a bad override.
    """
    from csv_merger.wording import UPLOAD
    from tasks.merge import inspect_file
    from tasks.merge import map_headers
    from tasks.merge import open_source
    from tasks.merge.headers.presets import PresetStore

    source = open_source(path, verb=UPLOAD)  # the first read: a binary file is refused here, in the page's words
    preset = PresetStore(presets_dir).find(source.header) if source.header else None
    overrides = {**(preset.mapping if preset else {}), **mapping} or None
    columns, mapping_warnings = map_headers(source.header, table_type, overrides=overrides, sample=source.sample())
    report = inspect_file(path, table_type, mapping or None, presets_dir)
    return {
        "preset": report.preset,
        "encoding": report.encoding,
        "delimiter": report.delimiter,
        "rows": report.rows,
        "bad_rows": len(report.bad_rows),
        "bad_row_examples": [row.model_dump() for row in report.bad_rows[:BAD_ROW_EXAMPLES]],
        "warnings": list(dict.fromkeys([*report.warnings, *mapping_warnings])),
        "columns": [{"index": c.index, "header": c.header, "field": c.field, "how": c.how, "note": c.note}
                    for c in columns],
    }
