"""``csv-merger merge FILE... -o OUT.csv``: merge CSV files into one.

Exit 0 on success. An unreadable input gives one line naming the file and
the reason (exit 1) and no OUT.csv; with ``--skip-bad-files`` it is skipped
and listed in the report. Progress lines go to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from csv_merger.cli.app import app, check_output_paths
from csv_merger.wording import plural


def warning_lines(result) -> list[str]:
    """One line per file warning and file with bad rows, then the merge-wide
    warnings (skipped files among them), from a ``MergeReport``."""
    lines = []
    for f in result.files:
        lines += [f"{f.path}: {w}" for w in f.warnings]
        ragged = [b.line for b in f.bad_rows]
        if ragged:
            first = ", ".join(map(str, ragged[:5]))
            lines.append(f"{f.path}: {len(ragged)} ragged row{'s' if len(ragged) != 1 else ''} kept "
                         f"(line{'s' if len(ragged) != 1 else ''} {first}{', ...' if len(ragged) > 5 else ''}; "
                         "see the report)")
    return lines + list(result.warnings)


@app.command()
def merge(
    files: Annotated[list[str], typer.Argument(help="Input CSV files: paths or globs (quote globs for **).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Merged CSV to write (UTF-8).")],
    table_type: Annotated[str, typer.Option("--type", help="Canonical schema: people or company.")] = "people",
    mapping: Annotated[Optional[Path], typer.Option(
        "--mapping", help="YAML/JSON {source header: canonical field | ignore} overrides.")] = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="Write the merge report here as JSON.")] = None,
    skip_bad_files: Annotated[bool, typer.Option(
        "--skip-bad-files", help="Skip (and report) unreadable files instead of failing.")] = False,
    neutralise_formulas: Annotated[bool, typer.Option(
        "--neutralise-formulas/--no-neutralise-formulas",
        help="Prefix ' to cells starting with = + - @ (spreadsheet formula injection).")] = True,
    e164_column: Annotated[Optional[bool], typer.Option(
        "--e164-column/--no-e164-column",
        help="Add a 'Phone Number (E.164)' column (default: CSV_MERGER_PHONE_E164_COLUMN).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines on stderr.")] = False,
) -> None:
    """Merge lead-list CSV files into one de-duplicated CSV."""
    from csv_merger.errors import ConfigError
    from tasks.merge import merge_files
    from tasks.merge import load_mapping_file

    if table_type not in ("people", "company"):
        raise ConfigError(f"--type {table_type!r}: expected 'people' or 'company'")
    check_output_paths(output=output, report=report)
    overrides = load_mapping_file(mapping) if mapping is not None else None
    progress = None if quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    result = merge_files(files, output, table_type=table_type, mapping=overrides,  # type: ignore[arg-type]
                         skip_bad_files=skip_bad_files, neutralise_formulas=neutralise_formulas,
                         e164_column=e164_column, progress=progress)
    if report is not None:
        report.write_text(result.to_json() + "\n", encoding="utf-8")
    skipped = [f for f in result.files if f.skipped]
    for line in warning_lines(result):  # nothing a user should miss stays hidden in JSON, not even with -q
        print(f"csv-merger: warning: {line}", file=sys.stderr)
    files = plural(len(result.files) - len(skipped), "file")
    print(f"merged {plural(result.rows_in, 'row', sep=True)} from {files} into "
          f"{plural(result.rows_out, 'record', sep=True)} ({plural(result.duplicates_merged, 'duplicate', sep=True)} "
          f"merged{', ' + plural(len(skipped), 'file') + ' skipped' if skipped else ''}): {output}")
