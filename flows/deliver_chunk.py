"""The ``deliver-chunk`` flow: one chunk of a fanned-out job, run by a worker on the work pool.

Started by ``merge_and_deliver(..., fan_out=True)`` through
``run_deployment``; reads the chunk from the shared chunk store, delivers
it through the shared (Redis) limiter and ledger, and reports progress and
its summary on the job's Redis board for the parent.
"""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import Cancelled

from csv_merger.errors import ConfigError
from csv_merger.schema import TableType
from flows.cancellation import watch_cancellation
from flows.fan_out import ChunkBoard
from tasks.deliver import ChunkRef
from tasks.deliver import DeliverySummary
from tasks.stages import chunk_config, deliver_chunk, delivery_config, resolve_redis_url


@flow(name="deliver-chunk")
def deliver_chunk_flow(chunk: ChunkRef, webhook_url: str | list[str], job_id: str, dead_letter_dir: str,
                       redis_url: str | None = None, table_type: TableType = "people", rate_limit: float = 10.0,
                       burst: int = 20,
                       concurrency: int = 8, limit_key: str | None = None, payload: str = "flat",
                       allow_private_targets: bool = False, auth_token_block: str | None = None) -> DeliverySummary:
    """Deliver ``chunk`` of job ``job_id`` to ``webhook_url`` (one URL or the job's destinations in
    rollover order; rates in requests/s, shared by ``limit_key``).

    Ends Cancelled (with the counts on the board) when its run is cancelled. ``redis_url``
    default: ``REDIS_URL`` or the Redis block of this worker (a URL with a password is never a
    parameter); ConfigError when there is none.
    """
    redis_url = resolve_redis_url(redis_url)
    if not redis_url:
        raise ConfigError("deliver-chunk needs Redis: set REDIS_URL or CSV_MERGER_REDIS_BLOCK on this worker")
    board = ChunkBoard(redis_url, job_id)
    config = delivery_config(webhook_url, job_id=job_id, table_type=table_type, rate_limit=rate_limit, burst=burst,
                             concurrency=concurrency, redis_url=redis_url, limit_key=limit_key, payload=payload,
                             auth_token_block=auth_token_block, allow_private_targets=allow_private_targets)
    with watch_cancellation(flow_run.get_id()) as cancel:
        summary = deliver_chunk(chunk, chunk_config(config, chunk, dead_letter_dir, concurrency), redis_url,
                                cancel=cancel, progress=board.set_handled)
    board.set_summary(chunk.index, summary)
    if summary.cancelled:
        return Cancelled(message=f"{chunk.label}: cancelled after {summary.delivered} rows delivered")
    return summary
