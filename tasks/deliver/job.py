"""One delivery job's settings and outcome: ``DeliveryConfig`` in,
``DeliverySummary`` out, ``DeliveryProgress`` snapshots while it runs, and
``default_job_id`` (same input, same target: same job, so a re-run resumes)."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field

from csv_merger.errors import ConfigError, DeliveryError
from csv_merger.schema import TableType
from tasks.deliver.unreachable import UNREACHABLE_STOP_S


MIN_RATE = 0.01
"""Lowest rate accepted, in requests/s (one request per 100 s). Clay grants 10/s; below this a 50,000-row
destination takes 58 days, so a lower rate is a typo or a per-minute/per-hour figure (1e-9/s
is one request per 31 years), never a plan."""


@dataclass
class DeliveryConfig:
    """One delivery job. Rates in requests/s, sizes in bytes, times in s.

    ``job_id`` None: a random id (no resume); callers
    normally pass ``default_job_id(...)``. ``webhook_urls``: every
    destination in rollover order (tasks.deliver.route), empty meaning
    ``[webhook_url]``; ``webhook_url`` is always the first. ``limit_key``
    None: ``default_limit_key(webhook_url)`` (the URL's host: Clay's limit
    is per workspace, so every destination of one workspace shares it).
    ``payload``: "flat", "seed" or a jinja2 template path.
    ``auth_token`` is sent as ``x-clay-webhook-auth`` and kept out of repr.
    """

    webhook_url: str
    webhook_urls: list[str] = field(default_factory=list)
    table_type: TableType = "people"
    rate: float = 10.0
    burst: int = 20
    concurrency: int = 8
    redis_url: str | None = None
    limit_key: str | None = None
    job_id: str | None = None
    payload: str = "flat"
    auth_token: str | None = field(default=None, repr=False)
    max_attempts: int = 6
    retry_budget_s: float = 300.0
    outage_budget_s: float = 600.0
    unreachable_stop_s: float = UNREACHABLE_STOP_S  # the early stop for a target never reached (tasks.deliver.unreachable)
    payload_limit_bytes: int = 100_000
    row_ceiling: int = 50_000
    allow_private_targets: bool = False
    dead_letter_path: str | None = None
    force_resend: bool = False  # resume even though the Redis ledger was lost (tasks.deliver.redis_loss)
    resend: bool = False  # send leads the destination already has (tasks.deliver.new_leads)
    suppress_path: str | None = None  # do-not-contact list: e-mails and domains never sent to

    def __post_init__(self) -> None:
        self.webhook_urls = list(self.webhook_urls) or [self.webhook_url]

    def validate(self) -> None:
        """Raise ConfigError naming the first out-of-range setting."""
        if self.webhook_urls[0] != self.webhook_url:
            raise ConfigError("webhook_urls must start with webhook_url")
        if len({u.strip() for u in self.webhook_urls}) < len(self.webhook_urls):
            raise ConfigError("the same webhook URL is given twice: each destination once")
        if self.job_id is not None:
            check_job_id(self.job_id)
        problem = rate_problem(self.rate)
        checks = ((problem is None, problem),
                  (self.burst >= 1, "burst must be >= 1"),
                  (self.concurrency >= 1, "concurrency must be >= 1"),
                  (self.max_attempts >= 1, "max attempts must be >= 1"),
                  (self.retry_budget_s > 0, "retry budget must be > 0 s"),
                  (self.outage_budget_s > 0, "outage budget must be > 0 s"),
                  (self.unreachable_stop_s > 0, "unreachable stop must be > 0 s"),
                  (self.payload_limit_bytes > 0, "payload limit must be > 0 bytes"))
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""A job id names the job's ledger, queue and files (``dead-letter-<job id>.csv``): no path separators,
no spaces, short enough for any file system."""


def check_job_id(job_id: str) -> None:
    """Raise ConfigError unless ``job_id`` matches ``JOB_ID`` (1-128 letters, digits, '.', '_', '-',
    starting with a letter or digit): ``../x`` or ``a/b`` would write outside the data folder, 250
    characters would fail mid-run on the file name."""
    if not JOB_ID.fullmatch(job_id):
        raise ConfigError(f"job id {job_id!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a "
                          "letter or digit (it names the job's ledger and files)")


def rate_problem(rate: float) -> str | None:
    """Why ``rate`` (requests/s) cannot be used, in the words every entry point shows (CLI and web API),
    or None: not a finite number, or below ``MIN_RATE``."""
    if not math.isfinite(rate):
        return f"rate {rate:g} is not a number of requests/s"
    if rate < MIN_RATE:
        return (f"rate {rate:g} requests/s is below the floor of {MIN_RATE:g} requests/s "
                f"(one request every {1 / MIN_RATE:g} s)")
    return None


class DestinationUse(BaseModel):
    """One destination's lifetime count: ``label`` (``host #hash``, never the URL), ``used``
    submissions (every job counted) of ``ceiling`` (0: unlimited)."""

    label: str
    used: int
    ceiling: int = 0

    def text(self) -> str:
        """``"host #hash: 1,234 of 50,000 used"`` (``"..., no ceiling"`` when unlimited)."""
        return f"{self.label}: {self.used:,}" + (f" of {self.ceiling:,} used" if self.ceiling else " used, no ceiling")


class DeliverySummary(BaseModel):
    """What happened. ``delivered`` counts rows the target acknowledged with
    2xx (never attempts); ``failed`` rows are in the dead-letter file;
    ``http_429`` counts 429 answers; ``attempts`` counts requests sent;
    ``outage_pauses`` counts failures during a target outage (not spent from any row's attempts)."""

    job_id: str
    limit_key: str
    rows_total: int
    delivered: int = 0
    failed: int = 0
    skipped_already_delivered: int = 0
    http_429: int = 0
    attempts: int = 0
    outage_pauses: int = 0  # target-wide failures answered by pausing every worker (tasks.deliver.outage)
    learned_rate: float | None = None  # requests/s the limit key was learned to grant (None: nothing learned)
    elapsed_s: float = 0.0
    cancelled: bool = False
    dead_letter_path: str | None = None
    stopped_reason: str | None = None  # set when an early stop (every row refused, target never reached) ended the run
    destinations: list[DestinationUse] = []  # each webhook of the job, in rollover order, as of the end
    placed: dict[int, str] = Field(default_factory=dict, exclude=True)  # row number -> destination id it went to
    skipped_already_at_destination: int = 0  # leads an earlier job sent there (not sent again)
    skipped_suppressed: int = 0  # rows on the suppression list
    skipped_path: str | None = None  # CSV listing the skipped rows, beside the dead-letter file
    warnings: list[str] = []

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def destination_text(self) -> str:
        """``"host #hash: 1,234 of 50,000 used"`` per destination, joined by "; "; "" when unknown."""
        return "; ".join(d.text() for d in self.destinations)


@dataclass
class DeliveryProgress:
    """A progress snapshot; ``current_rate``: requests/s the limiter allows now, ``learned_rate``:
    requests/s it learned the target grants (None: nothing learned: 429s teach it); ``destinations``:
    each destination's count as last seen by this job."""

    delivered: int
    failed: int
    skipped: int
    http_429: int
    attempts: int
    rows_total: int
    elapsed_s: float
    current_rate: float
    learned_rate: float | None = None
    destinations: list[DestinationUse] = field(default_factory=list)


def default_job_id(path: str | Path, webhook_url: str | list[str], payload: str, table_type: str = "people") -> str:
    """A job id from the input's bytes, the URL(s) and the payload mode (and the
    template's bytes): re-running the same command resumes instead of
    sending twice. 16 hex chars of SHA-256. One URL in a list gives the
    id that URL alone gives."""
    if not isinstance(webhook_url, str):
        webhook_url = " ".join(webhook_url)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    h.update(b"\0" + webhook_url.encode() + b"\0" + payload.encode() + b"\0" + table_type.encode())
    if payload not in ("flat", "seed") and Path(payload).is_file():
        h.update(Path(payload).read_bytes())
    return h.hexdigest()[:16]


class TargetRefusedError(DeliveryError):
    """An early stop: the target refused the first ``refusal.REFUSED_STOP_AFTER`` rows with the
    same 401/403/404/410 and nothing was delivered, or no connection to it ever succeeded
    (tasks.deliver.unreachable). ``summary`` holds the exact counts (``stopped_reason`` set)."""

    def __init__(self, message: str, summary: DeliverySummary):
        self.summary = summary
        super().__init__(message)
