"""One command to prepare a Prefect server (or Cloud workspace) for csv-merger.

``python -m deployments.setup`` (or ``csv-merger setup``), against the API in
``PREFECT_API_URL``:

1. creates or updates the process work pool ``WORK_POOL`` with concurrency
   limit ``WORKER_COUNT`` (how many flow runs, e.g. fan-out chunks, run at
   once across all workers: the old system's worker count), and its work
   queues by priority: ``interactive`` (runs started from the UI, the web
   page or the API) before ``default`` before ``batch`` (the nightly inbox);
2. registers the blocks: a prefect-redis ``RedisDatabase`` from ``REDIS_URL``
   and a ``Secret`` from ``CLAY_WEBHOOK_AUTH`` (each only when set), and the
   alert automations when an alert target is set (deployments/alerts.py);
3. stores what ``prefect.yaml`` refers to as Prefect Variables
   (``csv_merger_work_pool``, ``csv_merger_timezone``, ``csv_merger_app_dir``,
   ``csv_merger_redis_block``, ``csv_merger_auth_block``), then runs
   ``prefect --no-prompt deploy --all`` on ``prefect.yaml``: the one
   declaration of the deployments, so running that deploy yourself gives the
   same deployments.

Idempotent: run it again after changing a setting.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from csv_merger.errors import ConfigError
from csv_merger.settings import get_settings
from deployments.alerts import apply_alerts

REPO = Path(__file__).resolve().parent.parent
REDIS_BLOCK = "csv-merger-redis"
AUTH_BLOCK = "clay-webhook-auth"
WORK_QUEUES = {"interactive": 1, "default": 2, "batch": 3}
"""Work queue -> priority (1 runs first); prefect.yaml puts each deployment on one."""


def ensure_work_pool(name: str, concurrency_limit: int) -> None:
    """Create the process work pool, or set the concurrency limit of the existing one;
    then give its queues the priorities of ``WORK_QUEUES``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    if concurrency_limit < 1:
        raise ConfigError(f"WORKER_COUNT must be at least 1, got {concurrency_limit}")
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(
                name=name, type="process", concurrency_limit=concurrency_limit,
                base_job_template=ProcessWorker.get_default_base_job_template()))
        else:
            client.update_work_pool(name, WorkPoolUpdate(concurrency_limit=concurrency_limit))
        for queue, priority in WORK_QUEUES.items():
            try:
                client.update_work_queue(client.read_work_queue_by_name(queue, work_pool_name=name).id,
                                         priority=priority)
            except ObjectNotFound:
                client.create_work_queue(queue, work_pool_name=name, priority=priority)


def register_blocks() -> dict[str, str]:
    """Save the Redis and auth-token blocks that the environment defines; return
    {"redis": name, "auth": name} for those saved."""
    settings = get_settings()
    saved = {}
    if settings.redis_url:
        from prefect_redis import RedisDatabase

        RedisDatabase.from_connection_string(settings.redis_url).save(REDIS_BLOCK, overwrite=True)
        saved["redis"] = REDIS_BLOCK
    if settings.clay_webhook_auth:
        from prefect.blocks.system import Secret

        Secret(value=settings.clay_webhook_auth.get_secret_value()).save(AUTH_BLOCK, overwrite=True)
        saved["auth"] = AUTH_BLOCK
    return saved


def set_variables(blocks: dict[str, str]) -> dict[str, str]:
    """Store the values prefect.yaml refers to as Prefect Variables; return them."""
    from prefect.variables import Variable

    settings = get_settings()
    values = {"csv_merger_work_pool": settings.work_pool, "csv_merger_timezone": settings.timezone,
              "csv_merger_app_dir": str(REPO), "csv_merger_redis_block": blocks.get("redis", ""),
              "csv_merger_auth_block": blocks.get("auth", "")}
    for name, value in values.items():
        Variable.set(name, value, overwrite=True)
    return values


def deploy() -> None:
    """``prefect --no-prompt deploy --all`` on prefect.yaml, in the repository folder.
    Raises ConfigError with the end of Prefect's output when it fails."""
    done = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise ConfigError(f"prefect deploy failed (exit {done.returncode}):\n{tail}")


def deployment_names() -> list[str]:
    """``flow/deployment`` names of the deployments prefect.yaml declares, as the API has them."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        flows = {f.id: f.name for f in client.read_flows()}
        return sorted(f"{flows[d.flow_id]}/{d.name}" for d in client.read_deployments() if d.flow_id in flows)


def main() -> int:
    """Run the three steps for the current settings; print what was done."""
    settings = get_settings()
    ensure_work_pool(settings.work_pool, settings.worker_count)
    print(f"work pool {settings.work_pool!r}: process, concurrency limit {settings.worker_count}, "
          f"queues {', '.join(WORK_QUEUES)} (in priority order)")
    blocks = register_blocks()
    print("blocks: " + (", ".join(sorted(blocks.values())) or "none (REDIS_URL and CLAY_WEBHOOK_AUTH unset)"))
    alerts = apply_alerts()
    print("alerts: " + (", ".join(alerts) if alerts else
                        "none (set CSV_MERGER_ALERT_WEBHOOK_URL or CSV_MERGER_ALERT_BLOCK)"))
    set_variables(blocks)
    deploy()
    for name in deployment_names():
        print(f"deployment {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
