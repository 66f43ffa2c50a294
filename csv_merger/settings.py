"""One settings object, read from the environment (and a ``.env`` file).

Every field has a documented default; the README's configuration table is
generated from the same descriptions. Standard deployment variables keep
their usual names (``REDIS_URL``, ``WORKER_COUNT``, ``WORK_POOL``, ``PORT``,
``CLAY_WEBHOOK_AUTH``); the tool's own settings use the ``CSV_MERGER_``
prefix (e.g. ``CSV_MERGER_RATE_LIMIT=10``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from csv_merger.errors import ConfigError


def _env(name: str) -> AliasChoices:
    """Accept both the plain name and the ``CSV_MERGER_`` prefixed one."""
    return AliasChoices(name, f"CSV_MERGER_{name}")


class Settings(BaseSettings):
    """Runtime configuration. Units are in the field names or descriptions."""

    model_config = SettingsConfigDict(
        env_prefix="CSV_MERGER_", env_file=".env", extra="ignore", populate_by_name=True
    )

    # Shared state
    redis_url: str | None = Field(
        None,
        validation_alias=_env("REDIS_URL"),
        description="Redis for the shared rate limit, ledger and chunks. Unset: in-process limiter and local files.",
    )
    data_dir: Path = Field(
        Path(".csv-merger"),
        description="Local folder for ledgers, chunks, merged and dead-letter files when Redis is not used.",
    )
    mappings_dir: Path | None = Field(None, description="Folder of saved mapping presets (`csv-merger mappings save`); unset: `<data_dir>/mappings`.")
    chunk_ttl_s: int = Field(48 * 3600, description="Seconds persisted chunks, uploads and outputs are kept (48 h).")

    # Delivery defaults (Clay facts: BRIEF.md, 'Clay facts')
    rate_limit: float = Field(10.0, description="Requests per second per limit key (Clay webhook source: 10/s per workspace).")
    burst: int = Field(20, description="Burst size in requests (Clay: 20).")
    learned_rate_ttl_s: int = Field(24 * 3600, description="Seconds the rate learned for a limit key (below `rate_limit` when others share the target's limit) is remembered; the next job starts near it (24 h).")
    concurrency: int = Field(8, description="Requests in flight per process.")
    max_attempts: int = Field(6, description="Attempts per row before it is dead-lettered.")
    retry_budget_s: float = Field(300.0, description="Seconds one row may spend retrying before it is dead-lettered.")
    outage_budget_s: float = Field(
        600.0, gt=0, description="Seconds a target outage (every recent request failing with 5xx or no answer) may "
        "last: delivery pauses and probes meanwhile, then dead-letters the rows that still fail.")
    unreachable_stop_s: float = Field(
        60.0, gt=0, description="Seconds a delivery goes on while every request so far failed to connect (connection "
        "refused: a wrong host or port); then it stops, sends nothing more and exits 5. Off once the target answered.")
    payload_limit_bytes: int = Field(100_000, description="Largest JSON body sent, in bytes (Clay: 100 KB per record).")
    row_ceiling: int = Field(50_000, description="Submissions a webhook accepts in its lifetime, counted across jobs (Clay: 50,000); 0 = unlimited (passthrough tables).")
    index_key: SecretStr | None = Field(
        None, description="Key of the keyed hashes in the index of leads already sent to each destination "
                          "(unset: one is made once and kept beside the index).")
    connect_timeout_s: float = Field(5.0, description="HTTP connect timeout, seconds.")
    read_timeout_s: float = Field(30.0, description="HTTP read timeout, seconds.")
    clay_webhook_auth: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("CLAY_WEBHOOK_AUTH", "CSV_MERGER_CLAY_WEBHOOK_AUTH"),
        description="Token sent as x-clay-webhook-auth. Never printed or logged.",
    )

    # Pipeline and scaling
    chunk_size: int = Field(500, description="Rows per delivery chunk: the unit of progress, of a lease and of a retry.")
    worker_count: int = Field(2, validation_alias=_env("WORKER_COUNT"), description="Work pool concurrency limit: how many deliver-consumer flow runs (fan-out consumers) at once.")
    work_pool: str = Field("csv-merger", validation_alias=_env("WORK_POOL"), description="Prefect work pool name.")
    chunk_concurrency: int = Field(4, description="Delivery consumers one flow run starts (task threads, each pulling chunk after chunk); the total rate stays the limiter's.")
    lease_s: float = Field(30.0, gt=0, description="Seconds a consumer's lease on a chunk lasts without renewal (renewed every third): after a consumer dies, another takes its chunk this much later.")
    redis_block: str | None = Field(None, description="Name of a prefect-redis RedisDatabase block to use when REDIS_URL is unset.")
    auth_block: str | None = Field(None, description="Name of a Prefect Secret block holding the webhook auth token (instead of CLAY_WEBHOOK_AUTH).")
    webhook_url: str | None = Field(
        None,
        validation_alias=AliasChoices("CLAY_WEBHOOK_URL", "CSV_MERGER_WEBHOOK_URL"),
        description="Webhook the scheduled nightly-inbox run delivers to (unset: it only merges).",
    )
    inbox_dir: Path = Field(Path("inbox"), description="Folder the nightly-inbox flow takes *.csv from; files move to processed/ or failed/ inside it.")
    alert_webhook_url: SecretStr | None = Field(
        None, description="Webhook (e.g. a Slack incoming webhook) that `csv-merger setup` makes the alert target: "
                          'it receives {"text": ...} when a run fails, ends with dead letters or an inbox run finds nothing.')
    alert_block: str | None = Field(
        None, description="Name of an existing Prefect notification block (e.g. e-mail) for the alerts, instead of a webhook.")

    # Web service
    host: str = Field("127.0.0.1", description="Address `csv-merger web` binds to.")
    port: int = Field(8000, validation_alias=_env("PORT"), description="Port `csv-merger web` listens on.")
    api_token: SecretStr | None = Field(None, description="Token required by the web API when it binds beyond loopback.")
    upload_limit_bytes: int = Field(200 * 1024 * 1024, description="Largest upload accepted by the web page, bytes.")
    delivery_window: str = Field("22:00-06:00", description="Off-hours window (HH:MM-HH:MM) for scheduled runs.")
    phone_region: str = Field("US", pattern=r"^[A-Za-z]{2}$", description="Country (ISO 3166 alpha-2) of phone numbers written without a country code; phones are compared by their E.164 form.")
    phone_e164_column: bool = Field(False, description="Add a `Phone Number (E.164)` column (`Company Phone (E.164)` for companies) holding each phone's E.164 form.")
    timezone: str = Field("UTC", description="IANA timezone of the delivery window and the nightly schedule.")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment.

    Raises ConfigError naming the variable and the reason when a value is invalid.
    """
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{_variable(error['loc'])}: {error['msg']}" for error in exc.errors(include_url=False))
        raise ConfigError(f"invalid setting: {problems}") from None


def _variable(loc: tuple) -> str:
    """The environment variable behind a validation error location: pydantic
    reports an alias (``PORT``) as it is, a prefixed field by its field name."""
    name = str(loc[0]) if loc else "?"
    return f"CSV_MERGER_{name.upper()}" if name in Settings.model_fields else name


# Read by Prefect once, when it is first imported: set before that (the user's environment wins).
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # no telemetry from machines that often have no internet
    "DO_NOT_TRACK": "1",
    # Prefect's default (20 s) is too short for its ephemeral API on a loaded 2-core machine.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}


def set_prefect_defaults() -> None:
    """Put :data:`PREFECT_DEFAULTS` into ``os.environ`` where the variable is unset.
    Call before the first ``import prefect``; later calls change nothing Prefect reads."""
    import os

    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)
