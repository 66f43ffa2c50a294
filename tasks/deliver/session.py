"""A delivery session: what one delivery consumer keeps for its whole life.

Opening a session checks the target URLs and opens the ``httpx.AsyncClient``
(per-worker connection pools pinned to the checked addresses), the rate
limiter (shared through Redis when configured), the job's ledger, the
destination route (tasks.deliver.route: the destinations in rollover order,
each under its lifetime ceiling) and the payload builder. ``session.deliver(rows)`` then
sends one batch of rows (a chunk) through them with an ``Engine`` and returns
that batch's ``DeliverySummary``; a consumer calls it chunk after chunk, so
none of that start-up cost is paid per chunk.

``deliver_rows`` (one batch, one session) is the one-shot form for Python callers.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable

import httpx

from csv_merger.errors import DeliveryError, RedisUnavailableError
from csv_merger.safety import check_target
from csv_merger.settings import get_settings
from tasks.deliver.engine import Engine
from tasks.deliver.job import DeliveryConfig, DeliveryProgress, DeliverySummary, TargetRefusedError
from tasks.deliver.ledger import open_ledger
from tasks.deliver.payloads import check_template, make_body_builder
from tasks.deliver.ratelimit import default_limit_key, make_limiter
from tasks.deliver.redis_loss import RedisGone
from tasks.deliver.route import open_route
from tasks.deliver.transport import WorkerPools
from tasks.deliver.unreachable import UnreachableWatch

log = logging.getLogger("csv_merger.delivery")

Row = tuple[int, dict[str, str]]


class DeliverySession:
    """The client, limiter, ledger and destination route of one job's delivery, opened once.

    Use as ``async with DeliverySession(config) as session: await session.deliver(rows)``.
    Opening raises UnsafeTargetError (URL refused), ConfigError (bad setting or
    Redis URL), RedisUnavailableError (Redis asked for and not answering).
    ``config.job_id`` None: a random id (no resume).
    """

    def __init__(self, config: DeliveryConfig):
        config.validate()
        targets = [check_target(url, config.allow_private_targets) for url in config.webhook_urls]
        settings = get_settings()
        self.config = config
        self.job_id = config.job_id or uuid.uuid4().hex[:16]
        self.limit_key = config.limit_key or default_limit_key(config.webhook_url)
        self.build = make_body_builder(config.payload, config.table_type, self.job_id)
        self.limiter = make_limiter(self.limit_key, config.rate, config.burst, config.redis_url)
        self.ledger = open_ledger(self.job_id, redis_url=config.redis_url, data_dir=settings.data_dir,
                                  ttl_s=settings.chunk_ttl_s)
        self.gate = open_route(config.webhook_urls, config.row_ceiling, redis_url=config.redis_url,
                               data_dir=settings.data_dir)
        headers = {"Content-Type": "application/json"}
        if config.auth_token:
            headers["x-clay-webhook-auth"] = config.auth_token
        self.client = httpx.AsyncClient(
            headers=headers, follow_redirects=False, transport=WorkerPools(config.concurrency, targets),
            timeout=httpx.Timeout(connect=settings.connect_timeout_s, read=settings.read_timeout_s,
                                  write=settings.read_timeout_s, pool=settings.read_timeout_s),
        )
        self._template_checked = False
        self._shortfall_told = False
        # the session's, not a batch's: a consumer that reached the target in one chunk is past this rule
        self.unreachable = UnreachableWatch(config.unreachable_stop_s)

    async def __aenter__(self) -> DeliverySession:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client and the stores (each close is tried, a dead Redis included)."""
        await self.client.aclose()
        await self.limiter.aclose()
        await self.ledger.aclose()
        await self.gate.aclose()

    def _check_template(self, row: Row) -> None:
        """A template broken for every row fails before anything is sent (ConfigError), once a session."""
        if not self._template_checked:
            check_template(self.build, self.config.payload, *row)
        self._template_checked = True

    async def deliver(self, rows: list[Row], *, dead_letter_path: str | None = None,
                      progress: Callable[[DeliveryProgress], None] | None = None,
                      cancel: threading.Event | None = None, delivered: set[int] | None = None) -> DeliverySummary:
        """POST one body per row; see ``deliver_rows`` for ``rows``, ``progress``, ``cancel`` and the
        errors raised. ``dead_letter_path`` default: ``config.dead_letter_path``. ``delivered``: the rows
        the job's ledger holds, when the caller has just read them (else read here)."""
        engine = Engine(self, len(rows), list(rows[0][1]) if rows else [],
                        dead_letter_path or self.config.dead_letter_path, progress, cancel)
        try:
            engine.summary.warnings += await self.ledger.guard(force_resend=self.config.force_resend)
            done = delivered if delivered is not None else await self.ledger.delivered(n for n, _ in rows)
            pending = [r for r in rows if r[0] not in done]
            engine.summary.skipped_already_delivered = len(rows) - len(pending)
            if self.unreachable.armed and (done or await self.ledger.any_delivered()):
                self.unreachable.got_through()  # the job reached this target before (a resume, another consumer)
            if not self._shortfall_told and (message := await self.gate.shortfall(len(pending))):
                self._shortfall_told = True  # once per session, not once per chunk
                engine.summary.warnings.append(message)
                log.warning(message)
            if pending:
                self._check_template(pending[0])
            summary = await engine.run(pending)
            summary.destinations, summary.learned_rate = await self.gate.counts(), self.limiter.learned_rate
            summary.placed = {n: self.gate.placed.pop(n) for n, _ in pending if n in self.gate.placed}
            if engine.refusal.fired and summary.delivered == 0:
                summary.stopped_reason = engine.refusal.reason(summary)
            elif self.unreachable.fired:
                summary.stopped_reason = self.unreachable.reason(summary)
        except RedisUnavailableError as exc:
            raise RedisGone.stopped(exc, delivered=engine.summary.delivered, unrecorded=len(engine.unflushed),
                                    job_id=self.job_id) from None
        except sqlite3.Error as exc:
            raise DeliveryError(f"ledger write failed ({exc}); {engine.summary.delivered} rows were delivered") from None
        finally:
            engine.summary.elapsed_s = round(time.monotonic() - engine.started, 3)
            if engine.dead is not None:
                engine.dead.close()
        if engine.dead is not None and engine.dead.count:
            summary.dead_letter_path = str(engine.dead.path)
        if summary.stopped_reason:
            raise TargetRefusedError(summary.stopped_reason, summary)
        return summary


async def deliver_rows(rows: Iterable[Row], config: DeliveryConfig, *,
                       progress: Callable[[DeliveryProgress], None] | None = None,
                       cancel: threading.Event | None = None) -> DeliverySummary:
    """POST one body per row to ``config.webhook_urls`` (in rollover order); see tasks.deliver.engine.

    ``rows``: (row_number, record) pairs, row_number the 1-based data row of
    the merged CSV (stable across chunks), record {header: text}. Rows the
    job's ledger already holds are skipped. ``progress`` is called about once
    a second; setting ``cancel`` stops taking rows within ~0.1 s, lets
    requests in flight finish and returns with ``cancelled=True``.

    Raises UnsafeTargetError (URL refused), ConfigError (bad setting or
    template), RedisUnavailableError (Redis asked for and not answering, at
    start; RedisGone, with the counts, mid-run), LedgerLostError (a
    DeliveryError: the job's Redis ledger was lost and ``config.force_resend``
    is not set), DeliveryError (ledger write failed), TargetRefusedError (a
    DeliveryError: an early stop, every row refused alike or the target never reached; ``.summary``).
    Rows that end in the dead-letter file do not raise: check ``summary.failed``.
    """
    async with DeliverySession(config) as session:
        return await session.deliver(list(rows), progress=progress, cancel=cancel)

