"""The delivery engine: every merged row POSTed to a webhook at the target's
rate, at least once, each with its Idempotency-Key. No Prefect import.

Modules: ``session`` (a consumer's client, limiter, stores), ``engine`` (workers, outcomes); the outcome policies besides a
row's own retry (``retry``: which failures are retried, how long to wait):
``ratelimit`` (GCRA, in-process or shared through Redis; the 429 pause),
``outage`` (target down: a circuit breaker shared on the limit key),
``refusal`` (early stop: every row refused alike), ``unreachable`` (early
stop: the target never reached), ``redis_loss`` (Redis
gone mid-run, or back without its data); ``job`` (config and summary),
``payloads`` (JSON bodies), ``ledger`` (rows acknowledged, for resume),
``dead_letter``, ``chunks`` (a job's rows stored for its consumers), ``work_queue``
(the chunks under leases), ``consumer`` (one engine pulling chunk after chunk),
``merged_csv``, ``transport``. The public names are re-exported here.
"""

from tasks.deliver.chunks import ChunkRef, ChunkStore, make_chunk_store, write_chunks
from tasks.deliver.session import DeliverySession, deliver_rows
from tasks.deliver.job import (DeliveryConfig, DeliveryProgress, DeliverySummary, TargetRefusedError, check_job_id,
                              default_job_id)
from tasks.deliver.ledger import open_ledger
from tasks.deliver.merged_csv import read_merged_csv
from tasks.deliver.ratelimit import LimitPolicy, default_limit_key, make_limiter

__all__ = ["ChunkRef", "ChunkStore", "DeliveryConfig", "DeliverySession", "DeliveryProgress", "DeliverySummary", "LimitPolicy",
           "TargetRefusedError", "check_job_id", "default_job_id", "default_limit_key", "deliver_rows",
           "make_chunk_store", "make_limiter", "open_ledger", "read_merged_csv", "write_chunks"]
