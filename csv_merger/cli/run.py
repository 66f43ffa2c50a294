"""``csv-merger run``: the whole job (merge → chunk → deliver) as a Prefect flow run.

With no ``PREFECT_API_URL`` Prefect starts an ephemeral API for the run
(no server to install); without Redis the limiter and ledger are
in-process/local. Exit codes as ``deliver``: 0 every row delivered (or
merge only), 3 some rows dead-lettered, 130 cancelled (Ctrl-C, or Cancel in
the Prefect UI), 143 cancelled by SIGTERM (docker stop, systemd), 1/2/4/5
for input, configuration, Redis and delivery errors, each one line on stderr.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Optional

import typer

from csv_merger.cli.app import (FORCE_RESEND, QUIET, RESEND, SUPPRESS, WEBHOOK_URLS_HELP, announce_job, app,
                                check_output_dir, check_output_paths, check_suppression_list, option_or_setting,
                                require_redis, resume_command)
from csv_merger.cli.progress import DeliveryMeter
from csv_merger.cli.stopping import GracefulStop
from csv_merger.errors import ConfigError

PROGRESS_EVERY_S = 2.0  # plain progress lines (no terminal) of a run
STOPPING = "csv-merger: stopping: no new requests; those in flight finish (stop again to abort)"

# Quiet console defaults for a command-line run (the user's environment wins).
_QUIET_PREFECT = {
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",  # run logs still reach the API / UI
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
}


def quiet_prefect() -> None:
    """Set quiet console defaults, then import Prefect and hide error records of flow/task runs
    from the console: the CLI reports the error itself, in one line (the API still gets them)."""
    for key, value in _QUIET_PREFECT.items():
        os.environ.setdefault(key, value)
    import logging

    from prefect.logging.configuration import ensure_logging_setup

    ensure_logging_setup()  # Prefect configures logging lazily: attach the filter to its real handlers

    class _NoRunErrors(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not (record.name.startswith(("prefect.flow_runs", "prefect.task_runs"))
                        and record.levelno >= logging.ERROR)

    for handler in logging.getLogger().handlers:
        handler.addFilter(_NoRunErrors())
    for service in ("EventsWorker", "APILogWorker"):  # "still processing items" while draining at exit
        logging.getLogger(service).setLevel(logging.ERROR)


def _in_thread(fn):
    """``fn()`` in a worker thread, its result or exception in this one. The flow runs off the main
    thread so that signals stay ours: Prefect's engine replaces the main thread's SIGTERM handler with
    one that aborts the flow body (its chunk threads would go on sending)."""
    import contextvars
    import threading

    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=contextvars.copy_context().run, args=(target,), name="flow-run")
    thread.start()
    while thread.is_alive():
        thread.join(timeout=0.2)  # short waits: signal handlers run between them
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def run_pipeline(files: list[str], *, webhook_url: str | list[str] | None, output: Path | None, stop: GracefulStop,
                 quiet: bool = False, resumable: bool = True, **params):
    """Run ``merge_and_deliver`` in this process, ``stop`` (entered by the caller, as early as it can)
    mapping Ctrl-C and SIGTERM to a graceful cancel, and a second one to killing the ephemeral API first.

    Returns ``(PipelineSummary, signum)``, ``signum`` the signal that cancelled
    the run (else None); copies the merged CSV to ``output`` when given. The job id
    is announced as delivery starts, with how to resume, unless not ``resumable``
    (the demo's: its sink lives for one run). A signal
    before the flow starts: the process ends at once when ``stop.interrupt``
    (``stopping.end_early``), else the flow is not started and the summary is
    ``not_started()``. Raises the
    ``CsvMergerError`` a failed run ended with.
    """
    quiet_prefect()
    from csv_merger.prefect_api import kill_tied_children, tie_ephemeral_api

    tie_ephemeral_api()  # not hit by a terminal's Ctrl-C, never outlives this process
    from flows.cancellation import request_local_cancel, reset_local_cancel
    from flows.merge_and_deliver import merge_and_deliver, summary_of
    from tasks.artifacts import DeliveryProgress

    reset_local_cancel()
    stop.on_stop, stop.on_abort = request_local_cancel, kill_tied_children
    if stop.signum is not None:  # a signal came before on_stop was set and did not interrupt (interrupt=False)
        return not_started(), stop.signum
    meter = DeliveryMeter(burst=params.get("burst") or 0, quiet=quiet, every_s=PROGRESS_EVERY_S)
    if resumable:
        DeliveryProgress.on_start.append(announce_job)  # the job id first: progress lines follow
    DeliveryProgress.listeners.append(meter.update)
    try:
        state = _in_thread(lambda: merge_and_deliver(files, webhook_url=webhook_url, return_state=True, **params))
    finally:
        DeliveryProgress.listeners.remove(meter.update)
        if resumable:
            DeliveryProgress.on_start.remove(announce_job)
        meter.close()
    summary = summary_of(state)
    if output is not None:
        shutil.copyfile(summary.merged_csv, output)
        summary.merged_csv = str(output)
    return summary, stop.signum


def not_started():
    """The summary of a run stopped before its flow started: Cancelled, nothing merged, nothing sent."""
    from tasks.summary import PipelineSummary

    return PipelineSummary(job_id=None, merged_csv=None, report=None, state="Cancelled")


def _early_summary(path: Path | None):
    """What writes the summary of a run a Ctrl-C stops before its flow starts (``not_started()``) to
    ``path``; None without one. Made now: it runs in the signal handler, which must not import."""
    if path is None:
        return None
    text = not_started().to_json() + "\n"
    return lambda: path.write_text(text, encoding="utf-8")


def print_summary(summary, resumable: bool = True) -> None:
    """The closing lines: the merge's file warnings on stderr (as ``csv-merger merge`` prints
    them), then counts, where the merged CSV, report and dead letters are, and the job id
    (with how to resume it when ``resumable``)."""
    from csv_merger.cli.merge import warning_lines

    if summary.report is None:  # stopped before the flow started: exit_for says so
        return
    for line in warning_lines(summary.report):
        print(f"csv-merger: warning: {line}", file=sys.stderr)
    out_dir = Path(summary.report.output_path).parent
    print(summary.one_line())
    if summary.plan is not None:
        from csv_merger.cli.plan import print_plan

        print_plan(summary.plan)
    print(f"  merged CSV:   {summary.merged_csv}")
    print(f"  merge report: {out_dir / 'merge-report.json'}")
    if summary.dead_letter_path:
        print(f"  dead letters: {summary.dead_letter_path}")
    for use in summary.delivery.destinations if summary.delivery is not None else []:
        print(f"  destination:  {use.text()}")
    if summary.delivery is not None and summary.delivery.learned_rate is not None:
        print(f"  rate learned: {summary.delivery.learned_rate:g}/s for {summary.delivery.limit_key}")
    if summary.delivery is not None and summary.delivery.skipped_path:
        d = summary.delivery
        print(f"  skipped:      {d.skipped_already_at_destination} already at the destination, "
              f"{d.skipped_suppressed} suppressed: {d.skipped_path}")
    if summary.delivery is not None:
        hint = f" (run again with --job-id {summary.job_id} to resume)" if resumable else ""
        print(f"  job id:       {summary.job_id}{hint}")


def exit_for(summary, signum: int | None = None) -> None:
    """Exit 3 when rows were dead-lettered; when cancelled 128 + the signal that did it
    (130 Ctrl-C, 143 SIGTERM; 130 for Cancel in the Prefect UI); else return (exit 0)."""
    from tasks.summary import PipelineCancelled, PipelineIncomplete

    if summary.state == "Failed":
        raise PipelineIncomplete(summary)
    if summary.state == "Cancelled":
        cancelled = PipelineCancelled(summary)
        if signum is not None:
            cancelled.exit_code = 128 + signum
        raise cancelled


def _check_options(webhook_urls: list[str] | None, rate: float, burst: int, chunk_size: int, concurrency: int,
                   allow_private_targets: bool, job_id: str | None) -> None:
    """Refuse bad numbers and targets before Prefect starts (ConfigError / UnsafeTargetError: exit 2)."""
    from csv_merger.safety import check_target
    from tasks.deliver import DeliveryConfig, check_job_id

    if job_id is not None:
        check_job_id(job_id)
    if chunk_size < 1:
        raise ConfigError(f"--chunk-size must be at least 1 row, got {chunk_size}")
    if webhook_urls:
        DeliveryConfig(webhook_url=webhook_urls[0], webhook_urls=list(webhook_urls), rate=rate, burst=burst,
                       concurrency=concurrency).validate()
        for url in webhook_urls:
            check_target(url, allow_private_targets)


@app.command()
def run(
    files: list[str] = typer.Argument(..., help="CSV files: paths, globs, or URLs (http(s)://, file://, s3://)."),
    webhook_url: Optional[list[str]] = typer.Option(None, "--webhook-url", help=WEBHOOK_URLS_HELP + " Omit: merge only."),
    table_type: str = typer.Option("people", "--type", help="people | company"),
    rate: Optional[float] = typer.Option(None, help="Requests/s for the limit key (default: CSV_MERGER_RATE_LIMIT, 10)."),
    burst: Optional[int] = typer.Option(None, help="Burst in requests (default: CSV_MERGER_BURST, 20)."),
    chunk_size: Optional[int] = typer.Option(None, "--chunk-size", help="Rows per delivery chunk (default: 500)."),
    concurrency: Optional[int] = typer.Option(None, help="Requests in flight (default: 8)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Also copy the merged CSV here."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", help="Folder for merged.csv, reports, dead letters."),
    mapping: Optional[Path] = typer.Option(None, "--mapping", help="YAML/JSON header overrides {header: field|ignore}."),
    payload: str = typer.Option("flat", "--payload", help="flat | seed | TEMPLATE.j2"),
    job_id: Optional[str] = typer.Option(None, "--job-id", help="Ledger key; reuse to resume (default: from the merged rows + URL)."),
    limit_key: Optional[str] = typer.Option(None, "--limit-key", help="Rate budget name (default: the webhook host)."),
    redis_url: Optional[str] = typer.Option(None, "--redis-url", help="Shared limiter, ledger, chunks (default: env REDIS_URL)."),
    auth_token_block: Optional[str] = typer.Option(None, "--auth-token-block", help="Prefect Secret block with the webhook token."),
    fan_out: bool = typer.Option(False, "--fan-out", help="Deliver through deliver-consumer runs on the work pool (needs a server and Redis)."),
    allow_private_targets: bool = typer.Option(False, "--allow-private-targets", help="Allow loopback/private hosts (local sink)."),
    summary_path: Optional[Path] = typer.Option(None, "--summary", help="Write the summary JSON here."),
    force_resend: bool = FORCE_RESEND,
    quiet: bool = QUIET,
    dry_run: bool = typer.Option(False, "--dry-run", help="Merge, then check every row's body; send nothing."),
    resend: bool = RESEND,
    suppress: Optional[Path] = SUPPRESS,
) -> None:
    """Merge FILES and deliver every row to the webhook, as a Prefect flow run (merge only without --webhook-url)."""
    # First: a Ctrl-C while Prefect loads and starts stops at once (stopping.end_early), with a summary.
    with GracefulStop(message=STOPPING, interrupt=True, on_early=_early_summary(summary_path)) as stop:
        from csv_merger.settings import get_settings
        from tasks.merge.sources import check_local_inputs

        if table_type not in ("people", "company"):
            raise ConfigError(f"--type {table_type!r}: expected 'people' or 'company'")
        check_local_inputs(files)  # the merge's own checks, now: Prefect takes many seconds to start
        check_output_paths(summary=summary_path, output=output)
        check_output_dir("output_dir", output_dir)
        check_suppression_list(suppress)
        if redis_url:  # resolved inside the run: a password never goes into the flow-run parameters
            os.environ["REDIS_URL"] = redis_url
            get_settings.cache_clear()
        s = get_settings()
        rate, burst = option_or_setting(rate, s.rate_limit), option_or_setting(burst, s.burst)
        chunk_size = option_or_setting(chunk_size, s.chunk_size)
        concurrency = option_or_setting(concurrency, s.concurrency)
        _check_options(webhook_url, rate, burst, chunk_size, concurrency, allow_private_targets, job_id)
        if webhook_url:  # a merge alone needs no Redis (one from CSV_MERGER_REDIS_BLOCK is checked in the run)
            require_redis(s.redis_url, "--redis-url" if redis_url else "REDIS_URL")
        overrides = None
        if mapping is not None:
            from tasks.merge import load_mapping_file

            overrides = load_mapping_file(mapping)
        from tasks.deliver.redis_loss import RedisGone
        from csv_merger.safety import shareable_redis_url

        try:
            summary, signum = run_pipeline(
                files, webhook_url=webhook_url or None, output=output, table_type=table_type, rate_limit=rate,
                burst=burst, chunk_size=chunk_size, concurrency=concurrency,
                mapping=overrides, payload=payload, job_id=job_id, limit_key=limit_key,
                redis_url=shareable_redis_url(redis_url), output_dir=str(output_dir) if output_dir else None,
                auth_token_block=auth_token_block, fan_out=fan_out, allow_private_targets=allow_private_targets,
                stop=stop, quiet=quiet, dry_run=dry_run, resend=resend,
                suppress_file=str(suppress.resolve()) if suppress else None, force_resend=force_resend)
        except RedisGone as exc:  # one line: the counts and the exact command that resumes
            raise exc.with_hint(f"once Redis is back, resume with: {resume_command(exc.job_id)}") from None
        if summary_path is not None:
            summary_path.write_text(summary.to_json() + "\n", encoding="utf-8")
        print_summary(summary)
        exit_for(summary, signum)
