"""``csv-merger sink``: run the local Clay-like webhook target (csv_merger/sink.py)."""

from __future__ import annotations

from typing import Optional

import typer

from csv_merger.cli.app import app


@app.command()
def sink(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8787, min=0, max=65535, help="TCP port to listen on (0: any free one)."),
    rate: Optional[float] = typer.Option(None, help="Token bucket rate in requests/s (default: unlimited)."),
    burst: Optional[int] = typer.Option(None, help="Token bucket size in requests (default: the rate)."),
    rate_after: Optional[str] = typer.Option(
        None, help='Change the bucket\'s rate after N accepted requests: "N:RATE[,M:RATE2]", e.g. "300:5,600:10".'
    ),
    latency_ms: float = typer.Option(0.0, help="Delay before every answer, in milliseconds."),
    fail_every: Optional[int] = typer.Option(None, help="Answer --fail-status to every Nth request."),
    fail_rate: Optional[float] = typer.Option(None, help="Answer --fail-status to this random fraction."),
    fail_status: int = typer.Option(503, help="Status of injected failures."),
    status: int = typer.Option(200, help="Status of accepted requests (e.g. 202, 204)."),
    record: Optional[str] = typer.Option(None, help="Append each accepted request to this JSON-lines file."),
    throttle_at: Optional[int] = typer.Option(
        None, help="After this many accepted requests, answer 429 for --throttle-for seconds."
    ),
    throttle_for: float = typer.Option(3.0, help="Length of the --throttle-at window in seconds."),
    outage_at: Optional[int] = typer.Option(
        None, help="After this many accepted requests, answer --fail-status to every request for --outage-for seconds."
    ),
    outage_for: float = typer.Option(30.0, help="Length of the --outage-at window in seconds."),
    reject_field: Optional[str] = typer.Option(
        None, help='Answer --reject-status to bodies holding this field value, e.g. "Work Email=bad@x.com".'
    ),
    reject_status: int = typer.Option(400, help="Status for --reject-field matches."),
    auth_token: Optional[str] = typer.Option(
        None, envvar="SINK_AUTH_TOKEN", help="Require this x-clay-webhook-auth value (401 otherwise)."
    ),
    seed: Optional[int] = typer.Option(None, help="Random seed for --fail-rate."),
) -> None:
    """Local Clay-like webhook target: 429 + Retry-After above the rate, GET /stats for counts."""
    from csv_merger.sink import SinkConfig, serve

    config = SinkConfig(
        rate=rate, burst=burst, rate_after=rate_after, latency_ms=latency_ms, fail_every=fail_every, fail_rate=fail_rate,
        fail_status=fail_status, status=status, record=record, throttle_at=throttle_at,
        throttle_for=throttle_for, outage_at=outage_at, outage_for=outage_for, reject_field=reject_field,
        reject_status=reject_status,
        auth_token=auth_token, seed=seed,
    )
    stats = serve(config, host=host, port=port)
    print(f"sink stopped: {stats.accepted} accepted, {stats.rejected_429} answered 429, "
          f"{stats.failed_injected} injected failures", flush=True)
