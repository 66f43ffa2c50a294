"""Fan-out: hand a job's chunks to runs of the ``deliver-chunk`` deployment on the work pool.

The parent starts one child flow run per chunk with ``run_deployment``
(``timeout=0``: it does not block on each) and watches them. The work
pool's concurrency limit (``WORKER_COUNT``) caps how many run at once, on
whichever workers poll the pool. Children share the Redis rate limiter,
ledger and chunk store, and report progress and their final summary in a
Redis hash (``csv-merger:job:<job_id>:chunks``, same TTL as chunks), which
the parent reads, since a child's return value lives on its worker.

Cancelling the parent cancels its unfinished children, also when the parent's
own process is being stopped (its worker's SIGTERM unwinds the wait loop).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.states import Cancelling

from csv_merger.errors import DeliveryError
from csv_merger.settings import get_settings
from tasks.artifacts import DeliveryProgress
from tasks.deliver import ChunkRef
from tasks.deliver import DeliveryConfig, DeliverySummary
from tasks.deliver.job import DestinationUse
from csv_merger.safety import shareable_redis_url

log = logging.getLogger("csv_merger.pipeline")

DEPLOYMENT = "deliver-chunk/deliver-chunk"
POLL_S = 1.0
IDLE_HINT_S = 60.0  # no child started after this long: say that no worker seems to poll the pool


class ChunkBoard:
    """Per-job Redis hash: ``<index>:handled`` (rows handled so far) and ``<index>:summary`` (JSON)."""

    def __init__(self, redis_url: str, job_id: str):
        import redis

        self.client = redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=10)
        self.key, self.ttl_s = f"csv-merger:job:{job_id}:chunks", get_settings().chunk_ttl_s

    def _set(self, field: str, value: str | int) -> None:
        pipe = self.client.pipeline()
        pipe.hset(self.key, field, value)
        pipe.expire(self.key, self.ttl_s)
        pipe.execute()

    def set_handled(self, index: int, handled: int, http_429: int = 0, current_rate: float | None = None,
                    destinations: Sequence[DestinationUse] = ()) -> None:
        """Rows handled so far by chunk ``index``, its 429 answers, its limiter's rate (requests/s) and
        the destinations' counts it last saw."""
        pipe = self.client.pipeline()
        pipe.hset(self.key, mapping={f"{index}:handled": handled, f"{index}:http_429": http_429,
                                     f"{index}:rate": "" if current_rate is None else current_rate,
                                     f"{index}:dest": json.dumps([d.model_dump() for d in destinations])})
        pipe.expire(self.key, self.ttl_s)
        pipe.execute()

    def set_summary(self, index: int, summary: DeliverySummary) -> None:
        self._set(f"{index}:summary", summary.model_dump_json())

    def handled(self) -> dict[int, int]:
        return {index: live[0] for index, live in self.live().items()}

    def live(self) -> dict[int, tuple[int, int, float | None]]:
        """``{chunk index: (rows handled, 429 answers, limiter rate or None)}`` of the chunks that reported."""
        fields = {k.decode(): v.decode() for k, v in self.client.hgetall(self.key).items()}
        return {int(k.split(":")[0]): (int(v), int(fields.get(k.replace("handled", "http_429"), 0)),
                                       float(rate) if (rate := fields.get(k.replace("handled", "rate"))) else None)
                for k, v in fields.items() if k.endswith(":handled")}

    def destinations(self) -> dict[int, list[DestinationUse]]:
        """``{chunk index: the destinations' counts it last saw}``."""
        fields = {k.decode(): v.decode() for k, v in self.client.hgetall(self.key).items()}
        return {int(k.split(":")[0]): [DestinationUse(**d) for d in json.loads(v)]
                for k, v in fields.items() if k.endswith(":dest")}

    def summary(self, index: int) -> DeliverySummary | None:
        raw = self.client.hget(self.key, f"{index}:summary")
        return DeliverySummary.model_validate_json(raw) if raw else None


def child_parameters(ref: ChunkRef, config: DeliveryConfig, redis_url: str, dead_letter_dir: Path,
                     auth_token_block: str | None) -> dict:
    """Parameters of one ``deliver-chunk`` run (no secret: the child reads the token, and a Redis
    URL holding a password, from its own environment or blocks)."""
    # One URL as a string: a deployment registered before rollover validates it as one.
    urls = config.webhook_url if len(config.webhook_urls) == 1 else config.webhook_urls
    return dict(chunk=ref.model_dump(), webhook_url=urls, job_id=config.job_id,
                dead_letter_dir=str(dead_letter_dir), table_type=config.table_type, rate_limit=config.rate,
                burst=config.burst, concurrency=config.concurrency, redis_url=shareable_redis_url(redis_url),
                limit_key=config.limit_key,
                payload=config.payload, allow_private_targets=config.allow_private_targets,
                auth_token_block=auth_token_block)


def _cancel_children(client, runs: dict, pending: set[int]) -> None:
    """Move unfinished children to Cancelling as ``prefect flow-run cancel`` does (orchestrated, not forced:
    the server turns a child no worker took yet into Cancelled; a running child's worker stops it)."""
    for index in pending:
        try:
            client.set_flow_run_state(runs[index].id, Cancelling(message="parent flow run cancelled"))
        except Exception as exc:  # an already-finished child cannot be cancelled
            log.debug("could not cancel child %s: %s", index, exc)


def deliver_fanned_out(refs: list[ChunkRef], config: DeliveryConfig, redis_url: str, out_dir: Path,
                       cancel: threading.Event, progress: DeliveryProgress,
                       auth_token_block: str | None) -> list[DeliverySummary]:
    """Run every chunk as a child flow run of ``DEPLOYMENT``; return their summaries in chunk order.

    Raises ``DeliveryError`` naming the chunk when a child ends Failed or
    Crashed (its rows delivered so far stay in the ledger: run the job again
    to resume). A child cancelled before it reported counts as cancelled
    with zero rows.
    """
    from prefect import get_run_logger
    from prefect.deployments import run_deployment

    run_log = get_run_logger()
    board = ChunkBoard(redis_url, config.job_id)
    runs = {ref.index: run_deployment(DEPLOYMENT, parameters=child_parameters(ref, config, redis_url,
                                                                              out_dir / "dead-letter", auth_token_block),
                                      timeout=0, as_subflow=True, flow_run_name=f"{config.job_id}-chunk-{ref.index}")
            for ref in refs}
    run_log.info("job %s: %d chunk(s) handed to %s", config.job_id, len(runs), DEPLOYMENT)
    pending, finals, cancelled_children = set(runs), {}, False
    started, hinted = time.monotonic(), False
    with get_client(sync_client=True) as client:
        try:
            while pending:
                if not hinted and time.monotonic() - started > IDLE_HINT_S and not board.handled():
                    run_log.warning("no chunk started after %.0f s: is a worker polling the work pool? "
                                    "(start one with `csv-merger worker`)", IDLE_HINT_S)
                    hinted = True
                if cancel.is_set() and not cancelled_children:
                    _cancel_children(client, runs, pending)
                    cancelled_children = True
                for index in sorted(pending):
                    state = client.read_flow_run(runs[index].id).state
                    if state is not None and state.is_final():
                        finals[index] = state
                        pending.discard(index)
                seen = board.destinations()
                for index, (handled, http_429, rate) in board.live().items():
                    progress.set_chunk(index, handled, http_429, rate, seen.get(index, ()))
                if pending:
                    time.sleep(POLL_S)
        except BaseException:  # this run is being stopped (its worker's SIGTERM on Cancel): children stop too
            if not cancelled_children:
                _cancel_children(client, runs, pending)
            raise
    parts = []
    for ref in refs:
        state, summary = finals[ref.index], board.summary(ref.index)
        if state.is_failed() or state.is_crashed():
            raise DeliveryError(f"{ref.label}: flow run {runs[ref.index].name} ended {state.name}: {state.message}")
        parts.append(summary or DeliverySummary(job_id=config.job_id or "", limit_key=config.limit_key or "",
                                                rows_total=ref.rows, cancelled=True))
    return parts
