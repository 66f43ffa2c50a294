"""Jobs started from the web page: their state, progress and ETA.

A job is one run of the ``merge-and-deliver`` flow. ``JobStore`` keeps jobs in
memory (thread-safe) and enforces the two rules the old system broke:

- progress only moves forward and shows 100% only once the job has ended;
- a terminal status is final, and a job whose cancel was asked for ends
  Cancelled, never Completed.

ETA is remaining rows divided by the rate rows are currently accepted at
(measured, rows/s), never derived from request latency. While a job runs
it keeps a short history of that rate and the limiter's allowed rate for
the page's chart.
"""

from __future__ import annotations

import secrets
import threading
import time
from enum import Enum

from pydantic import BaseModel, Field


class JobStatus(str, Enum):
    """Lifecycle of a job (names follow Prefect's flow-run states)."""

    SCHEDULED = "Scheduled"
    PENDING = "Pending"
    RUNNING = "Running"
    CANCELLING = "Cancelling"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


HISTORY_POINTS = 240
"""Most rate samples a job keeps; beyond it every other old sample is dropped (coarser, same span)."""


class JobCounts(BaseModel):
    """Delivery counters (rows, 429 answers), ``current_rate``: rows accepted
    per second lately (measured), ``limit_rate``: the limiter's allowed
    requests/s (None when not known: before delivery starts, after it ends)."""

    rows_total: int = 0
    delivered: int = 0
    failed: int = 0
    skipped: int = 0
    http_429: int = 0
    current_rate: float = 0.0
    limit_rate: float | None = None


class Job(BaseModel):
    """One job. Paths are server-side only and never sent to the browser."""

    id: str
    created_at: float
    key: str | None = None                   # same uploads + target + settings = same key (and ledger)
    mode: str                                # "deliver" | "merge_only"
    runner: str                              # "embedded" | "prefect"
    table_type: str
    files: list[str]                         # display names of the uploads
    target: str | None = None                # webhook host (never the token)
    rate: float
    burst: int
    chunk_size: int
    payload: str = "flat"                    # "flat" | "seed" | the template's file name
    status: JobStatus = JobStatus.PENDING
    scheduled_for: float | None = None       # Unix seconds, off-hours jobs
    started_at: float | None = None
    ended_at: float | None = None
    counts: JobCounts = Field(default_factory=JobCounts)
    # (seconds since start, accepted rows/s, limit requests/s or None), one per progress update
    history: list[tuple[float, float, float | None]] = Field(default_factory=list)
    rows_in: int | None = None
    rows_out: int | None = None
    duplicates_merged: int | None = None
    flow_run_id: str | None = None
    flow_run_url: str | None = None
    error: str | None = None
    merged_csv: str | None = None
    dead_letter_csv: str | None = None
    expired: bool = False
    cancel_requested: bool = False
    dry_run: bool = False                    # nothing sent: ``plan`` says what a run would do
    plan: dict | None = None                 # a dry run's DeliveryPlan (tasks.deliver.plan), once ended
    destinations: list[dict] = Field(default_factory=list)  # [{label, used, ceiling}] as of the end

    @property
    def remaining(self) -> int:
        c = self.counts
        return max(0, c.rows_total - c.delivered - c.failed - c.skipped)

    def percent(self) -> float:
        """0-100. 100 only when the job has ended; below 100 while it runs."""
        if self.status is JobStatus.COMPLETED:
            return 100.0
        c = self.counts
        if not c.rows_total:
            return 0.0
        done = 100.0 * (c.rows_total - self.remaining) / c.rows_total
        return done if self.status.terminal else min(done, 99.0)

    def eta_s(self) -> float | None:
        """Seconds left at the current rate, or None when unknown or ended."""
        rate = self.counts.current_rate or self.rate
        if self.status is not JobStatus.RUNNING or not self.counts.rows_total or rate <= 0:
            return None
        return self.remaining / rate

    def view(self) -> dict:
        """What the API returns: no server paths, no secrets."""
        data = self.model_dump(exclude={"merged_csv", "dead_letter_csv", "cancel_requested", "key"})
        data.update(
            status=self.status.value,
            percent=round(self.percent(), 1),
            remaining=self.remaining,
            eta_s=None if (eta := self.eta_s()) is None else round(eta, 1),
            has_merged_csv=bool(self.merged_csv) and not self.expired,
            has_dead_letter=bool(self.dead_letter_csv) and not self.expired,
        )
        return data


class JobActive(Exception):
    """A job with the same ``key`` has not ended yet; ``job`` is (a copy of) it."""

    def __init__(self, job: Job):
        self.job = job
        super().__init__(f"job {job.id} with the same key is {job.status.value}")


class JobStore:
    """In-memory jobs keyed by id; every change goes through one lock."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def add(self, **fields) -> Job:
        """Create a job (status Pending unless given) and return a copy.

        With a ``key``, raises JobActive when a job with that key has not
        ended: the check and the add are one step, so two Start presses in
        the same instant give one job.
        """
        job = Job(id=secrets.token_hex(6), created_at=time.time(), **fields)
        with self._lock:
            active = next((j for j in self._jobs.values()
                           if job.key and j.key == job.key and not j.status.terminal), None)
            if active is not None:
                raise JobActive(active.model_copy(deep=True))
            self._jobs[job.id] = job
            return job.model_copy(deep=True)

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return job.model_copy(deep=True) if job else None

    def list(self) -> list[Job]:
        """All jobs, newest first."""
        with self._lock:
            jobs = [j.model_copy(deep=True) for j in self._jobs.values()]
        return sorted(jobs, key=lambda j: j.created_at, reverse=True)

    def update(self, job_id: str, **fields) -> Job:
        """Set plain fields (not status or counts) on a job."""
        with self._lock:
            job = self._jobs[job_id]
            for name, value in fields.items():
                setattr(job, name, value)
            return job.model_copy(deep=True)

    def progress(self, job_id: str, counts: JobCounts) -> None:
        """Record progress; counters never go backwards, ended jobs are frozen."""
        with self._lock:
            job = self._jobs[job_id]
            if job.status.terminal:
                return
            old = job.counts
            job.counts = JobCounts(
                rows_total=max(old.rows_total, counts.rows_total),
                delivered=max(old.delivered, counts.delivered),
                failed=max(old.failed, counts.failed),
                skipped=max(old.skipped, counts.skipped),
                http_429=max(old.http_429, counts.http_429),
                current_rate=counts.current_rate,
                limit_rate=counts.limit_rate,
            )
            since = time.time() - (job.started_at or job.created_at)
            job.history.append((round(since, 1), round(counts.current_rate, 2), counts.limit_rate))
            if len(job.history) > HISTORY_POINTS:
                job.history[:-HISTORY_POINTS // 2] = job.history[:-HISTORY_POINTS // 2:2]

    def set_status(self, job_id: str, status: JobStatus, *, error: str | None = None) -> Job:
        """Move a job to ``status``, keeping the lifecycle rules.

        A terminal status is never left; after a cancel request the only
        terminal status a job can reach is Cancelled.
        """
        with self._lock:
            job = self._jobs[job_id]
            if job.status.terminal:
                return job.model_copy(deep=True)
            if job.cancel_requested and status.terminal:
                status = JobStatus.CANCELLED
            elif job.cancel_requested:
                status = JobStatus.CANCELLING
            now = time.time()
            if status is JobStatus.RUNNING and job.started_at is None:
                job.started_at = now
            if status.terminal:
                job.ended_at = now
                job.counts.current_rate, job.counts.limit_rate = 0.0, None
            job.status = status
            if error:
                job.error = error
            return job.model_copy(deep=True)

    def request_cancel(self, job_id: str) -> Job:
        """Mark a cancel request; a job not yet running is Cancelled at once."""
        with self._lock:
            job = self._jobs[job_id]
            if job.status.terminal:
                return job.model_copy(deep=True)
            job.cancel_requested = True
        not_started = job.status in (JobStatus.SCHEDULED, JobStatus.PENDING)
        return self.set_status(job_id, JobStatus.CANCELLED if not_started else JobStatus.CANCELLING)

    def expire(self, ttl_s: float, now: float | None = None) -> list[Job]:
        """Mark ended jobs older than ``ttl_s`` as expired; return those newly expired."""
        now = time.time() if now is None else now
        with self._lock:
            newly = [j for j in self._jobs.values()
                     if j.status.terminal and not j.expired and now - (j.ended_at or j.created_at) >= ttl_s]
            for job in newly:
                job.expired = True
            return [j.model_copy(deep=True) for j in newly]
