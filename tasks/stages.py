"""The pipeline's Prefect tasks: merge, chunk, queue the chunks, deliver them (consumers), or plan a dry run.

Thin wrappers over plain functions (``tasks.merge.sources``, ``tasks.merge.engine``,
``tasks.deliver.chunks``, ``tasks.deliver.consumer``); the plain function of each task is
reachable as ``task.fn``. Retries and tags are declared on the decorators.
No task caches its result: each one has side effects (files, requests).

Tags: every task carries ``csv-merger``; delivery tasks also carry
``delivery``, so a Prefect tag concurrency limit
(``prefect concurrency-limit create delivery 4``) can cap consumer tasks across
all flow runs of a server.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from csv_merger.errors import DeliveryError, RedisUnavailableError
from csv_merger.settings import get_settings
from tasks.deliver import (ChunkRef, ChunkStore, DeliveryConfig, DeliverySummary, TargetRefusedError, default_limit_key,
                           make_chunk_store, read_merged_csv, write_chunks)
from tasks.deliver.consumer import ChunkProgress, consume
from tasks.deliver.work_queue import ChunkQueue, open_chunk_queue
from tasks.deliver.plan import DeliveryPlan, plan_delivery
from tasks.deliver.redis_loss import LedgerLostError
from tasks.merge import MergeReport, merge_files, resolve_inputs
from tasks.merge.dedupe import lead_identities

TAGS = ["csv-merger"]

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def delivery_loop() -> asyncio.AbstractEventLoop:
    """The process's one event loop for chunk deliveries (started on first use, in a daemon thread).

    Prefect runs consumer tasks in a thread pool; each hands its ``consume``
    coroutine to this loop instead of starting its own, so the consumers
    interleave on one loop and no two loops fight over the GIL (measured:
    one loop per task thread was ~1.8x slower).
    """
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, daemon=True, name="delivery-loop").start()
        return _loop


def on_delivery_loop(coroutine):
    """Run ``coroutine`` on ``delivery_loop()`` from this (task) thread and return its result."""
    return asyncio.run_coroutine_threadsafe(coroutine, delivery_loop()).result()


def redis_url_from_block(block) -> str:
    """A ``redis://`` (or ``rediss://``) URL from a prefect-redis ``RedisDatabase`` block's fields
    (a Sentinel block's ``connection_url`` as it is)."""
    if getattr(block, "connection_url", None):
        return block.connection_url.get_secret_value()
    user = quote(block.username.get_secret_value(), safe="") if block.username else ""
    password = quote(block.password.get_secret_value(), safe="") if block.password else ""
    auth = f"{user}:{password}@" if (user or password) else ""
    return f"{'rediss' if block.ssl else 'redis'}://{auth}{block.host}:{block.port}/{block.db}"




def resolve_redis_url(explicit: str | None) -> str | None:
    """The Redis to use: ``explicit``, else ``REDIS_URL``, else the RedisDatabase block
    named by ``CSV_MERGER_REDIS_BLOCK``, else None (in-process limiter, local files)."""
    settings = get_settings()
    if explicit or settings.redis_url:
        return explicit or settings.redis_url
    if settings.redis_block:
        from prefect_redis import RedisDatabase

        return redis_url_from_block(RedisDatabase.load(settings.redis_block))
    return None


def resolve_auth_token(auth_token_block: str | None) -> str | None:
    """The webhook auth token: from the named Prefect Secret block (or ``CSV_MERGER_AUTH_BLOCK``),
    else ``CLAY_WEBHOOK_AUTH``. Never logged."""
    settings = get_settings()
    name = auth_token_block or settings.auth_block
    if name:
        from prefect.blocks.system import Secret

        return str(Secret.load(name).get())
    return settings.clay_webhook_auth.get_secret_value() if settings.clay_webhook_auth else None


def chunk_store(redis_url: str | None) -> ChunkStore:
    """Redis chunk store when ``redis_url`` is set, else files under ``settings.data_dir``."""
    settings = get_settings()
    client = None
    if redis_url:
        import redis

        client = redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=10)
    return make_chunk_store(client, data_dir=settings.data_dir, ttl_s=settings.chunk_ttl_s)


@task(name="merge", tags=TAGS, cache_policy=NO_CACHE)
def merge(files: list[str], out_path: str, table_type: str = "people", mapping: dict[str, str] | None = None,
          allow_private_targets: bool = False, neutralise_formulas: bool = True) -> MergeReport:
    """Fetch ``files`` (paths, globs, URLs) and merge them into ``out_path``; returns the merge report.

    ``neutralise_formulas=False`` keeps every value exactly as read: use it when
    the file is the source of a delivery, so the webhook gets the real values.
    """
    paths = resolve_inputs(files, Path(out_path).parent / "downloads", allow_private=allow_private_targets)
    return merge_files(paths, out_path, table_type=table_type, mapping=mapping,
                       neutralise_formulas=neutralise_formulas, progress=get_run_logger().info)


@task(name="plan-delivery", tags=TAGS, cache_policy=NO_CACHE)
def plan(merged_csv: str, config: DeliveryConfig) -> DeliveryPlan:
    """A dry run of delivering the merged CSV with ``config``: every check and body, no POST."""
    rows = list(read_merged_csv(merged_csv, config.table_type))
    identities = functools.partial(lead_identities, table_type=config.table_type)
    return on_delivery_loop(plan_delivery(rows, config, identities))


@task(name="chunk", tags=TAGS, cache_policy=NO_CACHE)
def chunk(merged_csv: str, job_id: str, chunk_size: int, redis_url: str | None = None) -> list[ChunkRef]:
    """Store the merged CSV's rows as chunks of ``chunk_size`` rows; returns their refs."""
    refs = write_chunks(read_merged_csv(merged_csv), job_id, chunk_size, chunk_store(redis_url))
    get_run_logger().info("job %s: %d rows in %d chunk(s) of up to %d", job_id, sum(r.rows for r in refs), len(refs), chunk_size)
    return refs


def _retry_transient(task, task_run, state) -> bool:
    """Retry a chunk only when the target went away; bad settings, a target that refused
    every row (wrong token or URL) or was never reached (wrong host or port), a lost ledger,
    and a Redis that went away (retrying against it only delays the message:
    tasks.deliver.redis_loss) fail at once."""
    try:
        state.result()
    except (TargetRefusedError, LedgerLostError, RedisUnavailableError):
        return False
    except DeliveryError:
        return True
    except Exception:
        return False
    return False


@task(name="deliver-consumer", tags=[*TAGS, "delivery"], cache_policy=NO_CACHE, retries=2,
      retry_delay_seconds=[5, 30], retry_condition_fn=_retry_transient, task_run_name="{consumer}")
def deliver_consumer(config: DeliveryConfig, redis_url: str | None, consumer: str, dead_letter_dir: str, *,
                     queue: ChunkQueue | None = None, cancel: threading.Event | None = None,
                     progress: ChunkProgress | None = None,
                     on_chunk: Callable[[ChunkRef, DeliverySummary], None] | None = None) -> list[DeliverySummary]:
    """A delivery consumer (tasks.deliver.consumer): one engine pulling chunk after chunk from the
    job's queue until it is drained or ``cancel`` is set; returns the summaries of its chunks.

    ``queue`` default: the job's Redis queue at ``redis_url`` (a fan-out child's consumer). Each
    chunk gets its own dead-letter file in ``dead_letter_dir``; the flow concatenates them.
    ``progress(chunk_index, rows_handled, http_429, current_rate, destinations)`` about once a second;
    ``on_chunk(ref, summary)`` when a chunk ends. Retried (twice, after 5 s then 30 s) only on a
    ``DeliveryError`` other than the early stop and a lost ledger: the retry takes the chunk the
    failure gave back, and its rows already in the ledger are not sent again.
    """
    settings = get_settings()
    queue = queue or open_chunk_queue(config.job_id, redis_url=redis_url, lease_s=settings.lease_s,
                                      ttl_s=settings.chunk_ttl_s)
    identities = functools.partial(lead_identities, table_type=config.table_type)
    run_log = get_run_logger()
    summaries = on_delivery_loop(consume(queue, chunk_store(redis_url), config, identities, consumer=consumer,
                                         dead_letter_dir=dead_letter_dir, lease_s=settings.lease_s,
                                         cancel=cancel or threading.Event(), progress=progress, on_chunk=on_chunk,
                                         logger=run_log))
    run_log.info("%s: %d chunk(s), %d delivered, %d failed", consumer, len(summaries),
                          sum(s.delivered for s in summaries), sum(s.failed for s in summaries))
    return summaries


@task(name="queue-chunks", tags=TAGS, cache_policy=NO_CACHE)
def queue_chunks(refs: list[ChunkRef], queue: ChunkQueue) -> None:
    """Put the job's chunk refs in its work queue, in row order."""
    on_delivery_loop(queue.put(refs))


def delivery_config(webhook_url: str | list[str], *, job_id: str, table_type: str = "people", rate_limit: float = 10.0,
                    burst: int = 20, concurrency: int = 8, redis_url: str | None = None, limit_key: str | None = None,
                    payload: str = "flat", auth_token_block: str | None = None,
                    allow_private_targets: bool = False, resend: bool = False,
                    suppress_path: str | None = None, force_resend: bool = False) -> DeliveryConfig:
    """A ``DeliveryConfig`` from flow parameters (``webhook_url``: one URL or several, in rollover
    order); retry, payload and ceiling limits come from settings."""
    settings = get_settings()
    urls = [webhook_url] if isinstance(webhook_url, str) else list(webhook_url)
    return DeliveryConfig(
        webhook_url=urls[0], webhook_urls=urls, table_type=table_type, rate=rate_limit, burst=burst,
        concurrency=concurrency,
        redis_url=redis_url, limit_key=limit_key or default_limit_key(urls[0]), job_id=job_id, payload=payload,
        auth_token=resolve_auth_token(auth_token_block), max_attempts=settings.max_attempts,
        retry_budget_s=settings.retry_budget_s, outage_budget_s=settings.outage_budget_s,
        unreachable_stop_s=settings.unreachable_stop_s,
        payload_limit_bytes=settings.payload_limit_bytes, row_ceiling=settings.row_ceiling,
        allow_private_targets=allow_private_targets, resend=resend, suppress_path=suppress_path,
        force_resend=force_resend)
