"""A dry run: everything a delivery would do except the POSTs.

``plan_delivery(rows, config, identities)`` checks the target URLs, opens
the limiter (so a Redis that does not answer fails here as it would in the
run) and the job's ledger, counts the rows a run would skip (leads already
at a destination, suppressed: ``new_leads``), renders and size-checks the
body of every row still to send, reads each destination's count, and
returns a ``DeliveryPlan``: what a real run with the same settings would
send, what it would dead-letter and why, whether it fits under the
destinations' ceilings, the first bodies, and how long it would take at
the configured rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from csv_merger.safety import check_target
from csv_merger.settings import get_settings
from tasks.deliver.job import DeliveryConfig, DestinationUse
from tasks.deliver.ledger import open_ledger
from tasks.deliver.new_leads import SUPPRESSED, Identities, read_suppression, split_new_leads
from tasks.deliver.payloads import PayloadError, check_template, idempotency_key, make_body_builder, oversize_reason
from tasks.deliver.ratelimit import LimitPolicy, default_limit_key, make_limiter
from tasks.deliver.route import open_route

SAMPLE_BODIES = 3


@dataclass
class DeliveryPlan:
    """What a run would do. ``refused``: (row number, reason) of rows it would
    dead-letter without sending; ``samples``: (row number, Idempotency-Key,
    body text) of the first ``SAMPLE_BODIES`` rows it would send;
    ``estimate_s``: seconds to send ``to_send`` rows at ``rate`` requests/s
    after the burst (the target's limit, whatever the number of workers).
    ``already_at_destination`` / ``suppressed``: rows the run would skip
    (``new_leads``); ``destinations``: each destination's count now, in
    rollover order."""

    job_id: str
    limit_key: str
    rows_total: int
    already_delivered: int
    to_send: int
    rate: float
    estimate_s: float
    already_at_destination: int = 0
    suppressed: int = 0
    destinations: list[DestinationUse] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    samples: list[tuple[int, str, str]] = field(default_factory=list)


    @property
    def room(self) -> int | None:
        """Submissions the destinations can still take in all; None when unlimited."""
        if any(not d.ceiling for d in self.destinations):
            return None
        return sum(max(0, d.ceiling - d.used) for d in self.destinations)

    @property
    def fits(self) -> bool:
        """Every row to send fits under the ceilings (else the rest would be dead-lettered as not-sent)."""
        return self.room is None or self.to_send <= self.room


async def plan_delivery(rows: list[tuple[int, dict[str, str]]], config: DeliveryConfig,
                        identities: Identities | None = None) -> DeliveryPlan:
    """The ``DeliveryPlan`` of delivering ``rows`` with ``config`` (``config.job_id`` set);
    ``identities`` as for ``deliver_new_leads`` (None: no lead is counted as already there).

    Raises what a real run raises before its first request: UnsafeTargetError,
    ConfigError (bad setting, template or Redis URL), RedisUnavailableError.
    """
    config.validate()
    for url in config.webhook_urls:
        check_target(url, config.allow_private_targets)
    if config.suppress_path:  # a suppression list a real run would refuse is refused here too
        read_suppression(config.suppress_path)
    skipped = []
    if identities is not None:
        rows, skipped = await split_new_leads(rows, config, identities)
    limit_key = config.limit_key or default_limit_key(config.webhook_url)
    await make_limiter(limit_key, config.rate, config.burst, config.redis_url).aclose()
    settings = get_settings()
    ledger = open_ledger(config.job_id, redis_url=config.redis_url, data_dir=settings.data_dir,
                         ttl_s=settings.chunk_ttl_s)
    try:
        done = await ledger.delivered()
    finally:
        await ledger.aclose()
    build = make_body_builder(config.payload, config.table_type, config.job_id)
    route = open_route(config.webhook_urls, config.row_ceiling, redis_url=config.redis_url, data_dir=settings.data_dir)
    try:
        destinations = await route.counts()
    finally:
        await route.aclose()
    suppressed = sum(reason == SUPPRESSED for *_, reason in skipped)
    plan = DeliveryPlan(job_id=config.job_id, limit_key=limit_key, rows_total=len(rows) + len(skipped),
                        already_delivered=0, to_send=0, rate=config.rate, estimate_s=0.0, suppressed=suppressed,
                        already_at_destination=len(skipped) - suppressed, destinations=destinations)
    for number, record in rows:
        if number in done:
            plan.already_delivered += 1
            continue
        if not plan.to_send and not plan.refused:  # the first row to send: as the real run checks it
            check_template(build, config.payload, number, record)
        try:
            body = build(number, record)
        except PayloadError as exc:
            plan.refused.append((number, exc.reason))
            continue
        if reason := oversize_reason(body, config.payload_limit_bytes):
            plan.refused.append((number, reason))
            continue
        plan.to_send += 1
        if len(plan.samples) < SAMPLE_BODIES:
            plan.samples.append((number, idempotency_key(config.job_id, number), body.decode()))
    burst = LimitPolicy(rate=config.rate, burst=config.burst).effective_burst
    plan.estimate_s = max(0, plan.to_send - burst) / config.rate
    return plan
