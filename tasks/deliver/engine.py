"""Delivery engine: POST one JSON body per merged-CSV row, at the target's rate.

Shape: ``concurrency`` worker coroutines share the ``DeliverySession``'s ``httpx.AsyncClient`` and rate
limiter (tasks.deliver.ratelimit, shared through Redis when configured). Each worker takes
the next row, builds its body once, then for every attempt waits ``limiter.acquire()`` and
POSTs. A recorder task writes acknowledged rows to the ledger in batches (group commit:
all acknowledged while the previous write ran go in the next); a ticker reports progress
every second and watches the cancel flag.

Outcomes per row:

- 2xx: delivered (counted, then recorded in the ledger at the next flush).
- 429: ``limiter.throttled(Retry-After)`` pauses every process sharing the
  limit key and lowers the shared rate; the row is sent again after the
  pause. A 429 does not spend one of the row's ``max_attempts`` (the target
  said "slower", not "failed"); only the row's time budget bounds it, and
  a row throttled past its budget goes to the dead-letter file, never lost.
- 5xx, 408, timeouts, connection errors: when the target is down for every row
  (tasks.deliver.outage), every worker on the limit key pauses and probes, the row
  is sent again without spending an attempt. Otherwise retried per tasks.deliver.retry
  (exponential backoff + jitter, or the target's Retry-After), at most
  ``max_attempts`` attempts within ``retry_budget_s``; then dead-lettered.
- Other statuses (4xx, 3xx: never followed): dead-lettered at once with the status and the
  first 500 bytes of the response. A body above ``payload_limit_bytes``, a row the template cannot
  render, or past every destination's ceiling (tasks.deliver.route): dead-lettered, never sent.

Early stops (a wrong auth token or URL: tasks.deliver.refusal; a host or port never reached:
tasks.deliver.unreachable): stop taking rows as a cancel does, raise ``TargetRefusedError``
(a DeliveryError carrying the summary).
Guarantee: at-least-once. A row is written to the ledger only after its 2xx,
so the ledger never claims a row the target did not acknowledge. A worker
does not send its next row before the ledger holds its previous one, so at
any moment each worker has at most one row that is in flight or acknowledged
but not yet recorded. A crash (or Redis dying) therefore re-sends at most
``concurrency`` rows on resume, each with the same Idempotency-Key, so a
target that honours the key stores them once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx

from csv_merger.errors import DeliveryError
from tasks.deliver.dead_letter import DeadLetterWriter, response_excerpt
from tasks.deliver.job import DeliveryProgress, DeliverySummary
from tasks.deliver.outage import OutageBreaker, OutagePolicy, Verdict
from tasks.deliver.payloads import PayloadError, idempotency_key, oversize_reason
from tasks.deliver.refusal import RefusalWatch
from tasks.deliver.retry import TransientFailure, is_retryable_status, is_transient_error, make_retrying, parse_retry_after
from tasks.deliver.transport import worker_index

log = logging.getLogger("csv_merger.delivery")

PROGRESS_EVERY_S = 1.0
CANCEL_POLL_S = 0.1
SHUTDOWN_WAIT_S = 5.0


class _RowDead(Exception):
    """A row ends undelivered: ``status`` (int or word), ``reason``, ``response``."""

    def __init__(self, status: int | str, reason: str, response: str = ""):
        self.status, self.reason, self.response = status, reason, response
        super().__init__(reason)


@dataclass(slots=True)
class _Row:
    number: int
    record: dict[str, str]
    url: str | None = None  # the destination it goes to (tasks.deliver.route)
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    attempts: int = 0
    reached: bool = False  # the target may have received it (a response, or an error after connecting)
    deadline: float = 0.0


@dataclass(slots=True)
class _Worker:
    idle: bool = True  # not awaiting a POST: safe to cancel when stopping
    task: asyncio.Task | None = None
    recorded: asyncio.Future | None = None  # ledger write holding this worker's last delivered row


class Engine:
    """One batch of rows (a chunk, or a whole file) through a ``DeliverySession``'s client, limiter,
    ledger and destination gate; see the module docstring. ``run(pending)`` returns the batch's
    ``DeliverySummary``; ``rows_total`` counts every row of the batch, pending or not."""

    def __init__(self, session, rows_total: int, columns: list[str], dead_letter_path: str | None,
                 progress: Callable[[DeliveryProgress], None] | None, cancel: threading.Event | None):
        self.config, self.limiter, self.ledger = session.config, session.limiter, session.ledger
        self.client, self.gate, self.build = session.client, session.gate, session.build
        self.breaker = OutageBreaker(OutagePolicy(budget_s=self.config.outage_budget_s), self.limiter)
        self.progress, self.cancel = progress, cancel
        self.summary = DeliverySummary(job_id=session.job_id, limit_key=session.limit_key, rows_total=rows_total)
        self.dead = DeadLetterWriter(dead_letter_path, columns) if dead_letter_path else None
        self.unflushed: list[int] = []  # delivered, not yet in the ledger
        self.batch_recorded: asyncio.Future = asyncio.get_running_loop().create_future()
        self.has_unflushed = asyncio.Event()
        self.workers_done = False
        self.stopping = False
        self.refusal = RefusalWatch()
        self.unreachable = session.unreachable
        self.workers: list[_Worker] = []
        self.started = time.monotonic()

    # -- one row -------------------------------------------------------------

    async def _attempt(self, row: _Row, worker: _Worker) -> httpx.Response:
        """Send, again after each 429 or target-outage failure once the limiter allows. Returns a final response
        (not 429/5xx/408); raises TransientFailure (retryable), _RowDead (429 or outage past its budget)."""
        while True:
            if worker.recorded is not None:  # at most one unrecorded row per worker
                await asyncio.shield(worker.recorded)  # a cancel here must not cancel the batch's shared future
                worker.recorded = None
            await self.limiter.acquire()
            if self.stopping:
                raise asyncio.CancelledError
            row.attempts += 1
            self.summary.attempts += 1
            worker.idle = False
            try:
                resp = await self.client.post(row.url, content=row.body, headers=row.headers)
                row.reached = True
                self.unreachable.got_through()
            except httpx.HTTPError as exc:
                row.reached = row.reached or not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                if self.unreachable.failed(row.url, exc, time.monotonic()):
                    log.warning(self.unreachable.notice())
                if not is_transient_error(exc):
                    raise DeliveryError(f"cannot send to the webhook: {type(exc).__name__}: {exc}") from None
                await self._target_failed(row, TransientFailure(None, f"{type(exc).__name__}: {exc or 'no detail'}"))
                continue
            finally:
                worker.idle = True
            status = resp.status_code
            if status == 429:
                self.summary.http_429 += 1
                await self.limiter.throttled(parse_retry_after(resp.headers.get("retry-after")))
                if time.monotonic() > row.deadline:
                    raise _RowDead(429, f"still answered 429 after the retry budget of {self.config.retry_budget_s:g} s",
                                   response_excerpt(resp.content))
                continue
            if is_retryable_status(status):
                failure = TransientFailure(status, f"HTTP {status}", response_excerpt(resp.content),
                                           parse_retry_after(resp.headers.get("retry-after")))
                await self._target_failed(row, failure)
                continue
            return resp

    async def _target_failed(self, row: _Row, failure: TransientFailure) -> None:
        """A 5xx/408/timeout/connection error: return when the target is down (every worker paused: send
        again); raise ``failure`` when it is the row's own, _RowDead when the outage is past its budget."""
        verdict = await self.breaker.failed(row.number)
        if verdict is Verdict.OVER_BUDGET:
            raise _RowDead(failure.dead_status, self.breaker.over_budget(failure.reason), failure.response)
        if verdict is Verdict.ROW_FAILURE:
            raise failure
        self.summary.outage_pauses += 1

    async def _deliver(self, number: int, record: dict[str, str], worker: _Worker, retrying) -> None:
        row = _Row(number, record)
        reserved = False
        try:
            try:
                row.body = self.build(number, record)
            except PayloadError as exc:
                raise _RowDead("not-sent", str(exc)) from None
            if too_big := oversize_reason(row.body, self.config.payload_limit_bytes):
                raise _RowDead("not-sent", too_big)
            row.headers = {"Idempotency-Key": idempotency_key(self.summary.job_id, number)}
            row.deadline = time.monotonic() + self.config.retry_budget_s
            row.url = await self.gate.reserve(number)  # the destination with room: never past a ceiling
            if not (reserved := row.url is not None):
                raise _RowDead("not-sent", self.gate.full_reason())
            try:
                async for attempt in retrying:
                    with attempt:
                        resp = await self._attempt(row, worker)
            except TransientFailure as exc:
                raise _RowDead(exc.dead_status, f"gave up after {row.attempts} attempts: {exc.reason}",
                               exc.response) from None
            if 200 <= resp.status_code < 300:
                self.refusal.delivered()
                self.breaker.succeeded()
                self.summary.delivered += 1
                self.unflushed.append(number)
                worker.recorded = self.batch_recorded
                self.has_unflushed.set()
                await self.limiter.succeeded()
                return
            reason = f"HTTP {resp.status_code} {resp.reason_phrase}".rstrip()
            if resp.is_redirect:
                reason += f": redirect to {resp.headers.get('location', '?')!r} not followed"
            raise _RowDead(resp.status_code, reason + " (not retried)", response_excerpt(resp.content))
        except _RowDead as dead:
            if reserved:
                await self.gate.release(number)
            self.summary.failed += 1
            log.info("row %d dead-lettered: %s %s", number, dead.status, dead.reason)
            if self.dead is not None:
                self.dead.write(number, record, status=dead.status, reason=dead.reason,
                                response=dead.response, attempts=row.attempts)
            if self.refusal.dead(dead.status) and not self.stopping:
                self.refusal.fired = True
                self._stop_taking_rows()
        except BaseException:
            if reserved and not row.reached:  # stopped before the target could receive it: never sent
                await self.gate.release(number)
            raise

    async def _work(self, rows: Iterator[tuple[int, dict[str, str]]], worker: _Worker, index: int) -> None:
        worker_index.set(index)
        retrying = make_retrying(self.config.max_attempts, self.config.retry_budget_s)
        try:
            for number, record in rows:
                if self.stopping:
                    return
                await self._deliver(number, record, worker, retrying)
        except asyncio.CancelledError:
            if not self.stopping:
                raise  # cancelled by our caller, not by a cancel request

    # -- the run -------------------------------------------------------------

    async def _flush(self) -> None:
        """Write every acknowledged row not yet in the ledger (one batch)."""
        batch, self.unflushed = self.unflushed, []
        done, self.batch_recorded = self.batch_recorded, asyncio.get_running_loop().create_future()
        try:
            await self.ledger.record(batch)
        except BaseException as exc:
            self.unflushed = batch + self.unflushed
            done.set_exception(exc if isinstance(exc, Exception) else DeliveryError("ledger write cancelled"))
            done.exception()  # retrieved here: the recorder task reports the error
            raise
        done.set_result(None)

    async def _record(self) -> None:
        """Write batches until the workers are done and nothing is left."""
        while True:
            await self.has_unflushed.wait()
            self.has_unflushed.clear()
            if self.unflushed:
                await self._flush()
            if self.workers_done and not self.unflushed:
                return

    def _report(self) -> None:
        if self.progress is not None:
            s = self.summary
            self.progress(DeliveryProgress(s.delivered, s.failed, s.skipped_already_delivered, s.http_429,
                                           s.attempts, s.rows_total, round(time.monotonic() - self.started, 3),
                                           self.limiter.current_rate, self.limiter.learned_rate,
                                           self.gate.snapshot()))

    def _stop_taking_rows(self) -> None:
        self.stopping = True
        for w in self.workers:
            if w.idle and w.task is not None:
                w.task.cancel()

    async def _tick(self) -> None:
        last_report = time.monotonic()
        while True:
            await asyncio.sleep(CANCEL_POLL_S)
            now = time.monotonic()
            if self.cancel is not None and self.cancel.is_set() and not self.stopping:
                self.summary.cancelled = True
                self._stop_taking_rows()
            if not self.stopping and self.unreachable.due(now):
                self._stop_taking_rows()
            if now - last_report >= PROGRESS_EVERY_S:
                last_report = now
                self._report()

    async def run(self, pending: list[tuple[int, dict[str, str]]]) -> DeliverySummary:
        shared = iter(pending)
        self.workers = [_Worker() for _ in range(min(self.config.concurrency, max(1, len(pending))))]
        for i, w in enumerate(self.workers):
            w.task = asyncio.create_task(self._work(shared, w, i))
        ticker, recorder = asyncio.create_task(self._tick()), asyncio.create_task(self._record())
        tasks = {w.task for w in self.workers}
        try:
            while tasks:
                done, _ = await asyncio.wait(tasks | {ticker, recorder}, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    if not t.cancelled() and t.exception() is not None:
                        raise t.exception()
                tasks -= done
            # The recorder is told to finish, not cancelled: redis-py may
            # swallow a cancellation in the middle of a command.
            self.workers_done = True
            self.has_unflushed.set()
            await recorder
        finally:
            for t in (*tasks, ticker, recorder):
                t.cancel()
            if tasks or not recorder.done():  # an error: do not wait long on a dead Redis
                await asyncio.wait({*tasks, ticker, recorder}, timeout=SHUTDOWN_WAIT_S)
            for t in (*tasks, ticker, recorder):  # the first error is raised; the others end with it
                if t.done() and not t.cancelled():
                    t.exception()
        self._report()
        return self.summary
