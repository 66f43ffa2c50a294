"""What a web job asks of its flow run."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FlowRequest:
    """One job's flow parameters plus what the runner needs around them.

    ``payload``: "flat", "seed" or a template path. ``rate_limit`` in
    requests/s, ``burst`` in requests, ``chunk_size`` in
    rows, ``scheduled_for`` Unix seconds (None = now). ``auth_token`` is kept
    out of repr and never stored beyond the Secret block. ``ledger_id`` is
    the delivery ledger's key (the flow's ``job_id``): the same for every
    web job with the same uploads, target and mapping, so starting such a
    job again resumes (rows already delivered are skipped).
    """

    job_id: str
    ledger_id: str
    files: list[str]
    output_dir: str
    webhook_url: str | list[str] | None  # several: destinations in rollover order
    table_type: str
    rate_limit: float
    burst: int
    chunk_size: int
    mapping: dict[str, str] | None
    redis_url: str | None
    allow_private_targets: bool
    data_dir: str
    payload: str = "flat"
    auth_token: str | None = field(default=None, repr=False)
    scheduled_for: float | None = None
    dry_run: bool = False  # everything but the POSTs: the flow's summary carries the plan

    @property
    def secret_block(self) -> str | None:
        return f"csv-merger-web-auth-{self.job_id}" if self.auth_token else None

    def parameters(self) -> dict:
        """Keyword arguments of ``flows.merge_and_deliver.merge_and_deliver``. No secret: the Redis
        URL only when it holds no password (else the run resolves ``REDIS_URL`` or the Redis
        block itself), the auth token as the name of its Secret block."""
        from csv_merger.safety import shareable_redis_url

        return dict(
            files=self.files, webhook_url=self.webhook_url, table_type=self.table_type,
            rate_limit=self.rate_limit, burst=self.burst, chunk_size=self.chunk_size, mapping=self.mapping,
            payload=self.payload, job_id=self.ledger_id, redis_url=shareable_redis_url(self.redis_url),
            output_dir=self.output_dir,
            allow_private_targets=self.allow_private_targets, auth_token_block=self.secret_block,
            dry_run=self.dry_run,
        )
