"""The main job as a Prefect flow: merge → chunk → deliver each chunk → summarise.

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

import math
import shutil
import time
import uuid
from pathlib import Path

from prefect import flow, unmapped
from prefect.runtime import flow_run
from prefect.states import Cancelled, Failed
from prefect.task_runners import ThreadPoolTaskRunner

from csv_merger.errors import ConfigError, RedisUnavailableError
from csv_merger.safety import check_target
from csv_merger.schema import TableType
from csv_merger.settings import get_settings
from flows.cancellation import watch_cancellation
from flows.fan_out import deliver_fanned_out
from tasks.artifacts import DeliveryProgress, publish_merge_report, publish_summary
from tasks.deliver import DeliveryConfig, DeliverySummary, default_job_id
from tasks.deliver.redis_loss import redis_gone_for_job
from tasks.events import emit_job_finished
from tasks.stages import chunk, chunk_config, deliver_chunk, delivery_config, merge, plan, resolve_redis_url
from tasks.summary import PipelineCancelled, PipelineIncomplete, PipelineSummary, combine_deliveries, concat_csv


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


def _deliver_in_process(refs, config: DeliveryConfig, redis_url, out_dir: Path, cancel, progress) -> list[DeliverySummary]:
    """Chunk tasks on this flow run's thread pool; ``config.concurrency`` requests in flight in total."""
    parallel = max(1, min(len(refs), get_settings().chunk_concurrency))
    per_chunk = max(1, math.ceil(config.concurrency / parallel))
    configs = [chunk_config(config, ref, out_dir / "dead-letter", per_chunk) for ref in refs]
    futures = deliver_chunk.map(refs, configs, unmapped(redis_url), cancel=unmapped(cancel),
                                progress=unmapped(progress.set_chunk))
    futures.wait()
    parts, gone = [], []
    for future in futures:
        try:
            parts.append(future.result())
        except RedisUnavailableError as exc:  # every chunk stopped (deliver_chunk set cancel): add up their counts
            gone.append(exc)
    if gone:
        raise redis_gone_for_job(gone, parts, config.job_id)
    return parts


def _deliver(refs, config: DeliveryConfig, redis_url, out_dir: Path, run_id, *, rows_total: int, fan_out: bool,
             auth_token_block: str | None) -> DeliverySummary:
    """Deliver every chunk (in this run's task threads, or fanned out), with the progress artifact and
    cancellation watch; returns the job's summary with one dead-letter file for the job."""
    progress = DeliveryProgress(config.job_id, rows_total, live_path=out_dir / LIVE_PROGRESS)
    started = time.monotonic()
    finished = cancelled = False
    try:
        with watch_cancellation(run_id) as cancel:
            if fan_out:
                parts = deliver_fanned_out(refs, config, redis_url, out_dir, cancel, progress, auth_token_block)
            else:
                parts = _deliver_in_process(refs, config, redis_url, out_dir, cancel, progress)
            cancelled = cancel.is_set() or any(p.cancelled for p in parts)
            finished = True
    finally:  # 100 % only when every row was handled and the run was not cancelled
        progress.finish(complete=finished and not cancelled)
    dead = concat_csv([p.dead_letter_path for p in parts], out_dir / "dead-letter.csv")
    skipped = concat_csv([p.skipped_path for p in parts if p.skipped_path], out_dir / "skipped.csv")
    shutil.rmtree(out_dir / "dead-letter", ignore_errors=True)
    delivery = combine_deliveries(parts, job_id=config.job_id, limit_key=config.limit_key, rows_total=rows_total,
                                  elapsed_s=round(time.monotonic() - started, 3), dead_letter_path=dead)
    delivery.skipped_path = skipped
    delivery.cancelled = cancelled
    return delivery


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
    ``fan_out``: hand chunks to runs of the ``deliver-chunk`` deployment on
    the work pool (needs Redis). ``auth_token_block``: name of a Secret block
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

    config = delivery_config(urls, job_id=job, table_type=table_type, rate_limit=rate_limit, burst=burst,
                             concurrency=concurrency, redis_url=redis, limit_key=limit_key, payload=payload,
                             auth_token_block=auth_token_block, allow_private_targets=allow_private_targets,
                             resend=resend, suppress_path=suppress_file,
                             force_resend=force_resend)
    if dry_run:
        summary = summary.model_copy(update=dict(plan=plan(merged, config)))
        (out_dir / "summary.json").write_text(summary.to_json(), encoding="utf-8")
        return _finish(summary)
    refs = chunk(merged, job, chunk_size, redis)
    delivery = _deliver(refs, config, redis, out_dir, run_id, rows_total=report.rows_out, fan_out=fan_out,
                        auth_token_block=auth_token_block)
    state = "Cancelled" if delivery.cancelled else "Failed" if delivery.failed else "Completed"
    summary = summary.model_copy(update=dict(delivery=delivery, dead_letter_path=delivery.dead_letter_path,
                                             state=state, chunks=len(refs)))
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

