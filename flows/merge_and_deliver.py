"""The main job as a Prefect flow: merge → chunk → deliver (consumers pull the chunks) → summarise.

Python API (embedded: no server needed, Prefect starts an ephemeral API)::

    from flows.merge_and_deliver import merge_and_deliver
    summary = merge_and_deliver(["exports/*.csv"], webhook_url="https://api.clay.com/v3/sources/webhook/…")
    print(summary.delivery.delivered, summary.merged_csv)

Without ``webhook_url`` it only merges. A run that leaves rows in the
dead-letter file ends Failed and raises ``PipelineIncomplete``; a cancelled
run ends Cancelled and raises ``PipelineCancelled``; both carry
``.summary``. Pass ``return_state=True`` to get the Prefect state instead
(``state.result(raise_on_failure=False)`` is the summary or that exception).
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
import uuid
from pathlib import Path

from prefect import flow
from prefect.futures import wait
from prefect.runtime import flow_run
from prefect.states import Cancelled, Failed
from prefect.task_runners import ThreadPoolTaskRunner

from csv_merger.errors import ConfigError, RedisUnavailableError
from csv_merger.safety import check_target
from csv_merger.schema import TableType
from csv_merger.settings import get_settings
from flows.cancellation import local_cancel_requested, watch_cancellation
from flows.fan_out import deliver_fanned_out
from tasks.artifacts import DeliveryProgress, publish_merge_report, publish_summary
from tasks.deliver import ChunkRef, DeliveryConfig, DeliverySummary, check_job_id, default_job_id
from tasks.deliver.job_lock import hold_job
from tasks.deliver.work_queue import ChunkQueue, open_chunk_queue
from tasks.deliver.redis_loss import redis_gone_for_job
from tasks.events import emit_job_finished
from tasks.stages import (chunk, deliver_consumer, delivery_config, merge, on_delivery_loop, plan, queue_chunks,
                          resolve_redis_url)
from tasks.summary import (PipelineCancelled, PipelineIncomplete, PipelineSummary, chunk_counts, chunk_parts,
                           combine_deliveries, concat_csv)


LIVE_PROGRESS = "delivery-progress.json"
"""Written next to merge-report.json about once a second while rows are delivered (``DeliveryProgress``)."""


def _finish(summary: PipelineSummary):
    """Publish the summary artifact and turn the summary into the run's final state."""
    publish_summary(summary)
    if summary.plan is None:  # a dry run finished nothing
        emit_job_finished(summary)
    if summary.state == "Cancelled":
        return Cancelled(message=str(PipelineCancelled(summary)), data=PipelineCancelled(summary))
    if summary.state == "Failed":
        return Failed(message=str(PipelineIncomplete(summary)), data=PipelineIncomplete(summary))
    return summary


def _deliver_in_process(queue: ChunkQueue, refs: list[ChunkRef], config: DeliveryConfig, redis_url: str | None,
                        out_dir: Path, cancel, progress: DeliveryProgress) -> dict[int, DeliverySummary]:
    """Consumer tasks on this flow run's thread pool, ``config.concurrency`` requests in flight in
    total; returns the last summary of every chunk handled."""
    consumers = max(1, min(len(refs), get_settings().chunk_concurrency))
    share = dataclasses.replace(config, concurrency=max(1, math.ceil(config.concurrency / consumers)))
    results: dict[int, DeliverySummary] = {}

    def on_chunk(ref: ChunkRef, summary: DeliverySummary) -> None:
        results[ref.index] = summary

    futures = [deliver_consumer.submit(share, redis_url, f"consumer-{i + 1}", str(out_dir / "dead-letter"), queue=queue,
                                       cancel=cancel, progress=progress.set_chunk, on_chunk=on_chunk)
               for i in range(consumers)]
    wait(futures)
    gone = []
    for future in futures:
        try:
            future.result()
        except RedisUnavailableError as exc:  # every consumer stopped (the first one set cancel): add up the counts
            gone.append(exc)
    if gone:
        raise redis_gone_for_job(gone, list(results.values()), config.job_id)
    return results


def _deliver(refs: list[ChunkRef], config: DeliveryConfig, redis_url, out_dir: Path, run_id, *, rows_total: int,
             fan_out: bool, auth_token_block: str | None) -> tuple[DeliverySummary, list[DeliverySummary]]:
    """Queue the chunks and deliver them (consumer tasks in this run, or fanned out), with the progress
    artifact and cancellation watch; returns the job's summary (with one dead-letter file for the job)
    and each chunk's, in chunk order."""
    settings = get_settings()
    queue = open_chunk_queue(config.job_id, redis_url=redis_url, lease_s=settings.lease_s, ttl_s=settings.chunk_ttl_s)
    queue_chunks(refs, queue)
    progress = DeliveryProgress(config.job_id, rows_total, live_path=out_dir / LIVE_PROGRESS)
    started = time.monotonic()
    finished = cancelled = False
    try:
        with watch_cancellation(run_id) as cancel:
            if fan_out:
                results = deliver_fanned_out(queue, refs, config, redis_url, out_dir, cancel, progress, auth_token_block)
            else:
                results = _deliver_in_process(queue, refs, config, redis_url, out_dir, cancel, progress)
            cancelled = cancel.is_set() or any(p.cancelled for p in results.values())
            finished = True
    finally:  # 100 % only when every row was handled and the run was not cancelled
        progress.finish(complete=finished and not cancelled)
        on_delivery_loop(queue.aclose())
    parts = chunk_parts(refs, results, job_id=config.job_id, limit_key=config.limit_key, cancelled=cancelled)
    dead = concat_csv([p.dead_letter_path for p in parts], out_dir / "dead-letter.csv")
    skipped = concat_csv([p.skipped_path for p in parts if p.skipped_path], out_dir / "skipped.csv")
    shutil.rmtree(out_dir / "dead-letter", ignore_errors=True)
    delivery = combine_deliveries(parts, job_id=config.job_id, limit_key=config.limit_key, rows_total=rows_total,
                                  elapsed_s=round(time.monotonic() - started, 3), dead_letter_path=dead)
    delivery.skipped_path = skipped
    delivery.cancelled = cancelled
    return delivery, parts


@flow(name="merge-and-deliver", task_runner=ThreadPoolTaskRunner(max_workers=get_settings().chunk_concurrency),
      validate_parameters=True)
def merge_and_deliver(files: list[str], webhook_url: str | list[str] | None = None, table_type: TableType = "people",
                      rate_limit: float = 10.0, burst: int = 20, chunk_size: int = 500, payload: str = "flat",
                      mapping: dict[str, str] | None = None, limit_key: str | None = None, job_id: str | None = None,
                      concurrency: int = 8, redis_url: str | None = None, output_dir: str | None = None,
                      allow_private_targets: bool = False, auth_token_block: str | None = None,
                      fan_out: bool = False, dry_run: bool = False, resend: bool = False,
                      suppress_file: str | None = None, force_resend: bool = False) -> PipelineSummary:
    """Merge ``files`` (paths, globs, URLs) into one CSV, then POST every row to ``webhook_url``.

    ``webhook_url``: one URL, or a list of destinations of the same workspace in rollover order
    (when one reaches its lifetime ceiling delivery goes on to the next: tasks.deliver.route).

    Rates in requests/s (``rate_limit``, shared by every run with the same
    ``limit_key``: default the webhook host), ``burst`` in requests,
    ``chunk_size`` in rows, ``concurrency`` requests in flight. ``job_id``
    default: derived from the merged rows, URL, payload and table type, so
    running the same job again resumes it (rows already delivered are
    skipped). ``output_dir`` default: ``<data_dir>/runs/<flow run id>``
    (merged.csv, merge-report.json, delivery-progress.json, dead-letter.csv,
    summary.json).
    Chunks go into a work queue that long-lived delivery consumers pull from
    (``settings.chunk_concurrency`` consumer tasks in this run; with
    ``fan_out``, runs of the ``deliver-consumer`` deployment on the work
    pool, as many as its concurrency limit: needs Redis). ``auth_token_block``: name of a Secret block
    with the webhook token (default: ``CLAY_WEBHOOK_AUTH``). ``dry_run``: merge,
    then check and render every row's body without sending (``summary.plan``).
    Leads the destination already has (sent by earlier jobs) are skipped unless
    ``resend``; rows matching ``suppress_file`` (e-mails, domains) always are.
    ``force_resend``: resume even though Redis lost the job's ledger
    (tasks.deliver.redis_loss). ``redis_url`` default: ``REDIS_URL`` or the
    ``CSV_MERGER_REDIS_BLOCK`` block, resolved inside the run (never pass a URL
    holding a password: Prefect stores parameters in clear).
    """
    settings = get_settings()
    run_id = flow_run.get_id()
    out_dir = Path(output_dir or settings.data_dir / "runs" / (run_id or uuid.uuid4().hex))
    out_dir.mkdir(parents=True, exist_ok=True)
    redis = resolve_redis_url(redis_url)
    urls = [webhook_url] if isinstance(webhook_url, str) else list(webhook_url or [])
    if job_id is not None:
        check_job_id(job_id)
    if urls:  # refuse a bad target or setup before the merge does any work
        for url in urls:
            check_target(url, allow_private_targets)
        if fan_out and not redis:
            raise ConfigError("fan-out needs Redis (REDIS_URL or a RedisDatabase block): workers must share "
                              "one rate limit, one ledger and the chunks")

    merged = str(out_dir / "merged.csv")
    # A delivered file is the webhook's source: values stay exact (no "'" prefix).
    # Merge-only output is for spreadsheets: neutralised against formula injection.
    report = merge(files, merged, table_type, mapping, allow_private_targets,
                   neutralise_formulas=not urls)
    (out_dir / "merge-report.json").write_text(report.to_json(), encoding="utf-8")
    job = job_id or "job-" + default_job_id(merged, urls, payload, table_type)
    publish_merge_report(report, job)
    summary = PipelineSummary(job_id=job, merged_csv=merged, report=report, flow_run_id=run_id)
    if not urls:
        return _finish(summary)
    if local_cancel_requested():  # Ctrl-C while Prefect started or the merge ran: send nothing
        summary = summary.model_copy(update=dict(state="Cancelled"))
        (out_dir / "summary.json").write_text(summary.to_json(), encoding="utf-8")
        return _finish(summary)

    config = delivery_config(urls, job_id=job, table_type=table_type, rate_limit=rate_limit, burst=burst,
                             concurrency=concurrency, redis_url=redis, limit_key=limit_key, payload=payload,
                             auth_token_block=auth_token_block, allow_private_targets=allow_private_targets,
                             resend=resend, suppress_path=suppress_file,
                             force_resend=force_resend)
    if dry_run:
        summary = summary.model_copy(update=dict(plan=plan(merged, config)))
        (out_dir / "summary.json").write_text(summary.to_json(), encoding="utf-8")
        return _finish(summary)
    with hold_job(job, redis_url=redis, data_dir=settings.data_dir):  # one delivery per job (not per consumer)
        refs = chunk(merged, job, chunk_size, redis)
        delivery, delivery_parts = _deliver(refs, config, redis, out_dir, run_id, rows_total=report.rows_out,
                                            fan_out=fan_out, auth_token_block=auth_token_block)
    state = "Cancelled" if delivery.cancelled else "Failed" if delivery.failed else "Completed"
    summary = summary.model_copy(update=dict(delivery=delivery, dead_letter_path=delivery.dead_letter_path,
                                             state=state, chunks=len(refs),
                                             per_chunk=chunk_counts(refs, delivery_parts)))
    (out_dir / "summary.json").write_text(summary.to_json(), encoding="utf-8")
    return _finish(summary)


def summary_of(state) -> PipelineSummary:
    """The ``PipelineSummary`` of a finished run's state (Completed, Failed with
    dead letters, or Cancelled). Re-raises any other failure (bad input...)."""
    result = state.result(raise_on_failure=False)
    if isinstance(result, PipelineSummary):
        return result
    if isinstance(result, (PipelineIncomplete, PipelineCancelled)):
        return result.summary
    raise result if isinstance(result, BaseException) else RuntimeError(f"unexpected flow result {result!r}")

