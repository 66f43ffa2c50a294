"""The merge engine: CSV and spreadsheet exports in, one clean de-duplicated CSV and a report
out. No Prefect import.

Modules, in pipeline order: ``sources`` (paths, globs, URLs), ``reading``
(encoding, layout, row repair), ``headers`` (canonical field per column),
``cleaning`` (one value at a time), ``records`` (a row as a packed record),
``dedupe`` (strong keys, union-find), ``output`` (the merged CSV),
``report``; ``engine`` runs them in order. The public names are re-exported
here.
"""

from tasks.merge.engine import inspect_file, merge_files, no_records_error, source_labels
from tasks.merge.headers import IGNORE, KEEP, load_mapping_file, map_headers
from tasks.merge.output import iter_neutralised_csv
from tasks.merge.reading import open_csv, open_source
from tasks.merge.report import FileReport, MergeReport
from tasks.merge.sources import resolve_inputs

__all__ = ["IGNORE", "KEEP", "FileReport", "MergeReport", "inspect_file", "iter_neutralised_csv", "load_mapping_file",
           "map_headers", "merge_files", "no_records_error", "open_csv", "open_source", "resolve_inputs",
           "source_labels"]
