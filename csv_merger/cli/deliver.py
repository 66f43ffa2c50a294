"""``csv-merger deliver``: POST every row of a merged CSV to a webhook.

Given a dead-letter file (or as ``csv-merger redeliver DEAD-LETTER.csv``) it
sends the failed rows again: the ``_row_number/_status/_reason/_response/
_attempts`` columns are stripped, and each row keeps its original row number,
job id (``--job-id``, or from the file name ``dead-letter-<job>.csv``),
Idempotency-Key and ledger. ``--dry-run`` does everything but the POSTs.

Exit codes: 0 every row delivered; 3 some rows in the dead-letter file;
2 bad arguments / unsafe URL; 4 Redis unavailable; 5 delivery error (also the job
already being delivered by another process, and the early stops: the target refused
the first rows alike, e.g. a wrong token, or was never reached);
130 cancelled by Ctrl-C, 143 by SIGTERM (docker stop, systemd). Every error is one line on stderr.
"""

from __future__ import annotations

import csv
import functools
import inspect
import sys
import threading
from pathlib import Path
from typing import Optional

import typer

from csv_merger.cli.app import (FORCE_RESEND, QUIET, RESEND, SUPPRESS, WEBHOOK_URLS, announce_job, app,
                              check_output_paths, check_suppression_list, option_or_setting, require_redis)
from csv_merger.cli.progress import DeliveryMeter
from csv_merger.cli.stopping import GracefulStop
from csv_merger.errors import ConfigError, DeliveryIncomplete
from csv_merger.wording import plural


def _auth_token(flag: str | None, block: str | None) -> str | None:
    """The token from --auth-token, else a Prefect Secret block, else
    CLAY_WEBHOOK_AUTH. Prefect is imported only for a block."""
    if flag:
        return flag
    if block:
        try:
            from prefect.blocks.system import Secret

            return str(Secret.load(block).get())
        except Exception as exc:  # Prefect raises ValueError, httpx errors, ... for a missing block
            raise ConfigError(f"cannot load Prefect Secret block {block!r}: {type(exc).__name__}") from None
    from csv_merger.settings import get_settings

    secret = get_settings().clay_webhook_auth
    return secret.get_secret_value() if secret else None


def _input_rows(path: Path, job_id: str | None, webhook_url: list[str], payload: str,
                table_type: str) -> tuple[list[tuple[int, dict[str, str]]], str]:
    """(rows, job id) of a merged CSV, or of a dead-letter file for a re-delivery
    (then the original job id is required). Raises InputError / ConfigError."""
    from tasks.deliver import check_job_id, default_job_id, read_merged_csv
    from tasks.deliver.dead_letter import DEAD_LETTER_COLUMNS, read_dead_letter
    from tasks.deliver.merged_csv import refuse_neutralised
    from tasks.merge.sources import check_readable_file

    check_readable_file(path)
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        header = set(next(csv.reader(f), []))
    if not header.issuperset(DEAD_LETTER_COLUMNS):
        rows = list(read_merged_csv(path, table_type))
        refuse_neutralised(path, rows)
        return rows, job_id or default_job_id(path, webhook_url, payload, table_type)
    if job_id is None and path.stem.startswith("dead-letter-"):
        job_id = path.stem.removeprefix("dead-letter-")
        try:
            check_job_id(job_id)
        except ConfigError as exc:  # e.g. a browser's copy "dead-letter-JOB (1).csv": not another job
            raise ConfigError(f"{path}: the file name gives {exc}; give the original job's --job-id") from None
    if not job_id:
        raise ConfigError(f"{path} is a dead-letter file: give the original job's --job-id (printed by the run "
                          "that wrote it), so each row keeps its Idempotency-Key")
    return read_dead_letter(path), job_id


def _refuse_before_start(config, redis_given_as: str) -> None:
    """The refusals opening the delivery would make (numbers, URLs, payload mode or template, the
    suppression list, a Redis that does not answer: ``redis_given_as`` names where its URL came from),
    made before the job id is printed: it is printed only when work will start. Raises ConfigError /
    UnsafeTargetError, InputError (suppression list), RedisUnavailableError."""
    from csv_merger.safety import check_target
    from tasks.deliver.payloads import make_body_builder

    config.validate()
    for url in config.webhook_urls:
        check_target(url, config.allow_private_targets)
    make_body_builder(config.payload, config.table_type, config.job_id)
    check_suppression_list(config.suppress_path)
    require_redis(config.redis_url, redis_given_as)  # last: up to PING_TIMEOUT_S for a Redis that hangs


def _send(rows, config, identities, quiet: bool):
    """Deliver ``rows`` with a progress meter, a Ctrl-C / SIGTERM being a graceful cancel; returns
    (summary, the early stop's TargetRefusedError or None, the GracefulStop for the exit code)."""
    import asyncio
    import logging

    from tasks.deliver import TargetRefusedError
    from tasks.deliver.new_leads import deliver_new_leads

    logging.basicConfig(format="csv-merger: %(levelname)s: %(message)s", level=logging.WARNING, stream=sys.stderr)
    meter = DeliveryMeter(burst=config.burst, configured=config.rate, quiet=quiet)

    def show(p) -> None:
        meter.update(p.delivered + p.failed + p.skipped, p.rows_total, sent=p.delivered + p.failed,
                     delivered=p.delivered, failed=p.failed, http_429=p.http_429, limit=p.current_rate,
                     learned=p.learned_rate, destinations=p.destinations)

    cancel = threading.Event()
    refused = None
    with GracefulStop(cancel.set) as stop:
        try:
            summary = asyncio.run(deliver_new_leads(rows, config, identities, progress=show, cancel=cancel))
        except TargetRefusedError as exc:  # early stop: still write the summary and the counts line
            refused, summary = exc, exc.summary
        finally:
            meter.close()
    return summary, refused, stop


@app.command()
def deliver(
    in_csv: Path = typer.Argument(..., help="Merged CSV (as written by `csv-merger merge`)."),
    webhook_url: list[str] = WEBHOOK_URLS,
    table_type: str = typer.Option("people", "--type", help="people | company (shapes the seed payload)."),
    rate: Optional[float] = typer.Option(None, help="Requests/s for the limit key (default: 10)."),
    burst: Optional[int] = typer.Option(None, help="Burst in requests (default: 20)."),
    concurrency: Optional[int] = typer.Option(None, help="Requests in flight (default: 8)."),
    redis_url: Optional[str] = typer.Option(None, "--redis-url", help="Shared limiter + ledger (default: env REDIS_URL)."),
    limit_key: Optional[str] = typer.Option(None, "--limit-key", help="Rate budget name (default: the URL host)."),
    job_id: Optional[str] = typer.Option(None, "--job-id", help="Ledger key; reuse it to resume (default: a hash of file, URL, payload)."),
    payload: str = typer.Option("flat", "--payload", help="flat | seed | TEMPLATE.j2"),
    auth_token: Optional[str] = typer.Option(None, "--auth-token", help="x-clay-webhook-auth (default: env CLAY_WEBHOOK_AUTH)."),
    auth_token_block: Optional[str] = typer.Option(None, "--auth-token-block", help="Prefect Secret block name."),
    dead_letter: Optional[Path] = typer.Option(None, "--dead-letter", help="CSV for undelivered rows (default: data_dir/dead-letter-JOB.csv)."),
    summary_path: Optional[Path] = typer.Option(None, "--summary", help="Write the summary JSON here."),
    max_attempts: Optional[int] = typer.Option(None, "--max-attempts", help="Attempts per row (default: 6)."),
    allow_private_targets: bool = typer.Option(False, "--allow-private-targets",
                                               help="Allow loopback/private hosts (local sink)."),
    force_resend: bool = FORCE_RESEND,
    quiet: bool = QUIET,
    dry_run: bool = typer.Option(False, "--dry-run", help="Everything but the POSTs: checks, bodies, estimate."),
    resend: bool = RESEND,
    suppress: Optional[Path] = SUPPRESS,
) -> None:
    """POST one JSON body per row at the target's rate; resumable by job id. A dead-letter
    file is re-delivered with its rows' original numbers and Idempotency-Keys."""
    import asyncio

    from csv_merger.settings import get_settings
    import functools

    from tasks.deliver import DeliveryConfig
    from tasks.deliver.job_lock import hold_job
    from tasks.merge.dedupe import lead_identities

    if table_type not in ("people", "company"):
        raise ConfigError(f"--type {table_type!r}: expected 'people' or 'company'")
    check_output_paths(summary=summary_path, dead_letter=dead_letter)
    s = get_settings()
    config = DeliveryConfig(
        webhook_url=webhook_url[0], webhook_urls=webhook_url, table_type=table_type, rate=option_or_setting(rate, s.rate_limit),
        burst=option_or_setting(burst, s.burst),
        concurrency=option_or_setting(concurrency, s.concurrency), redis_url=redis_url or s.redis_url, limit_key=limit_key,
        job_id=job_id, payload=payload, auth_token=_auth_token(auth_token, auth_token_block),
        max_attempts=option_or_setting(max_attempts, s.max_attempts), retry_budget_s=s.retry_budget_s,
        outage_budget_s=s.outage_budget_s, unreachable_stop_s=s.unreachable_stop_s,
        payload_limit_bytes=s.payload_limit_bytes, row_ceiling=s.row_ceiling,
        allow_private_targets=allow_private_targets, resend=resend,
        suppress_path=str(suppress) if suppress else None, force_resend=force_resend,
    )
    # Before the input is read (it may have a million rows), and so before the job id is printed.
    _refuse_before_start(config, "--redis-url" if redis_url else "REDIS_URL")
    rows, config.job_id = _input_rows(in_csv, job_id, webhook_url, payload, table_type)
    config.dead_letter_path = str(dead_letter or Path(s.data_dir) / f"dead-letter-{config.job_id}.csv")
    identities = functools.partial(lead_identities, table_type=table_type)
    if dry_run:
        from csv_merger.cli.plan import print_plan
        from tasks.deliver.plan import plan_delivery

        print_plan(asyncio.run(plan_delivery(rows, config, identities)))
        return
    with hold_job(config.job_id, redis_url=config.redis_url, data_dir=s.data_dir):  # one delivery per job
        announce_job(config.job_id)
        summary, refused, stop = _send(rows, config, identities, quiet)
    if summary_path is not None:
        summary_path.write_text(summary.to_json() + "\n", encoding="utf-8")
    rate_s = summary.delivered / summary.elapsed_s if summary.elapsed_s else 0.0
    print(f"delivered {summary.delivered}/{summary.rows_total} rows, {summary.failed} failed,"
          f" {summary.skipped_already_delivered} skipped (already delivered), {summary.http_429} x 429,"
          f" {plural(summary.attempts, 'request')} in {summary.elapsed_s:.1f} s ({rate_s:.1f} rows/s);"
          f" job {config.job_id}"
          + (" [cancelled]" if summary.cancelled else ""))
    if summary.learned_rate is not None:
        print(f"rate learned for {summary.limit_key}: {summary.learned_rate:g}/s of {config.rate:g}/s configured")
    for use in summary.destinations:
        print(f"destination {use.text()}")
    if summary.skipped_path:
        print(f"skipped {summary.skipped_already_at_destination} already at the destination, "
              f"{summary.skipped_suppressed} suppressed: {summary.skipped_path}")
    if refused is not None:
        raise refused
    if summary.failed:
        raise DeliveryIncomplete(f"{plural(summary.failed, 'row')} not delivered: see {summary.dead_letter_path}")
    if summary.cancelled:
        raise typer.Exit(stop.exit_code)


@functools.wraps(deliver)
def redeliver(**options) -> None:
    """``deliver`` for a dead-letter file only: anything else is refused (exit 2) before a row is sent."""
    from tasks.deliver.dead_letter import DEAD_LETTER_COLUMNS

    path = options["in_csv"]
    if path.is_file():
        with open(path, encoding="utf-8", newline="", errors="replace") as f:
            header = set(next(csv.reader(f), []))
        if not header.issuperset(DEAD_LETTER_COLUMNS):
            raise ConfigError(f"{path} is not a dead-letter file (no {', '.join(DEAD_LETTER_COLUMNS)} columns): "
                              "to send a merged CSV use csv-merger deliver")
    deliver(**options)


def _redeliver_help(parameter):
    """``deliver``'s parameter as redeliver shows it: its input is a dead-letter file, whose name gives the job id."""
    if parameter.name == "in_csv":
        return parameter.replace(default=typer.Argument(
            ..., metavar="DEAD_LETTER_CSV", help="Dead-letter file of an earlier deliver or run (the undelivered rows "
            "with _row_number, _status, _reason, _response, _attempts columns)."))
    if parameter.name == "job_id":
        return parameter.replace(default=typer.Option(
            None, "--job-id", help="The original job's id (default: from the file name dead-letter-JOB.csv; "
            "a run's dead-letter.csv needs it)."))
    return parameter


_signature = inspect.signature(deliver)
redeliver.__signature__ = _signature.replace(parameters=[_redeliver_help(p) for p in _signature.parameters.values()])
app.command("redeliver", help="Send a dead-letter file's rows again, each with its original Idempotency-Key "
                              "(same options as deliver).")(redeliver)
