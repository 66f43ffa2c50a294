"""Prefect events a finished job emits, for automations (deployments/alerts.py)
and for users' own: ``csv-merger.job.finished`` always, with every count in
the payload; ``csv-merger.job.dead-lettered`` also, when rows were
dead-lettered; ``csv-merger.inbox.empty`` when a nightly inbox run finds no
file. The resource is the job (``csv-merger.job.<job id>``); the flow run
that emitted it is related automatically by Prefect."""

from __future__ import annotations

from prefect.events import emit_event

from tasks.summary import PipelineSummary

_DELIVERY_COUNTS = ("rows_total", "delivered", "failed", "skipped_already_delivered", "http_429", "elapsed_s")


def emit_job_finished(summary: PipelineSummary) -> None:
    """Emit the job's events (see module docstring). Payload: job_id, state,
    rows_in, rows_out, duplicates_merged, rows_total, delivered, failed,
    skipped_already_delivered, http_429, elapsed_s, dead_letter_path."""
    counts = dict.fromkeys(_DELIVERY_COUNTS, 0)
    if summary.delivery is not None:
        counts = summary.delivery.model_dump(include=set(_DELIVERY_COUNTS))
    payload = {"job_id": summary.job_id, "state": summary.state, "rows_in": summary.report.rows_in,
               "rows_out": summary.report.rows_out, "duplicates_merged": summary.report.duplicates_merged,
               **counts, "dead_letter_path": summary.dead_letter_path}
    resource = {"prefect.resource.id": f"csv-merger.job.{summary.job_id}", "prefect.resource.name": summary.job_id}
    emit_event("csv-merger.job.finished", resource=resource, payload=payload)
    if payload["failed"]:
        emit_event("csv-merger.job.dead-lettered", resource=resource, payload=payload)


def emit_inbox_empty(inbox: str) -> None:
    """Emit ``csv-merger.inbox.empty`` for the inbox folder ``inbox``."""
    emit_event("csv-merger.inbox.empty", resource={"prefect.resource.id": "csv-merger.inbox"},
               payload={"inbox": inbox})
