"""The ``deliver-consumer`` flow: one delivery consumer of a fanned-out job, run by a worker on the work pool.

Started by ``merge_and_deliver(..., fan_out=True)`` through
``run_deployment`` (flows.fan_out); pulls chunk after chunk from the job's
Redis work queue with one delivery engine, through the shared (Redis)
limiter and ledger, and reports progress and each chunk's summary on the
job's Redis board for the parent.
"""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import Cancelled

from csv_merger.errors import ConfigError
from csv_merger.schema import TableType
from flows.cancellation import watch_cancellation
from flows.fan_out import ChunkBoard
from tasks.deliver import DeliverySummary
from tasks.stages import deliver_consumer, delivery_config, resolve_redis_url
from tasks.summary import combine_deliveries


@flow(name="deliver-consumer")
def deliver_consumer_flow(webhook_url: str | list[str], job_id: str, consumer: str, dead_letter_dir: str,
                          redis_url: str | None = None, table_type: TableType = "people", rate_limit: float = 10.0,
                          burst: int = 20, concurrency: int = 8, limit_key: str | None = None, payload: str = "flat",
                          allow_private_targets: bool = False, auth_token_block: str | None = None,
                          resend: bool = False, suppress_file: str | None = None) -> DeliverySummary:
    """Deliver chunks of job ``job_id`` from its queue until it is drained, to ``webhook_url`` (one URL
    or the job's destinations in rollover order; rates in requests/s, shared by ``limit_key``); returns
    the counts of the chunks this consumer handled.

    Ends Cancelled (with the counts on the board) when its run or the job is cancelled.
    ``redis_url`` default: ``REDIS_URL`` or the Redis block of this worker (a URL with a password is
    never a parameter); ConfigError when there is none.
    """
    redis_url = resolve_redis_url(redis_url)
    if not redis_url:
        raise ConfigError("deliver-consumer needs Redis: set REDIS_URL or CSV_MERGER_REDIS_BLOCK on this worker")
    board = ChunkBoard(redis_url, job_id)
    config = delivery_config(webhook_url, job_id=job_id, table_type=table_type, rate_limit=rate_limit, burst=burst,
                             concurrency=concurrency, redis_url=redis_url, limit_key=limit_key, payload=payload,
                             auth_token_block=auth_token_block, allow_private_targets=allow_private_targets,
                             resend=resend, suppress_path=suppress_file)
    with watch_cancellation(flow_run.get_id()) as cancel:
        parts = deliver_consumer(config, redis_url, consumer, dead_letter_dir, cancel=cancel,
                                 progress=board.set_handled, on_chunk=board.set_summary)
    summary = combine_deliveries(parts, job_id=job_id, limit_key=config.limit_key, rows_total=sum(p.rows_total for p in parts),
                                 elapsed_s=sum(p.elapsed_s for p in parts), dead_letter_path=None)
    if cancel.is_set() or summary.cancelled:
        return Cancelled(message=f"{consumer}: cancelled after {summary.delivered} rows delivered")
    return summary
