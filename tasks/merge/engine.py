"""The merge pipeline: read every file, map its headers, clean each row into
a compact record, de-duplicate across files, write one CSV and a report.

Memory stays small: rows stream from ``tasks.merge.reading``; each cleaned record
is one packed string (``tasks.merge.records``); only groups of two or more rows
are unpacked and merged. Large inputs are cleaned in forked worker
processes, one file each (``_clean_all``); matching and writing stay here.
The output is written to a temporary file beside ``out_path`` and renamed
at the end, so a failed merge leaves no OUT.csv.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple

from csv_merger.errors import ConfigError, InputError
from csv_merger.schema import TableType, fields_for
from csv_merger.settings import get_settings
from tasks.merge.dedupe import KeyMatcher, UnionFind, shared_key_reasons
from tasks.merge.headers import map_headers
from tasks.merge.headers.presets import PresetStore
from tasks.merge.output import CsvOutput, OutputPlan
from tasks.merge.reading import EMPTY_FILE, ONLY_HEADER, open_source, split_sheet
from tasks.merge.records import Layout, RecordBuilder, merge_records, unpack
from tasks.merge.report import BadRowReport, DuplicateGroup, FileReport, MergeReport
from tasks.merge.sources import expand_inputs, source_labels

PROGRESS_EVERY = 100_000
"""Rows between two progress lines while reading a file."""

PARALLEL_MIN_BYTES = 16 * 2**20
"""Total input size from which files are cleaned in worker processes."""

WIDE_SLOT = 20
"""More distinct values than this in one record's field gets a report warning."""

MAX_WORKERS = 4
"""Most worker processes used to clean files (also bounded by CPUs and files)."""

SOURCE_JOIN = " | "
"""Separator between file labels in the Source cell."""

class _Store:
    """Packed records of every committed file, their file, and the groups
    (and each row's match keys when ``keep_keys``, to explain the groups)."""

    def __init__(self, keep_keys: bool = False) -> None:
        self.keys: list[list[str]] | None = [] if keep_keys else None
        self.rows: list[str] = []
        self.file_starts: list[int] = []
        self.file_slots: list[list[int]] = []
        self.file_labels: list[str] = []
        self.union = UnionFind()

    def commit(self, rows: list[str], keys: list[list[str]], slot_ids: list[int], label: str) -> None:
        self.file_starts.append(len(self.rows))
        self.file_slots.append(slot_ids)
        self.file_labels.append(label)
        self.rows.extend(rows)
        if self.keys is not None:
            self.keys.extend(keys)
        for row_keys in keys:
            self.union.add(row_keys)

    def file_of(self, row: int) -> int:
        return bisect_right(self.file_starts, row) - 1


def _map_file(path: Path, label: str, layout: Layout, mapping: dict[str, str] | None,
              presets: PresetStore, neutralise_formulas: bool = False):
    """Open one file and map its headers (the mapping preset saved for its
    headers first, ``mapping`` over it); register its kept columns in
    ``layout``. Returns ``(source, FileReport, builder, map warnings)``.
    Raises InputError from the reader, ConfigError for a broken preset."""
    source = open_source(path)
    preset = presets.find(source.header) if source.header else None
    overrides = {**preset.mapping, **(mapping or {})} if preset else mapping
    mappings, map_warnings = map_headers(source.header, layout.table_type, overrides=overrides,
                                         sample=source.sample())
    report = FileReport(path=str(path), source=label, encoding=source.encoding, delimiter=source.delimiter,
                        preset=preset.name if preset else None)
    if preset:
        map_warnings.insert(0, f"mapping preset {preset.name!r} applied (saved for files with these headers)")
    kept_columns = []
    for m in mappings:
        report.mapping[m.header] = m.field
        report.mapping_how[m.header] = m.how
        if m.how == "ignored":
            report.ignored.append(m.header)
        else:
            kept_columns.append((m.index, m.field, m.header))
    return source, report, RecordBuilder(layout, kept_columns, neutralise_formulas=neutralise_formulas), map_warnings


class _FileRows(NamedTuple):
    """What cleaning one file's rows gives (picklable, for worker processes)."""

    rows: list[str]
    keys: list[list[str]]
    count: int
    empty: int
    invalid_emails: int
    warnings: list[str]
    bad_rows: list[tuple[int, str]]
    max_values: list[int]
    neutralised: int


def _clean_rows(source, builder: RecordBuilder, matcher: KeyMatcher | None,
                progress: Callable[[str], None] | None, label: str) -> _FileRows:
    """Clean every row of an opened file into packed records and match keys
    (none kept when ``matcher`` is None: inspection only). Raises InputError,
    also for a quote never closed (``_refuse_unclosed_quote``)."""
    rows: list[str] = []
    keys: list[list[str]] = []
    count = empty = 0
    build = builder.build
    keys_of = matcher.keys_of if matcher is not None else None
    for raw in source.rows():
        count += 1
        packed = build(raw.cells, raw.surplus)
        if not packed:
            empty += 1
        elif keys_of is not None:
            rows.append(packed)
            keys.append(keys_of(builder.values, builder.domain_derived))
        if progress is not None and count % PROGRESS_EVERY == 0:
            progress(f"{label}: {count:,} rows")
    _refuse_unclosed_quote(source)
    builder.finish()
    return _FileRows(rows, keys, count, empty, builder.invalid_emails, [*source.warnings, *builder.warnings],
                     [(b.line, b.reason) for b in source.bad_rows], builder.layout.max_values, builder.neutralised)


def _refuse_unclosed_quote(source) -> None:
    """Raise InputError (line: where the quote opens) when a quote is never
    closed: the lines after it were read as one record, and merging that
    record would deliver garbage in place of the rows it swallowed."""
    for bad in source.bad_rows:
        if bad.unclosed_quote:
            raise InputError(source.path, f"{bad.reason}; close that quote or remove it, then try again",
                             line=bad.line)


def _clean_in_worker(path: Path, builder: RecordBuilder) -> _FileRows | tuple[str, int | None]:
    """Worker process body: ``_clean_rows`` on a fresh reader; an InputError
    comes back as ``(reason, line)`` (exceptions with keyword-only arguments
    do not survive pickling)."""
    try:
        return _clean_rows(open_source(path), builder, KeyMatcher(builder.layout), None, "")
    except InputError as exc:
        return exc.reason, exc.line


def _finish_report(report: FileReport, result: _FileRows, map_warnings: list[str]) -> None:
    report.rows, report.empty_rows, report.invalid_emails = result.count, result.empty, result.invalid_emails
    report.bad_rows = [BadRowReport(line=line, reason=reason) for line, reason in result.bad_rows]
    report.warnings = [*map_warnings, *result.warnings]
    if result.empty:
        report.warnings.append(f"{result.empty} rows had no value in any kept column; no record written for them")


def inspect_file(path: str | Path, table_type: TableType = "people",
                 mapping: dict[str, str] | None = None, presets_dir: str | Path | None = None) -> FileReport:
    """Read and map one file without merging (a preview): the ``FileReport``
    a merge would give it (rows, bad rows, warnings, mapping, invalid
    e-mails, preset). Raises InputError for an unreadable file."""
    fields_for(table_type)
    source, report, builder, map_warnings = _map_file(Path(path), Path(path).name, Layout(table_type), mapping,
                                                      PresetStore(presets_dir))
    _finish_report(report, _clean_rows(source, builder, None, None, ""), map_warnings)
    return report


def merge_files(inputs: Sequence[str | Path], out_path: str | Path, *, table_type: TableType = "people",
                mapping: dict[str, str] | None = None, skip_bad_files: bool = False,
                neutralise_formulas: bool = True, e164_column: bool | None = None,
                presets_dir: str | Path | None = None, explain: int = 0,
                progress: Callable[[str], None] | None = None) -> MergeReport:
    """Merge CSV files (paths or globs) into one de-duplicated CSV at ``out_path``.

    ``mapping``: header overrides ``{source header: canonical field | "ignore"}``.
    ``skip_bad_files``: an unreadable file (or a glob matching nothing) is
    reported (``skipped``, ``error``) and the rest merges; otherwise the
    first one raises InputError and nothing is written. ``e164_column``: add
    ``Phone Number (E.164)`` (``Company Phone (E.164)``) to the output (None:
    the ``phone_e164_column`` setting). ``presets_dir``: folder of mapping
    presets (``tasks.merge.headers.presets``; None: the ``mappings_dir``
    setting): a file whose headers have a preset is mapped by it, with
    ``mapping`` over it. ``progress`` receives
    one line per file, every ``PROGRESS_EVERY`` rows and per stage.
    Raises ConfigError for a bad table type, an output directory that does
    not exist, or no readable input at all. ``explain``: also report the
    first ``explain`` groups of merged rows and the keys that matched them
    (``MergeReport.duplicate_groups``; keeps every row's keys in memory).
    """
    # The merge allocates millions of small acyclic objects; the cyclic garbage
    # collector would rescan them again and again (about 15% of the run time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        if e164_column is None:
            e164_column = get_settings().phone_e164_column
        return _merge(inputs, Path(out_path), table_type, mapping, skip_bad_files, neutralise_formulas,
                      e164_column, PresetStore(presets_dir), progress or (lambda _line: None), explain)
    finally:
        if collecting:
            gc.enable()


def _merge(inputs: Sequence[str | Path], out: Path, table_type: TableType, mapping: dict[str, str] | None,
           skip_bad_files: bool, neutralise_formulas: bool, e164_column: bool, presets: PresetStore,
           say: Callable[[str], None], explain: int = 0) -> MergeReport:
    started = time.monotonic()
    fields_for(table_type)
    if not out.parent.is_dir():
        raise ConfigError(f"{out}: output directory {out.parent} does not exist")
    if out.is_dir():
        raise ConfigError(f"{out}: the output path is a directory")
    paths, failures, repeats = expand_inputs(inputs, exclude=out.resolve())
    if any(path.resolve() == out.resolve() for path in paths):
        raise ConfigError(f"{out}: the output is also an input; writing it would destroy that input")
    if failures and not skip_bad_files:
        raise InputError(failures[0].path, failures[0].error)
    labels = source_labels(paths)
    layout = Layout(table_type, e164_column=e164_column)
    matcher = KeyMatcher(layout)
    store = _Store(keep_keys=explain > 0)
    report = MergeReport(output_path=str(out), table_type=table_type)
    file_reports: dict[Path, FileReport] = {}
    opened = []
    for path, label in zip(paths, labels):
        try:
            opened.append((path, label, *_map_file(path, label, layout, mapping, presets, neutralise_formulas)))
        except InputError as exc:
            file_reports[path] = _skipped(exc, path, label, skip_bad_files, say)

    def take(index: int, result: _FileRows | InputError) -> None:
        path, label, _, file_report, builder, map_warnings = opened[index]
        if isinstance(result, InputError):
            file_reports[path] = _skipped(result, path, label, skip_bad_files, say)
            return
        for slot, count in enumerate(result.max_values):
            layout.note_count(slot, count)
        _finish_report(file_report, result, map_warnings)
        report.formulas_neutralised += result.neutralised
        store.commit(result.rows, result.keys, builder.slot_ids, label)
        file_reports[path] = file_report
        say(f"read {path}: {result.count:,} rows")

    _clean_all(opened, matcher, say, take)
    report.files = [*failures, *(file_reports[path] for path in paths)]
    if not store.file_starts:
        raise ConfigError("no readable input file: " + "; ".join(f"{f.path}: {f.error}" for f in report.files))
    if not store.rows:
        raise _nothing_to_merge([f for f in report.files if not f.skipped])

    say(f"de-duplicating {len(store.rows):,} records")
    groups = store.union.groups()
    merged = {root: merge_records((unpack(store.rows[r], store.file_slots[store.file_of(r)]) for r in members),
                                  layout)
              for root, members in groups.items()}
    sources = {root: SOURCE_JOIN.join(dict.fromkeys(store.file_labels[store.file_of(r)] for r in members))
               for root, members in groups.items()}

    say(f"writing {out}")
    plan = OutputPlan(layout)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as stream:
            writer = CsvOutput(stream, plan, neutralise_formulas=neutralise_formulas)
            _write_all(store, merged, sources, writer)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)

    done = [f for f in report.files if not f.skipped]
    report.rows_in = sum(f.rows for f in done)
    report.empty_rows = sum(f.empty_rows for f in done)
    report.invalid_emails = sum(f.invalid_emails for f in done)
    report.rows_out = writer.rows
    report.duplicates_merged = len(store.rows) - writer.rows
    report.formulas_neutralised += writer.neutralised
    report.columns = writer.header
    report.warnings = repeats + [f"{f.path}: skipped ({f.error})" for f in report.files if f.skipped]
    report.warnings += [f"{name!r}: one record holds {count} distinct values (many rows matched one key; "
                        f"is --type right?)" for name, count in zip(layout.names, layout.max_values)
                        if count > WIDE_SLOT]
    if store.keys is not None:
        report.duplicate_groups = [
            DuplicateGroup(sources=[store.file_labels[store.file_of(r)] for r in members],
                           reasons=shared_key_reasons([store.keys[r] for r in members]))
            for members in list(groups.values())[:explain]]
    report.elapsed_s = round(time.monotonic() - started, 3)
    say(f"wrote {writer.rows:,} records ({report.duplicates_merged:,} duplicates merged) to {out}")
    return report


def _nothing_to_merge(files: list[FileReport]) -> InputError:
    """The error of a merge that would write no record (checked before any
    output is written). One empty input among others with rows is only that
    file's warning."""
    def reason(f: FileReport) -> str:
        if f.rows:
            return f"{f.rows:,} row(s), none with a value in a kept column"
        return EMPTY_FILE if EMPTY_FILE in f.warnings else ONLY_HEADER

    return no_records_error([(f.path, reason(f)) for f in files])


def no_records_error(files: list[tuple[str, str]], outcome: str = "nothing to merge") -> InputError:
    """InputError naming the file, or every file, of ``[(name, reason)]``
    (``EMPTY_FILE``, ``ONLY_HEADER``...) when no input holds a record."""
    if len(files) == 1:
        return InputError(files[0][0], f"{files[0][1]}: {outcome}")
    return InputError(", ".join(name for name, _ in files),
                      "no input holds a record (" + "; ".join(f"{n}: {r}" for n, r in files) + f"): {outcome}")


def _skipped(exc: InputError, path: Path, label: str, skip: bool, say: Callable[[str], None]) -> FileReport:
    """The report of a skipped file (``error``: the line, when known, and the
    reason); re-raises ``exc`` unless skipping."""
    if not skip:
        raise exc
    error = exc.reason if exc.line is None else f"line {exc.line}: {exc.reason}"
    say(f"skipped {path}: {error}")
    return FileReport(path=str(path), source=label, skipped=True, error=error)


def _clean_all(opened: list, matcher: KeyMatcher, say: Callable[[str], None],
               take: Callable[[int, _FileRows | InputError], None]) -> None:
    """Clean the opened files' rows and hand each file's result (or its
    InputError) to ``take(index, result)`` in file order. Files are cleaned in
    worker processes when it pays (``PARALLEL_MIN_BYTES``, several files and
    CPUs, and no other thread, since the workers are forked), while ``take``
    consumes finished files; else here, one file at a time."""
    workers = min(len(opened), os.cpu_count() or 1, MAX_WORKERS)
    size = sum(os.path.getsize(split_sheet(path)[0]) for path, *_ in opened)
    forkable = "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1
    if workers > 1 and size >= PARALLEL_MIN_BYTES and forkable:
        say(f"cleaning {len(opened)} files in {workers} worker processes")
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [pool.submit(_clean_in_worker, path, builder) for path, _, _, _, builder, _ in opened]
            try:
                for index, ((path, *_), future) in enumerate(zip(opened, futures)):
                    result = future.result()
                    if not isinstance(result, _FileRows):
                        result = InputError(str(path), result[0], line=result[1])
                    take(index, result)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return
    for index, (path, label, source, _, builder, _) in enumerate(opened):
        say(f"reading {path} ({index + 1}/{len(opened)})")
        try:
            result = _clean_rows(source, builder, matcher, say, label)
        except InputError as exc:
            result = exc
        take(index, result)


def _write_all(store: _Store, merged: dict[int, dict[int, list[str]]], sources: dict[int, str],
               writer: CsvOutput) -> None:
    """Write every group root in first-seen order."""
    parent = store.union.parent
    rows = store.rows
    starts = store.file_starts + [len(rows)]
    for f, slot_ids in enumerate(store.file_slots):
        write_packed = writer.packed_writer(slot_ids, store.file_labels[f])
        for row in range(starts[f], starts[f + 1]):
            if parent[row] != row:
                continue
            values = merged.get(row)
            if values is None:
                write_packed(rows[row])
            else:
                writer.write(values.items(), sources[row])
