"""``csv-merger deliver``: POST every row of a merged CSV to a webhook.

Exit codes: 0 every row delivered; 3 some rows in the dead-letter file;
2 bad arguments / unsafe URL; 4 Redis unavailable; 5 delivery error (also the
early stop: the target refused the first rows alike, e.g. a wrong token);
130 cancelled (Ctrl-C / SIGTERM). Every error is one line on stderr.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import typer

from csv_merger.cli.app import app, check_output_paths
from csv_merger.errors import ConfigError, DeliveryIncomplete

PROGRESS_LINE_EVERY_S = 5.0
CANCELLED_EXIT = 130


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


def _or(value, default):
    """The option's value when given (even 0, which validation refuses), else the setting."""
    return default if value is None else value


class _ProgressLine:
    """A stderr line every few seconds: delivered/failed, rate, ETA."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def __call__(self, p) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_LINE_EVERY_S:
            return
        self.last = now
        done = p.delivered + p.failed + p.skipped
        speed = (p.delivered + p.failed) / p.elapsed_s if p.elapsed_s else 0.0
        eta = f"{(p.rows_total - done) / speed:.0f} s" if speed else "?"
        print(f"csv-merger: {done}/{p.rows_total} rows ({p.delivered} delivered, {p.failed} failed,"
              f" {p.http_429} x 429), {speed:.1f} rows/s, limit {p.current_rate:.1f}/s, ETA {eta}",
              file=sys.stderr, flush=True)


@app.command()
def deliver(
    in_csv: Path = typer.Argument(..., help="Merged CSV (as written by `csv-merger merge`)."),
    webhook_url: str = typer.Option(..., "--webhook-url", help="Target URL (e.g. a Clay webhook source)."),
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
    force_resend: bool = typer.Option(False, "--force-resend",
                                      help="Resume even though Redis lost the job's ledger (every row is sent again)."),
) -> None:
    """POST one JSON body per row at the target's rate; resumable by job id."""
    from csv_merger.settings import get_settings
    from tasks.deliver import DeliveryConfig, TargetRefusedError, default_job_id, deliver_csv

    if table_type not in ("people", "company"):
        raise ConfigError(f"--type {table_type!r}: expected 'people' or 'company'")
    check_output_paths(summary=summary_path, dead_letter=dead_letter)
    s = get_settings()
    if not in_csv.is_file():
        from csv_merger.errors import InputError

        raise InputError(str(in_csv), "no such file")
    job_id = job_id or default_job_id(in_csv, webhook_url, payload, table_type)
    dead_path = dead_letter or Path(s.data_dir) / f"dead-letter-{job_id}.csv"
    config = DeliveryConfig(
        webhook_url=webhook_url, table_type=table_type, rate=_or(rate, s.rate_limit), burst=_or(burst, s.burst),
        concurrency=_or(concurrency, s.concurrency), redis_url=redis_url or s.redis_url, limit_key=limit_key,
        job_id=job_id, payload=payload, auth_token=_auth_token(auth_token, auth_token_block),
        max_attempts=_or(max_attempts, s.max_attempts), retry_budget_s=s.retry_budget_s,
        outage_budget_s=s.outage_budget_s,
        payload_limit_bytes=s.payload_limit_bytes, row_ceiling=s.row_ceiling,
        allow_private_targets=allow_private_targets, dead_letter_path=str(dead_path), force_resend=force_resend,
    )
    print(f"csv-merger: job id {job_id} (run again with --job-id {job_id} to resume)", file=sys.stderr, flush=True)

    cancel = threading.Event()

    def on_signal(signum, _frame) -> None:
        if cancel.is_set():  # asked twice: stop now (the ledger keeps what was recorded)
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        cancel.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    import logging

    logging.basicConfig(format="csv-merger: %(levelname)s: %(message)s", level=logging.WARNING, stream=sys.stderr)
    refused = None
    try:
        summary = deliver_csv(in_csv, config, progress=_ProgressLine(), cancel=cancel)
    except TargetRefusedError as exc:  # early stop: still write the summary and the counts line
        refused, summary = exc, exc.summary
    if summary_path is not None:
        summary_path.write_text(summary.to_json() + "\n", encoding="utf-8")
    rate_s = summary.delivered / summary.elapsed_s if summary.elapsed_s else 0.0
    print(f"delivered {summary.delivered}/{summary.rows_total} rows, {summary.failed} failed,"
          f" {summary.skipped_already_delivered} skipped (already delivered), {summary.http_429} x 429,"
          f" {summary.attempts} requests in {summary.elapsed_s:.1f} s ({rate_s:.1f} rows/s); job {job_id}"
          + (" [cancelled]" if summary.cancelled else ""))
    if refused is not None:
        raise refused
    if summary.failed:
        raise DeliveryIncomplete(f"{summary.failed} rows not delivered: see {summary.dead_letter_path}")
    if summary.cancelled:
        raise typer.Exit(CANCELLED_EXIT)
