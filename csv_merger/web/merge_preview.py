"""What a job would produce, shown before Start: the merge engine run on the
uploads into a temporary folder, and the delivery engine's body builder
applied to the first merged row.

Nothing here re-implements de-duplication or the payload shapes:
``tasks.merge.merge_files(explain=...)`` reports the duplicate groups and
why they matched, ``tasks.deliver.payloads.make_body_builder`` builds the
exact JSON body the target would receive.
"""

from __future__ import annotations

import itertools
import json
import tempfile
from pathlib import Path

from csv_merger.schema import TableType

SAMPLE_ROWS = 5
"""Merged rows shown in the preview."""

DUPLICATE_GROUPS = 10
"""Groups of merged duplicates explained in the preview."""


def merge_preview(files: list[Path], table_type: TableType, mapping: dict[str, str], payload: str,
                  work_root: Path, payload_limit_bytes: int, row_ceiling: int) -> dict:
    """Merge ``files`` (in order) into a temporary folder under ``work_root`` and describe the result.

    ``payload``: "flat", "seed" or a template file path (as
    ``make_body_builder`` takes it). Returns ``{rows_in, rows_out,
    duplicates_merged, empty_rows, duplicate_groups: [{sources, reasons}],
    columns, sample_rows: [{header: value}], body (the JSON value of row 1,
    or None when nothing merged), body_bytes, body_error, warnings,
    destination_capacity}``. ``destination_capacity`` is the number of rows
    the destination can still accept; it is always None until a destination
    ledger exists (None = unknown, the page shows nothing). Limits in bytes
    and rows (settings ``payload_limit_bytes``, ``row_ceiling``).
    Raises InputError for an unreadable file, ConfigError for a bad mapping
    or template.
    """
    from tasks.deliver import read_merged_csv
    from tasks.deliver.payloads import PayloadError, make_body_builder, oversize_reason
    from tasks.merge import merge_files

    build = make_body_builder(payload, table_type, job_id="preview")  # a bad template fails before the merge
    work_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_root) as tmp:
        merged = Path(tmp) / "merged.csv"
        # Exact values, as delivered (the page shows them as text, never as markup).
        report = merge_files(files, merged, table_type=table_type, mapping=mapping or None,
                             neutralise_formulas=False, explain=DUPLICATE_GROUPS)
        rows = [record for _, record in itertools.islice(read_merged_csv(merged), SAMPLE_ROWS)]
    body = body_error = None
    body_bytes = 0
    warnings = list(report.warnings)
    if rows:
        try:
            raw = build(1, rows[0])
            body, body_bytes = json.loads(raw), len(raw)
            body_error = oversize_reason(raw, payload_limit_bytes)
        except PayloadError as exc:
            body_error = exc.reason
    if report.rows_out > row_ceiling:
        warnings.append(f"{report.rows_out:,} records exceed the target's row ceiling of {row_ceiling:,} "
                        "(a full Clay table silently stops accepting rows)")
    return {
        "rows_in": report.rows_in, "rows_out": report.rows_out, "duplicates_merged": report.duplicates_merged,
        "empty_rows": report.empty_rows,
        "duplicate_groups": [group.model_dump() for group in report.duplicate_groups],
        "columns": report.columns, "sample_rows": rows,
        "body": body, "body_bytes": body_bytes, "body_error": body_error,
        "warnings": warnings, "destination_capacity": None,
    }
