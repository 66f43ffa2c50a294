""""Retry failed rows" of a finished web job: its dead-letter rows sent again
by the redeliver path (as ``csv-merger redeliver``): the original job id
(ledger) and row numbers, so every row keeps its Idempotency-Key, and the
same destinations, payload and rate.

The retry is a job of its own (mode "retry", shown like any other) that
runs the delivery engine in a thread of this server; its rows that fail
again go to its own dead-letter CSV, which can be retried in turn.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import threading
from pathlib import Path

from csv_merger.errors import CsvMergerError
from csv_merger.web.errors import ApiError
from csv_merger.web.flow_request import FlowRequest
from csv_merger.web.jobs import Job, JobActive, JobCounts, JobStatus, JobStore

log = logging.getLogger("csv_merger.web")


def start_retry(store: JobStore, original: Job, request: FlowRequest | None, job_dir: Path,
                auth_token: str | None) -> Job:
    """Start a retry of ``original``'s dead-letter rows (``request``: the flow request it ran with,
    token removed; ``auth_token`` given again). 409 while the job (or a retry of it) has not ended,
    or when it has no dead-letter CSV or was started by an earlier server process."""
    if not original.status.terminal:
        raise ApiError(409, f"job {original.id} has not ended: retry its failed rows once it has", field="job")
    if not original.dead_letter_csv or original.expired or not Path(original.dead_letter_csv).is_file():
        raise ApiError(409, f"job {original.id} has no failed rows to retry", field="job")
    if request is None or not request.webhook_url:
        raise ApiError(409, f"job {original.id} was not a delivery of this server process: nothing to retry",
                       field="job")
    try:
        job = store.add(key=f"retry-{request.ledger_id}", mode="retry", runner="embedded",
                        table_type=request.table_type, files=[f"{original.id} dead-letter.csv"],
                        target=original.target, rate=request.rate_limit, burst=request.burst,
                        chunk_size=request.chunk_size, payload=original.payload)
    except JobActive as exc:
        raise ApiError(409, f"a retry of job {original.id} ({exc.job.id}) is {exc.job.status.value.lower()}",
                       field="job") from None
    threading.Thread(target=_run, args=(store, job.id, original.dead_letter_csv, request, job_dir, auth_token),
                     name=f"retry-{job.id}", daemon=True).start()
    return job


def _run(store: JobStore, job_id: str, dead_letter: str, request: FlowRequest, job_dir: Path,
         auth_token: str | None) -> None:
    from tasks.deliver.dead_letter import read_dead_letter
    from tasks.deliver.new_leads import deliver_new_leads
    from tasks.merge.dedupe import lead_identities
    from tasks.stages import delivery_config

    store.set_status(job_id, JobStatus.RUNNING)
    try:
        rows = read_dead_letter(dead_letter)
        config = delivery_config(request.webhook_url, job_id=request.ledger_id, table_type=request.table_type,
                                 rate_limit=request.rate_limit, burst=request.burst, redis_url=request.redis_url,
                                 payload=request.payload, allow_private_targets=request.allow_private_targets)
        job_dir.mkdir(parents=True, exist_ok=True)
        config = dataclasses.replace(config, auth_token=auth_token or config.auth_token,
                                     dead_letter_path=str(job_dir / "dead-letter.csv"))

        def progress(p) -> None:
            store.progress(job_id, JobCounts(rows_total=p.rows_total, delivered=p.delivered, failed=p.failed,
                                             skipped=p.skipped, http_429=p.http_429, limit_rate=p.current_rate))

        summary = asyncio.run(deliver_new_leads(rows, config, functools.partial(lead_identities,
                                                table_type=request.table_type), progress=progress))
    except CsvMergerError as exc:
        store.set_status(job_id, JobStatus.FAILED, error=str(exc).replace(str(job_dir), "<job output>"))
        return
    except Exception as exc:  # unexpected: keep the server up, show the reason on the job
        log.exception("retry %s failed", job_id)
        store.set_status(job_id, JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        return
    store.progress(job_id, JobCounts(rows_total=summary.rows_total, delivered=summary.delivered,
                                     failed=summary.failed, skipped=summary.skipped_already_delivered,
                                     http_429=summary.http_429))
    store.update(job_id, destinations=[d.model_dump() for d in summary.destinations],
                 dead_letter_csv=summary.dead_letter_path)
    store.set_status(job_id, JobStatus.FAILED if summary.failed else JobStatus.COMPLETED,
                     error=f"{summary.failed} rows could not be delivered: see the dead-letter CSV"
                     if summary.failed else None)
