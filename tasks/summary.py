"""The typed result of a pipeline run, and how chunk results add up to it.

``PipelineSummary`` is what ``merge_and_deliver`` returns (and what the CLI
and the web service print). A run that did not deliver everything does not
return it as a success: it ends Failed (``PipelineIncomplete``, some rows
dead-lettered) or Cancelled (``PipelineCancelled``), and the exception
carries the summary with the counts as of the end.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from csv_merger.errors import CsvMergerError, DeliveryError, DeliveryIncomplete
from csv_merger.wording import STOPPED_EARLY, plural
from tasks.deliver import ChunkRef, DeliverySummary
from tasks.deliver.job import DestinationUse
from tasks.deliver.plan import DeliveryPlan
from tasks.merge import MergeReport


class ChunkCount(BaseModel):
    """One chunk's counts in a job's summary (rows numbered as in the merged CSV)."""

    chunk: int
    first_row: int
    last_row: int
    delivered: int
    failed: int
    skipped: int  # already delivered, already at the destination, or suppressed
    http_429: int


class PipelineSummary(BaseModel):
    """Result of one ``merge-and-deliver`` run.

    ``state``: "Completed" (every row delivered, or merge only), "Failed"
    (some rows dead-lettered) or "Cancelled". ``delivery`` is None in
    merge-only mode (no webhook URL) and in a dry run, which sets ``plan``
    instead (what the delivery would do; nothing sent). ``chunks``: delivery
    chunks used; ``per_chunk``: their counts. A run stopped before its flow
    started (Ctrl-C while Prefect starts) has no ``job_id``, ``merged_csv`` nor
    ``report``: nothing was merged.
    """

    job_id: str | None
    merged_csv: str | None
    report: MergeReport | None
    delivery: DeliverySummary | None = None
    dead_letter_path: str | None = None
    state: str = "Completed"
    chunks: int = 0
    flow_run_id: str | None = None
    plan: DeliveryPlan | None = None
    per_chunk: list[ChunkCount] = []

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def one_line(self) -> str:
        """Human summary, e.g. ``job-1a2b: 80 rows merged from 111; 80 delivered, 0 failed ...``."""
        if self.report is None:
            return f"nothing merged [{self.state}]"
        text = f"{self.job_id}: {plural(self.report.rows_out, 'row')} merged from {self.report.rows_in}"
        if d := self.delivery:
            text += (f"; {d.delivered} delivered, {d.failed} failed, {d.skipped_already_delivered} already delivered, "
                     f"{d.http_429} x 429 in {d.elapsed_s:.1f} s")
        return f"{text} [{self.state}]"


class PipelineIncomplete(DeliveryIncomplete):
    """Some rows ended in the dead-letter file. ``summary`` holds the counts. Exit code 3."""

    def __init__(self, summary: PipelineSummary):
        self.summary = summary
        d = summary.delivery
        super().__init__(f"{d.failed} of {d.rows_total} rows dead-lettered: {summary.dead_letter_path}")


class PipelineCancelled(CsvMergerError):
    """The run was cancelled (Prefect UI/CLI, Ctrl-C); ``summary`` has the counts as of the cancel. Exit code 130.

    The message counts this run's deliveries, then the rows it found an earlier
    run of the job delivered (a resume), so the two add up to what the target has.
    """

    exit_code = 130

    def __init__(self, summary: PipelineSummary):
        self.summary = summary
        d = summary.delivery
        if d is None:  # stopped while Prefect started or the files were merged
            super().__init__(f"{'job ' + summary.job_id if summary.job_id else 'run'} {STOPPED_EARLY}")
        else:
            earlier = (f" ({d.skipped_already_delivered} more delivered by an earlier run)"
                       if d.skipped_already_delivered else "")
            super().__init__(f"job {summary.job_id} cancelled: {d.delivered} of {d.rows_total} rows delivered{earlier}")


def combine_deliveries(parts: Sequence[DeliverySummary], *, job_id: str, limit_key: str, rows_total: int,
                       elapsed_s: float, dead_letter_path: str | None) -> DeliverySummary:
    """Add up chunk summaries into one job summary (``elapsed_s``: wall time of the whole delivery)."""
    return DeliverySummary(
        limit_key=limit_key, warnings=list(dict.fromkeys(w for p in parts for w in p.warnings)),
        delivered=sum(p.delivered for p in parts), failed=sum(p.failed for p in parts),
        skipped_already_delivered=sum(p.skipped_already_delivered for p in parts),
        skipped_already_at_destination=sum(p.skipped_already_at_destination for p in parts),
        skipped_suppressed=sum(p.skipped_suppressed for p in parts),
        http_429=sum(p.http_429 for p in parts), attempts=sum(p.attempts for p in parts),
        outage_pauses=sum(p.outage_pauses for p in parts),
        learned_rate=next((p.learned_rate for p in reversed(parts) if p.learned_rate is not None), None),
        elapsed_s=elapsed_s, rows_total=rows_total, cancelled=any(p.cancelled for p in parts),
        dead_letter_path=dead_letter_path, job_id=job_id,
        destinations=combine_destinations(parts))


def combine_destinations(parts: Sequence[DeliverySummary]) -> list[DestinationUse]:
    """Each destination once, in rollover order, with the highest count any part saw (the latest)."""
    seen: dict[str, DestinationUse] = {}
    for use in (d for p in parts for d in p.destinations):
        if use.label not in seen or use.used > seen[use.label].used:
            seen[use.label] = use
    return list(seen.values())


def chunk_parts(refs: Sequence[ChunkRef], results: dict[int, DeliverySummary], *, job_id: str, limit_key: str,
                cancelled: bool) -> list[DeliverySummary]:
    """Each chunk's summary in chunk order (``results``: chunk index -> the last summary a consumer
    reported). A chunk no consumer handled counts as cancelled with no row handled when the run was
    cancelled; otherwise raises DeliveryError naming the chunks (run the job again to resume)."""
    missing = [ref for ref in refs if ref.index not in results]
    if missing and not cancelled:
        were = "was" if len(missing) == 1 else "were"
        raise DeliveryError(f"{plural(len(missing), 'chunk')} {were} not delivered by any consumer ({missing[0].label}"
                            f"{', ...' if len(missing) > 1 else ''}); run the job again to resume")
    return [results.get(ref.index) or DeliverySummary(job_id=job_id, limit_key=limit_key, rows_total=ref.rows,
                                                      cancelled=True) for ref in refs]


def chunk_counts(refs: Sequence[ChunkRef], parts: Sequence[DeliverySummary]) -> list[ChunkCount]:
    """The ``per_chunk`` counts of a job's summary from ``chunk_parts``."""
    return [ChunkCount(chunk=ref.index, first_row=ref.first_row, last_row=ref.last_row, delivered=p.delivered,
                       failed=p.failed, http_429=p.http_429,
                       skipped=p.skipped_already_delivered + p.skipped_already_at_destination + p.skipped_suppressed)
            for ref, p in zip(refs, parts)]


def concat_csv(paths: Sequence[str | Path], out: str | Path) -> str | None:
    """Write the rows of several CSV files (e.g. per-chunk dead-letter files) into ``out``.

    The header is the union of the inputs' headers in first-seen order.
    Missing or empty inputs are ignored; returns ``str(out)`` or None when
    there was no row at all (then ``out`` is not created).
    """
    present = [Path(p) for p in paths if p and Path(p).is_file() and Path(p).stat().st_size]
    header: dict[str, None] = {}
    for p in present:
        with open(p, newline="", encoding="utf-8") as fh:
            header.update(dict.fromkeys(next(csv.reader(fh), [])))
    if not present:
        return None
    with open(out, "w", newline="", encoding="utf-8") as dst:
        writer = csv.DictWriter(dst, fieldnames=list(header))
        writer.writeheader()
        for p in present:
            with open(p, newline="", encoding="utf-8") as fh:
                writer.writerows(csv.DictReader(fh))
    return str(out)
