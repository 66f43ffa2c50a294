"""The ``nightly-inbox`` flow: merge and deliver every CSV dropped into an inbox folder.

Scheduled off-hours (prefect.yaml: cron ``0 2 * * *`` with an explicit
timezone; one run at a time). Each run takes the ``*.csv`` files directly
in the inbox (not in sub-folders) and:

- a file that cannot be read (binary, undecodable, not CSV) moves to
  ``failed/<date>/`` at once, with ``<name>.error.txt`` giving the reason;
  so do the files when none of them has a data row (empty or header only:
  the merge refuses that); one such file among others is merged (a warning);
- the readable files are merged and delivered as ONE ``merge-and-deliver``
  job (a subflow run). Completed: they move to ``processed/<date>/``.
  Some rows dead-lettered: they move to ``failed/<date>/`` with the
  dead-letter CSV beside them (move them back to the inbox to retry: same
  files, same job id, only the undelivered rows are sent again).
- anything else (target or Redis down, cancelled, crashed): the files stay
  in the inbox and the run fails, so the next run retries them; rows
  already delivered are skipped by the job's ledger.

A file therefore moves exactly once, and only after its outcome is known.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from prefect import flow, get_run_logger
from pydantic import BaseModel

from csv_merger.errors import InputError
from csv_merger.settings import get_settings
from flows.merge_and_deliver import merge_and_deliver, summary_of
from tasks.events import emit_inbox_empty
from tasks.merge import no_records_error, open_csv
from tasks.merge.reading import no_rows_reason
from tasks.summary import PipelineSummary


class InboxResult(BaseModel):
    """Where each file of one inbox run went (paths after the move)."""

    processed: list[str] = []
    failed: list[str] = []
    job: PipelineSummary | None = None


def _move(path: Path, folder: Path) -> Path:
    """Move ``path`` into ``folder`` without overwriting an earlier file of the same name."""
    folder.mkdir(parents=True, exist_ok=True)
    target, n = folder / path.name, 1
    while target.exists():
        target, n = folder / f"{path.stem}-{n}{path.suffix}", n + 1
    return Path(shutil.move(str(path), target))


def _fail_unreadable(path: Path, failed_dir: Path, reason: str) -> Path:
    moved = _move(path, failed_dir)
    moved.with_name(moved.name + ".error.txt").write_text(reason + "\n", encoding="utf-8")
    return moved


@flow(name="nightly-inbox")
def nightly_inbox(inbox: str | None = None, webhook_url: str | None = None, table_type: str = "people",
                  rate_limit: float | None = None, burst: int | None = None, chunk_size: int | None = None,
                  redis_url: str | None = None, auth_token_block: str | None = None,
                  allow_private_targets: bool = False) -> InboxResult:
    """Merge and deliver the inbox's new ``*.csv`` files (see module docstring).

    Defaults come from settings: ``inbox`` ← ``CSV_MERGER_INBOX_DIR``,
    ``webhook_url`` ← ``CLAY_WEBHOOK_URL`` (unset: merge only), rates ←
    ``CSV_MERGER_RATE_LIMIT``/``CSV_MERGER_BURST``. Re-raises the job's error
    (files left in the inbox) when the job neither completed nor dead-lettered.
    """
    settings = get_settings()
    log = get_run_logger()
    root = Path(inbox or settings.inbox_dir)
    day = dt.date.today().isoformat()
    processed_dir, failed_dir = root / "processed" / day, root / "failed" / day
    result = InboxResult()
    readable = []
    no_rows = []
    for path in sorted(p for p in root.glob("*.csv") if p.is_file()):
        try:
            no_rows.append(no_rows_reason(open_csv(path)))
            readable.append(path)
        except InputError as exc:
            result.failed.append(str(_fail_unreadable(path, failed_dir, str(exc))))
            log.warning("%s moved to %s: %s", path.name, failed_dir, exc.reason)
    if readable and all(no_rows):  # the merge would refuse them every night: fail them once
        error = no_records_error([(p.name, r) for p, r in zip(readable, no_rows)])
        result.failed += [str(_fail_unreadable(p, failed_dir, str(error))) for p in readable]
        log.warning("%s moved to %s: %s", ", ".join(p.name for p in readable), failed_dir, error.reason)
        readable = []
    if not readable:
        log.info("inbox %s: no new CSV file", root)
        emit_inbox_empty(str(root))
        return result

    state = merge_and_deliver([str(p) for p in readable], webhook_url=webhook_url or settings.webhook_url,
                              table_type=table_type, rate_limit=rate_limit or settings.rate_limit,
                              burst=burst or settings.burst, chunk_size=chunk_size or settings.chunk_size,
                              redis_url=redis_url, auth_token_block=auth_token_block,
                              allow_private_targets=allow_private_targets, return_state=True)
    result.job = summary_of(state)  # raises for anything but Completed / dead-lettered / cancelled
    if result.job.state == "Completed":
        result.processed = [str(_move(p, processed_dir)) for p in readable]
    elif result.job.state == "Failed":
        result.failed += [str(_move(p, failed_dir)) for p in readable]
        shutil.copy(result.job.dead_letter_path, failed_dir / f"dead-letter-{result.job.job_id}.csv")
    else:  # cancelled: leave the files for the next run
        log.warning("job %s cancelled: %d file(s) left in %s", result.job.job_id, len(readable), root)
    log.info("inbox %s: %d processed, %d failed", root, len(result.processed), len(result.failed))
    return result
