"""Following a web job's flow run from what it leaves behind while it runs:
``merge-report.json`` (rows to deliver), the job's delivery ledger (rows
delivered), the per-chunk dead-letter files (rows failed),
``delivery-progress.json`` (429 answers and the limiter's current rate, about
once a second) and, at the end, ``summary.json`` (every count)."""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import threading
import time
from pathlib import Path

from csv_merger.errors import CsvMergerError
from csv_merger.web.flow_request import FlowRequest
from csv_merger.web.jobs import JobCounts, JobStatus, JobStore

log = logging.getLogger("csv_merger.web")

POLL_S = 1.0
RATE_WINDOW_S = 5.0  # the shown delivery rate is measured over this many seconds


class ProgressProbe:
    """Live counts of one job from the files and ledger its flow run writes."""

    def __init__(self, request: FlowRequest):
        self.request = request
        self.out = Path(request.output_dir)
        self._history: list[tuple[float, int]] = []

    def counts(self) -> JobCounts | None:
        """Counts so far, or None before the merge finished (nothing to deliver yet)."""
        report = _read_json(self.out / "merge-report.json")
        if report is None:
            return None
        delivered = self._delivered()
        failed = sum(_csv_rows(path) for path in (self.out / "dead-letter").glob("*.csv"))
        now = time.monotonic()
        self._history = [(t, n) for t, n in self._history if now - t <= RATE_WINDOW_S] + [(now, delivered)]
        (t0, n0) = self._history[0]
        rate = (delivered - n0) / (now - t0) if now - t0 >= 1.0 else 0.0
        from flows.merge_and_deliver import LIVE_PROGRESS

        live = _read_json(self.out / LIVE_PROGRESS) or {}
        return JobCounts(rows_total=report["rows_out"], delivered=delivered, failed=failed, current_rate=rate,
                         http_429=live.get("http_429", 0), limit_rate=live.get("current_rate"))

    def _delivered(self) -> int:
        from tasks.deliver import open_ledger

        async def count() -> int:
            ledger = open_ledger(self.request.ledger_id, redis_url=self.request.redis_url,
                                 data_dir=self.request.data_dir)
            try:
                return len(await ledger.delivered())
            finally:
                await ledger.aclose()

        try:
            return asyncio.run(count())
        except (CsvMergerError, OSError) as exc:  # e.g. Redis briefly away: keep the last count
            log.warning("job %s: ledger not readable: %s", self.request.job_id, exc)
            return 0


def _csv_rows(path: Path) -> int:
    """Data rows of a CSV being appended to (its header excluded)."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            return max(0, sum(1 for _ in csv.reader(handle)) - 1)
    except OSError:
        return 0


def record_outcome(store: JobStore, request: FlowRequest, probe: ProgressProbe, status: JobStatus,
                   error: str | None = None) -> None:
    """Store a finished run's counts and files, then its final status."""
    out = Path(request.output_dir)
    updates: dict = {}
    if (out / "merged.csv").is_file():
        updates["merged_csv"] = str(out / "merged.csv")
    if (report := _read_json(out / "merge-report.json")) is not None:
        updates.update(rows_in=report["rows_in"], rows_out=report["rows_out"],
                       duplicates_merged=report["duplicates_merged"])
    final = _read_json(out / "summary.json")
    if final and final.get("plan"):
        updates["plan"] = final["plan"]
    if final and final.get("delivery"):
        d = final["delivery"]
        store.progress(request.job_id, JobCounts(
            rows_total=d["rows_total"], delivered=d["delivered"], failed=d["failed"],
            skipped=d["skipped_already_delivered"], http_429=d["http_429"]))
        updates["destinations"] = d.get("destinations", [])
        if final.get("dead_letter_path") and Path(final["dead_letter_path"]).is_file():
            updates["dead_letter_csv"] = final["dead_letter_path"]
    elif request.webhook_url and (counts := probe.counts()) is not None:
        store.progress(request.job_id, counts)  # ended early (crash, cancel): counts as of the end
    if updates:
        store.update(request.job_id, **updates)
    store.set_status(request.job_id, status, error=_scrub(error, request) if error else None)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _scrub(message: str, request: FlowRequest) -> str:
    """A message without server paths: input files by their names, the job folder elided."""
    for path in request.files:
        message = message.replace(path, Path(path).name)
    return message.replace(request.output_dir, "<job output>")


def follow(store: JobStore, probe: ProgressProbe, job_id: str, done: threading.Event) -> None:
    """Copy live counts into the store every second until ``done`` is set."""
    while not done.wait(POLL_S):
        counts = probe.counts()
        if counts is not None:
            store.progress(job_id, counts)
