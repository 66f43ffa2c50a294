"""What a job shows in the Prefect UI (Artifacts tab of the flow run).

- a table artifact with the merge report: one row per input file
  (encoding, delimiter, rows, bad rows, warnings, header mapping);
- a progress artifact, updated while rows are delivered: monotonic, and
  100 % only once the run reached a terminal state with every row handled;
- a markdown artifact summarising the run (delivered, failed, 429s,
  effective rate, duration, dead-letter location).

Keys follow Prefect's rule (lowercase letters, digits and dashes only, see
``prefect.artifacts``) and embed the job id, so re-runs of one job form one
artifact history.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

if TYPE_CHECKING:
    from tasks.deliver.job import DestinationUse
    from tasks.merge import MergeReport
    from tasks.summary import PipelineSummary

log = logging.getLogger(__name__)

# Below 100 % until the run is over, however the counts round (100 % means "finished").
_RUNNING_CAP = 99.9


def artifact_key(kind: str, job_id: str) -> str:
    """``kind`` + job id folded to Prefect's key alphabet, e.g. ``merge-report-job-3f2a``."""
    key = re.sub(r"[^a-z0-9]+", "-", f"{kind}-{job_id}".lower()).strip("-")
    return key[:100].rstrip("-")


def merge_report_rows(report: MergeReport) -> list[dict[str, str | int]]:
    """One table row per input file: what was read and how its headers were mapped."""
    rows = []
    for f in report.files:
        mapped = ", ".join(f"{src} → {dst}" if dst else f"{src} (kept)" for src, dst in f.mapping.items())
        rows.append({
            "file": f.path, "encoding": f.encoding, "delimiter": repr(f.delimiter), "rows": f.rows,
            "bad rows": len(f.bad_rows), "warnings": "; ".join(f.warnings) or "-",
            "status": f"skipped: {f.error}" if f.skipped else "merged", "mapping": mapped,
        })
    return rows


def publish_merge_report(report: MergeReport, job_id: str) -> None:
    """Create the merge-report table artifact for ``job_id``."""
    create_table_artifact(
        table=merge_report_rows(report),
        key=artifact_key("merge-report", job_id),
        description=(f"Merge of {len(report.files)} file(s): {report.rows_in} rows in, {report.rows_out} out, "
                     f"{report.duplicates_merged} duplicates merged."),
    )


def publish_summary(summary: PipelineSummary) -> None:
    """Create the markdown summary artifact of a finished run."""
    report, d = summary.report, summary.delivery
    lines = [f"# Job `{summary.job_id}`: {summary.state}", "",
             f"- Merged: {report.rows_out} rows from {report.rows_in} read in {len(report.files)} file(s), "
             f"{report.duplicates_merged} duplicates merged",
             f"- Merged CSV: `{summary.merged_csv}`"]
    if d is None:
        lines.append("- Delivery: none (no webhook URL given: merge only)")
    else:
        rate = d.delivered / d.elapsed_s if d.elapsed_s > 0 else 0.0
        lines += ["", "| delivered | failed | already delivered | HTTP 429 | attempts | effective rate | duration |",
                  "|---:|---:|---:|---:|---:|---:|---:|",
                  f"| {d.delivered} | {d.failed} | {d.skipped_already_delivered} | {d.http_429} | {d.attempts} "
                  f"| {rate:.1f}/s | {d.elapsed_s:.1f} s |", "",
                  f"- Dead-letter file: `{summary.dead_letter_path}`" if summary.dead_letter_path
                  else "- Dead-letter file: none (no row failed)"]
        if d.destination_text():
            lines.append(f"- Destination {d.destination_text()}")
    create_markdown_artifact(markdown="\n".join(lines), key=artifact_key("job-summary", summary.job_id),
                             description=f"Summary of job {summary.job_id}")


class DeliveryProgress:
    """A progress artifact fed from several chunk tasks at once.

    ``set_chunk(index, handled, http_429, current_rate, destinations, sent)``
    records how many rows of a chunk are handled (delivered, dead-lettered or
    already delivered), its 429 answers, its limiter's allowed rate (requests/s,
    None once the chunk is done) and how many of its rows this run sent
    (delivered or dead-lettered); a background thread pushes the total to
    the API at most every ``interval_s`` seconds, so the delivery loop never
    waits for the API. The pushed value never goes down and stays below
    100 % until ``finish(complete=True)``. ``listeners`` (class-wide) are
    also called as ``fn(handled, rows_total, sent=, http_429=, limit=, destinations=)`` at each
    push (the CLI's progress display, whose rate counts rows sent; ``limit`` as ``current_rate``
    below). With ``live_path``, each push also writes
    ``{"handled", "rows_total", "http_429", "current_rate"}`` there as JSON
    (replaced atomically; ``current_rate`` the lowest rate of the running
    chunks, None when none runs) for the web page's live counts. ``on_start`` (class-wide) are called as
    ``fn(job_id)`` when delivery starts, before any push (the CLI prints the job id first).
    """

    listeners: list[Callable[..., None]] = []
    on_start: list[Callable[[str], None]] = []

    def __init__(self, job_id: str, rows_total: int, interval_s: float = 1.0, live_path: Path | None = None):
        self.rows_total, self.interval_s, self.live_path = rows_total, interval_s, live_path
        self._handled: dict[int, int] = {}
        self._sent: dict[int, int] = {}
        self._http_429: dict[int, int] = {}
        self._rates: dict[int, float] = {}
        self._destinations: dict[str, DestinationUse] = {}  # by label, in rollover order
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._shown = 0.0
        for started in self.on_start:
            started(job_id)
        self.artifact_id = create_progress_artifact(
            progress=0.0, key=artifact_key("delivery-progress", job_id),
            description=f"Rows handled of {rows_total} (delivered, dead-lettered or delivered before)")
        # A copy of the current context, so the thread talks to the same Prefect API.
        ctx = contextvars.copy_context()
        self._thread = threading.Thread(target=ctx.run, args=(self._pump,), daemon=True, name="progress-artifact")
        self._thread.start()

    @property
    def handled(self) -> int:
        with self._lock:
            return sum(self._handled.values())

    @property
    def percent(self) -> float:
        """Rows handled so far, in percent of ``rows_total`` (capped below 100 while running)."""
        if self.rows_total == 0:
            return _RUNNING_CAP
        return min(_RUNNING_CAP, 100.0 * self.handled / self.rows_total)

    def set_chunk(self, index: int, handled: int, http_429: int = 0, current_rate: float | None = None,
                  destinations: Sequence[DestinationUse] = (), sent: int = 0) -> None:
        with self._lock:
            for use in destinations:  # counts only grow (but for a release): the highest is the latest
                if use.label not in self._destinations or use.used > self._destinations[use.label].used:
                    self._destinations[use.label] = use
            self._handled[index] = max(handled, self._handled.get(index, 0))
            self._sent[index] = max(sent, self._sent.get(index, 0))
            self._http_429[index] = max(http_429, self._http_429.get(index, 0))
            if current_rate is None:
                self._rates.pop(index, None)
            else:
                self._rates[index] = current_rate

    def snapshot(self) -> dict:
        """``{"handled", "rows_total", "http_429", "current_rate"}`` as of now."""
        with self._lock:
            return {"handled": sum(self._handled.values()), "rows_total": self.rows_total,
                    "http_429": sum(self._http_429.values()),
                    "current_rate": min(self._rates.values()) if self._rates else None}

    def _write_live(self, live: dict) -> None:
        tmp = self.live_path.with_name(f".{self.live_path.name}.tmp")
        try:
            tmp.write_text(json.dumps(live), encoding="utf-8")
            os.replace(tmp, self.live_path)
        except OSError as exc:  # a full disk must not stop delivery; the page keeps its last counts
            log.warning("live progress not written: %s", exc)

    def _push(self, value: float) -> None:
        live = self.snapshot()
        with self._lock:
            sent = sum(self._sent.values())
        for listener in self.listeners:
            listener(live["handled"], live["rows_total"], sent=sent, http_429=live["http_429"],
                     limit=live["current_rate"], destinations=list(self._destinations.values()))
        if self.live_path is not None:
            self._write_live(live)
        if value > self._shown:
            self._shown = value
            update_progress_artifact(self.artifact_id, round(value, 1), _sync=True)

    def _pump(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._push(self.percent)
            except Exception as exc:  # the API being briefly away must not stop delivery
                log.warning("progress artifact not updated: %s", exc)

    def finish(self, complete: bool) -> float:
        """Stop updating; show 100 % when ``complete`` (every row handled), else the last count.
        Returns the final percentage shown."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._push(100.0 if complete else self.percent)
        return self._shown
