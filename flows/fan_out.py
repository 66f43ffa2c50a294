"""Fan-out: the job's delivery consumers as runs of the ``deliver-consumer`` deployment on the work pool.

The parent queues the chunks (a Redis work queue with leases,
tasks.deliver.work_queue), starts as many consumer runs as the work pool's
concurrency limit allows (``WORKER_COUNT``) with ``run_deployment``
(``timeout=0``) and watches them. Each consumer is one process with one
delivery engine that pulls chunk after chunk, so a worker's start-up cost is
paid once per consumer, not once per chunk, and the number of flow runs does
not grow with the job. Consumers share the Redis rate limiter, ledger,
chunk store and queue, and report progress and each chunk's summary in a
Redis hash (``csv-merger:job:<job_id>:chunks``, same TTL as chunks), which
the parent reads, since a child's return value lives on its worker.

Cancelling the parent sets the queue's cancel flag (consumers stop within a
second) and cancels its unfinished children, also when the parent's own
process is being stopped (its worker's SIGTERM unwinds the wait loop).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.states import Cancelling, Crashed

from csv_merger.errors import DeliveryError
from csv_merger.settings import get_settings
from tasks.artifacts import DeliveryProgress
from csv_merger.safety import shareable_redis_url
from tasks.deliver import ChunkRef, DeliveryConfig, DeliverySummary
from tasks.deliver.job import DestinationUse
from tasks.deliver.work_queue import ChunkQueue
from tasks.stages import on_delivery_loop

log = logging.getLogger("csv_merger.pipeline")

DEPLOYMENT = "deliver-consumer/deliver-consumer"
POLL_S = 1.0
IDLE_HINT_S = 60.0  # no child started after this long: say that no worker seems to poll the pool
DEAD_GRACE_S = 5.0  # a running consumer silent for its lease and this much longer is dead
START_GRACE_S = 120.0  # a consumer Pending or Running this long without a first heartbeat died starting


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
                    destinations: Sequence[DestinationUse] = (), sent: int = 0) -> None:
        """Rows handled so far by chunk ``index``, its 429 answers, its limiter's rate (requests/s),
        the destinations' counts it last saw and the rows of it sent (``consumer.ChunkProgress``)."""
        pipe = self.client.pipeline()
        pipe.hset(self.key, mapping={f"{index}:handled": handled, f"{index}:sent": sent,
                                     f"{index}:http_429": http_429,
                                     f"{index}:rate": "" if current_rate is None else current_rate,
                                     f"{index}:dest": json.dumps([d.model_dump() for d in destinations])})
        pipe.expire(self.key, self.ttl_s)
        pipe.execute()

    def set_summary(self, ref: ChunkRef, summary: DeliverySummary) -> None:
        """A chunk's summary as it ended (the last consumer to finish it wins)."""
        self._set(f"{ref.index}:summary", summary.model_dump_json())

    def fields(self) -> dict[str, str]:
        """The whole hash, read once (a poll passes it to ``live`` and ``destinations``)."""
        return {k.decode(): v.decode() for k, v in self.client.hgetall(self.key).items()}

    def handled(self, fields: dict[str, str] | None = None) -> dict[int, int]:
        return {index: live[0] for index, live in self.live(fields).items()}

    def live(self, fields: dict[str, str] | None = None) -> dict[int, tuple[int, int, float | None, int]]:
        """``{chunk index: (rows handled, 429 answers, limiter rate or None, rows sent)}`` of the chunks
        that reported."""
        fields = self.fields() if fields is None else fields
        return {int(k.split(":")[0]): (int(v), int(fields.get(k.replace("handled", "http_429"), 0)),
                                       float(rate) if (rate := fields.get(k.replace("handled", "rate"))) else None,
                                       int(fields.get(k.replace("handled", "sent"), 0)))
                for k, v in fields.items() if k.endswith(":handled")}

    def destinations(self, fields: dict[str, str] | None = None) -> dict[int, list[DestinationUse]]:
        """``{chunk index: the destinations' counts it last saw}``."""
        fields = self.fields() if fields is None else fields
        return {int(k.split(":")[0]): [DestinationUse(**d) for d in json.loads(v)]
                for k, v in fields.items() if k.endswith(":dest")}

    def summaries(self) -> dict[int, DeliverySummary]:
        """Chunk index -> the last summary a consumer reported for it."""
        return {int(k.decode().split(":")[0]): DeliverySummary.model_validate_json(v)
                for k, v in self.client.hgetall(self.key).items() if k.endswith(b":summary")}

    def clear(self) -> None:
        """Forget an earlier run's counts (a job run again starts a new board)."""
        self.client.delete(self.key)


def consumer_parameters(config: DeliveryConfig, redis_url: str, dead_letter_dir: Path, auth_token_block: str | None,
                        consumer: str) -> dict:
    """Parameters of one ``deliver-consumer`` run (no secret: the child reads the token, and a Redis
    URL holding a password, from its own environment or blocks)."""
    # One URL as a string: a deployment registered before rollover validates it as one.
    urls = config.webhook_url if len(config.webhook_urls) == 1 else config.webhook_urls
    return dict(webhook_url=urls, job_id=config.job_id, consumer=consumer,
                dead_letter_dir=str(dead_letter_dir), table_type=config.table_type, rate_limit=config.rate,
                burst=config.burst, concurrency=config.concurrency, redis_url=shareable_redis_url(redis_url),
                limit_key=config.limit_key, payload=config.payload, allow_private_targets=config.allow_private_targets,
                auth_token_block=auth_token_block, resend=config.resend, suppress_file=config.suppress_path)


def consumer_count(client, chunks: int) -> int:
    """How many consumer runs to start: the work pool's concurrency limit (``WORKER_COUNT`` when the
    pool has none or cannot be read), never more than there are chunks."""
    settings = get_settings()
    try:
        limit = client.read_work_pool(settings.work_pool).concurrency_limit
    except Exception as exc:  # no such pool yet: the runs wait for one; size by the setting
        log.debug("work pool %s not read: %s", settings.work_pool, exc)
        limit = None
    return max(1, min(chunks, limit or settings.worker_count))


def _stop_consumers(client, runs: dict, pending: set[int], queue: ChunkQueue) -> None:
    """Set the queue's cancel flag (consumers watch it: they stop within a second) and cancel the
    unfinished children; a queue that cannot be reached leaves the children's Cancel to do it."""
    with contextlib.suppress(Exception):
        on_delivery_loop(queue.cancel())
    _cancel_children(client, runs, pending)


def _cancel_children(client, runs: dict, pending: set[int]) -> None:
    """Move unfinished children to Cancelling as ``prefect flow-run cancel`` does (orchestrated, not forced:
    the server turns a child no worker took yet into Cancelled; a running child's worker stops it).

    A child whose process is starting (Pending) is left to the queue's cancel flag: Prefect's engine
    exits with an error, and leaves the run Cancelling for good, when its run was cancelled before it
    could propose Running; started, it sees the flag at once and ends Cancelled itself."""
    for index in pending:
        try:
            state = client.read_flow_run(runs[index].id).state
            if state is not None and not state.is_pending():
                client.set_flow_run_state(runs[index].id, Cancelling(message="parent flow run cancelled"))
        except Exception as exc:  # an already-finished child cannot be cancelled
            log.debug("could not cancel child %s: %s", index, exc)


def deliver_fanned_out(queue: ChunkQueue, refs: list[ChunkRef], config: DeliveryConfig, redis_url: str, out_dir: Path,
                       cancel: threading.Event, progress: DeliveryProgress,
                       auth_token_block: str | None) -> dict[int, DeliverySummary]:
    """Start consumer runs of ``DEPLOYMENT`` on the job's (queued) chunks and watch them; returns
    chunk index -> the last summary a consumer reported.

    A consumer that ends Crashed, or whose process died (``dead_consumer``: its run is then set
    Crashed here), while another still runs is only warned about: the other takes its chunk
    once the lease expires. Raises ``DeliveryError`` naming the run when
    every consumer ended and chunks are left (rows delivered so far stay in the ledger: run the
    job again to resume), or when a consumer failed (e.g. the early stop).
    """
    from prefect import get_run_logger
    from prefect.deployments import run_deployment

    run_log = get_run_logger()
    board = ChunkBoard(redis_url, config.job_id)
    board.clear()
    with get_client(sync_client=True) as client:
        count = consumer_count(client, len(refs))
        runs: dict = {}
        try:  # each start is an API call: a slow server leaves time for a Cancel to arrive in between
            for i in range(1, count + 1):
                runs[i] = run_deployment(DEPLOYMENT, timeout=0, as_subflow=True,
                                         flow_run_name=f"{config.job_id}-consumer-{i}",
                                         parameters=consumer_parameters(config, redis_url, out_dir / "dead-letter",
                                                                        auth_token_block, f"consumer-{i}"))
        except BaseException:  # stopped while starting consumers (its worker's SIGTERM on Cancel)
            _stop_consumers(client, runs, set(runs), queue)
            raise
        run_log.info("job %s: %d chunk(s) queued for %d consumer run(s) of %s", config.job_id, len(refs), count,
                     DEPLOYMENT)
        finals = _watch(client, runs, queue, board, cancel, progress, run_log)
    failed = [(i, state) for i, state in finals.items() if state.is_failed()]
    if failed:
        i, state = failed[0]
        raise DeliveryError(f"flow run {runs[i].name} ended {state.name}: {state.message}")
    return board.summaries()


def dead_consumer(state, beat: tuple[float, bool] | None, in_state_s: float, drained: bool,
                  dead_after_s: float) -> str | None:
    """Why a consumer run that is not final counts as dead (the message of the Crashed state to set), or
    None while it may be alive. Nobody else can tell: a killed process leaves its run Pending or Running.

    ``beat``: (seconds since its last heartbeat, whether that was its finished one), None before the
    first. ``in_state_s``: seconds the parent has seen it in its current state. ``drained``: no chunk
    is waiting or leased. ``dead_after_s``: the queue's lease plus a grace.

    - Beating: dead when silent past ``dead_after_s`` while Running.
    - Finished pulling chunks: its run is ending, which a loaded Prefect server can make slow (or a
      task retry waits): dead only after ``START_GRACE_S`` more.
    - Never beat: it holds no lease (it beats before it takes a chunk), so while work is left it gets
      ``START_GRACE_S`` to start (a loaded machine), and once the others drained the queue only
      ``dead_after_s``. A Scheduled run (no worker took it yet) is never dead.
    """
    if state is None or state.is_final():
        return None
    if beat is not None:
        silent_s, finished = beat
        if finished and silent_s > START_GRACE_S:
            return f"no heartbeat for {silent_s:.0f} s after it stopped pulling chunks: its process died"
        if not finished and state.is_running() and silent_s > dead_after_s:
            return f"no heartbeat for {silent_s:.0f} s: its process died (killed, or its machine was lost)"
        return None
    if (state.is_running() or state.is_pending()) and in_state_s > (dead_after_s if drained else START_GRACE_S):
        return (f"no heartbeat {in_state_s:.0f} s after it was {state.name}: its process died before it "
                "started delivering (killed, or its machine was lost)")
    return None


def _watch(client, runs: dict, queue: ChunkQueue, board: ChunkBoard, cancel: threading.Event,
           progress: DeliveryProgress, run_log) -> dict:
    """Poll the consumer runs until every one is final; relay progress and a cancel. Returns their final states."""
    pending, finals, cancelled_children = set(runs), {}, False
    started, hinted = time.monotonic(), False
    dead_after_s = get_settings().lease_s + DEAD_GRACE_S
    since: dict[int, tuple[str, float]] = {}  # run -> (state type, when this parent first saw it so)
    try:
        while pending:
            fields = board.fields()
            if not hinted and time.monotonic() - started > IDLE_HINT_S and not board.handled(fields):
                run_log.warning("no chunk started after %.0f s: is a worker polling the work pool? "
                                "(start one with `csv-merger worker`)", IDLE_HINT_S)
                hinted = True
            if cancel.is_set() and not cancelled_children:
                _stop_consumers(client, runs, pending, queue)
                cancelled_children = True
            silent = on_delivery_loop(queue.silent_for())
            drained = None  # read once per poll, only when a consumer never beat
            for i in sorted(pending):
                state = client.read_flow_run(runs[i].id).state
                if state is not None and since.get(i, ("",))[0] != state.type.value:
                    since[i] = (state.type.value, time.monotonic())
                beat = silent.get(f"consumer-{i}")
                if beat is None and drained is None:
                    drained = on_delivery_loop(queue.remaining()) == (0, 0)
                why = dead_consumer(state, beat, time.monotonic() - since[i][1] if i in since else 0.0,
                                    bool(drained), dead_after_s)
                if why is not None:
                    state = Crashed(message=why)
                    client.set_flow_run_state(runs[i].id, state, force=True)  # nobody else is left to say so
                if state is not None and state.is_final():
                    finals[i] = state
                    pending.discard(i)
                    if not (state.is_completed() or state.is_cancelled()):
                        _lost_consumer(runs[i].name, state, pending, queue, cancel, run_log)
            seen = board.destinations(fields)
            for index, (handled, http_429, rate, sent) in board.live(fields).items():
                progress.set_chunk(index, handled, http_429, rate, seen.get(index, ()), sent)
            if pending:
                time.sleep(POLL_S)
    except BaseException:  # this run is being stopped (its worker's SIGTERM on Cancel): children stop too
        if not cancelled_children:
            _stop_consumers(client, runs, pending, queue)
        raise
    return finals


def _lost_consumer(name: str, state, others: set[int], queue: ChunkQueue, cancel: threading.Event, run_log) -> None:
    waiting, leased = on_delivery_loop(queue.remaining())
    if state.is_crashed() and others:
        run_log.warning("consumer run %s ended %s (%s); %d chunk(s) waiting, %d leased: the other consumers take "
                        "its chunk when its lease expires", name, state.name, state.message, waiting, leased)
    elif state.is_crashed() and (waiting or leased) and not cancel.is_set():
        raise DeliveryError(f"consumer run {name} ended {state.name} ({state.message}) and no consumer is left for "
                            f"{waiting + leased} chunk(s); run the job again to resume")
