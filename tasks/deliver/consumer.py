"""A delivery consumer: one long-lived engine that pulls chunk after chunk from a job's queue.

``consume`` opens one ``NewLeadDelivery`` (one ``httpx.AsyncClient``, the
shared limiter, the ledger, the lead index) and, until the queue is drained
or the job is cancelled: takes a chunk under a lease (tasks.deliver.work_queue),
renews the lease while it delivers, reports the chunk's summary, marks it
done. While other consumers hold the last leases it waits and polls, so a
chunk whose consumer died is taken over once its lease expires.

Errors: a chunk that fails (Redis gone, a ledger write, the early stop) is
released back to the queue first in line and the error is raised, so a
retried or another consumer resumes it; ``RedisUnavailableError`` and
``TargetRefusedError`` also cancel the job's other consumers (they share
that Redis, that target).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from csv_merger.errors import RedisUnavailableError
from tasks.deliver.chunks import ChunkRef, ChunkStore
from tasks.deliver.job import DeliveryConfig, DeliverySummary, DestinationUse, TargetRefusedError
from tasks.deliver.new_leads import Identities, NewLeadDelivery
from tasks.deliver.work_queue import ChunkQueue

log = logging.getLogger("csv_merger.delivery")

WAIT_POLL_S = 0.5  # how often an idle consumer looks for an expired lease, and for the cancel flag

ChunkProgress = Callable[[int, int, int, "float | None", list[DestinationUse], int], None]
"""``(chunk index, rows handled, 429 answers, limiter rate in requests/s or None when the chunk is done,
the destinations' counts as last seen, rows sent)``; rows sent are the handled rows this consumer sent
(delivered or dead-lettered), not those skipped (delivered before, at the destination, suppressed)."""


def dead_letter_file(dead_letter_dir: str | Path, ref: ChunkRef) -> str:
    """The chunk's own dead-letter file (the flow concatenates them into the job's)."""
    return str(Path(dead_letter_dir) / f"dead-letter-{ref.index:05d}.csv")


def handled(summary: DeliverySummary) -> int:
    """Rows of a chunk's summary that need nothing more: delivered, failed or skipped."""
    return (summary.delivered + summary.failed + summary.skipped_already_delivered
            + summary.skipped_already_at_destination + summary.skipped_suppressed)


async def _renew_lease(queue: ChunkQueue, ref: ChunkRef, consumer: str, every_s: float, logger) -> None:
    while True:
        await asyncio.sleep(every_s)
        if not await queue.renew(ref, consumer):
            logger.warning("%s: lease lost (this consumer was too slow to renew it); another consumer "
                        "may send its unrecorded rows again, with the same Idempotency-Keys", ref.label)
            return


async def _watch(queue: ChunkQueue, consumer: str, cancel: threading.Event, heartbeat_s: float) -> None:
    """Set ``cancel`` when the job's queue is cancelled; send this consumer's heartbeat meanwhile."""
    beat = 0.0
    while not cancel.is_set():
        if await queue.cancelled():
            cancel.set()
        now = asyncio.get_running_loop().time()
        if now - beat >= heartbeat_s:
            await queue.heartbeat(consumer)
            beat = now
        await asyncio.sleep(WAIT_POLL_S)


async def consume(queue: ChunkQueue, store: ChunkStore, config: DeliveryConfig, identities: Identities, *,
                  consumer: str, dead_letter_dir: str | Path, lease_s: float, cancel: threading.Event,
                  progress: ChunkProgress | None = None,
                  on_chunk: Callable[[ChunkRef, DeliverySummary], None] | None = None,
                  logger: logging.Logger | logging.LoggerAdapter = log) -> list[DeliverySummary]:
    """Deliver chunks from ``queue`` until it is drained or ``cancel`` is set; returns the summaries of
    the chunks this consumer handled (in the order it handled them).

    ``consumer``: a name unique among the job's consumers (its leases). ``store``: where chunk rows
    live. ``lease_s``: the queue's lease, renewed every third of it. ``on_chunk(ref, summary)`` is
    called when a chunk ends (done, cancelled or failed). ``logger`` gets a line per chunk (a Prefect
    run logger shows them in the UI). Raises what ``deliver_rows`` raises.
    """
    summaries: list[DeliverySummary] = []
    watcher = asyncio.create_task(_watch(queue, consumer, cancel, lease_s / 3))
    try:
        async with NewLeadDelivery(config, identities) as delivery:
            while not cancel.is_set():
                if await queue.cancelled():  # also before the first chunk: a consumer may start after the cancel
                    cancel.set()
                    break
                taken = await queue.take(consumer)
                if taken is None:
                    if await queue.remaining() == (0, 0):
                        break
                    await asyncio.sleep(WAIT_POLL_S)  # others hold the last leases: wait for them to end or expire
                    continue
                ref, times = taken
                if times > 1:
                    logger.warning("%s: taken over by %s (taken %d times: an earlier consumer stopped or failed)",
                                ref.label, consumer, times)
                try:
                    summary = await _deliver_chunk(queue, store, delivery, ref, consumer, dead_letter_dir, lease_s,
                                                   cancel, progress, logger)
                    logger.info("%s: %d delivered, %d failed, %d skipped, %d x 429, %.1f s%s", ref.label,
                                summary.delivered, summary.failed, handled(summary) - summary.delivered - summary.failed,
                                summary.http_429, summary.elapsed_s, " (cancelled)" if summary.cancelled else "")
                except TargetRefusedError as exc:  # the early stop: its counts still belong to the job
                    summaries.append(exc.summary)
                    if on_chunk is not None:
                        on_chunk(ref, exc.summary)
                    raise
                summaries.append(summary)
                if on_chunk is not None:
                    on_chunk(ref, summary)
                if summary.cancelled:
                    await queue.release(ref, consumer)
                    break
                await queue.done(ref, consumer)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, RedisUnavailableError):
            await watcher
        # It stopped pulling chunks: its run ends (or retries) next, so silence from now on is not death.
        with contextlib.suppress(RedisUnavailableError):
            await asyncio.shield(queue.heartbeat(consumer, finished=True))
    return summaries


async def _deliver_chunk(queue: ChunkQueue, store: ChunkStore, delivery: NewLeadDelivery, ref: ChunkRef,
                         consumer: str, dead_letter_dir: str | Path, lease_s: float, cancel: threading.Event,
                         progress: ChunkProgress | None, logger) -> DeliverySummary:
    """One leased chunk through ``delivery``; the lease is renewed meanwhile and given back on an error."""
    report = None if progress is None else (
        lambda p: progress(ref.index, p.delivered + p.failed + p.skipped, p.http_429, p.current_rate, p.destinations,
                           p.delivered + p.failed))
    renewer = asyncio.create_task(_renew_lease(queue, ref, consumer, lease_s / 3, logger))
    try:
        rows = await asyncio.to_thread(store.get, ref)
        summary = await delivery.deliver(rows, dead_letter_path=dead_letter_file(dead_letter_dir, ref),
                                         progress=report, cancel=cancel)
    except BaseException as exc:
        if isinstance(exc, (RedisUnavailableError, TargetRefusedError)):
            cancel.set()  # the job's other consumers share this Redis and this target: stop them now
            with contextlib.suppress(RedisUnavailableError):
                await queue.cancel()
        with contextlib.suppress(RedisUnavailableError, asyncio.CancelledError):
            await asyncio.shield(queue.release(ref, consumer))
        raise
    finally:
        renewer.cancel()
    if progress is not None:
        progress(ref.index, handled(summary), summary.http_429, None, summary.destinations,
                 summary.delivered + summary.failed)
    return summary
