"""One command to prepare a Prefect server (or Cloud workspace) for csv-merger.

``python -m deployments.setup`` (or ``csv-merger setup``), against the API in
``PREFECT_API_URL``:

1. creates or updates the process work pool ``WORK_POOL`` with concurrency
   limit ``WORKER_COUNT`` (how many flow runs, e.g. fan-out chunks, run at
   once across all workers: the old system's worker count);
2. registers the blocks: a prefect-redis ``RedisDatabase`` from ``REDIS_URL``
   and a ``Secret`` from ``CLAY_WEBHOOK_AUTH`` (each only when set);
3. applies the deployments declared in ``prefect.yaml`` to that pool; their
   runs start in this repository's folder (``/app`` in the Docker image),
   with the block names in their environment.

Idempotent: run it again after changing a setting.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import yaml

from csv_merger.errors import ConfigError
from csv_merger.settings import get_settings

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "prefect.yaml"
REDIS_BLOCK = "csv-merger-redis"
AUTH_BLOCK = "clay-webhook-auth"


def ensure_work_pool(name: str, concurrency_limit: int) -> None:
    """Create the process work pool, or set the concurrency limit of the existing one."""
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


def register_blocks() -> dict[str, str]:
    """Save the Redis and auth-token blocks that the environment defines; return the
    environment variables that point flow runs at them."""
    settings = get_settings()
    env = {}
    if settings.redis_url:
        from prefect_redis import RedisDatabase

        RedisDatabase.from_connection_string(settings.redis_url).save(REDIS_BLOCK, overwrite=True)
        env["CSV_MERGER_REDIS_BLOCK"] = REDIS_BLOCK
    if settings.clay_webhook_auth:
        from prefect.blocks.system import Secret

        Secret(value=settings.clay_webhook_auth.get_secret_value()).save(AUTH_BLOCK, overwrite=True)
        env["CSV_MERGER_AUTH_BLOCK"] = AUTH_BLOCK
    return env


def _load_flow(entrypoint: str):
    """``flows/merge_and_deliver.py:merge_and_deliver`` -> the flow object."""
    path, _, name = entrypoint.partition(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return getattr(module, name)


def apply_deployments(work_pool: str, env: dict[str, str], spec: Path = SPEC) -> list[str]:
    """Apply every deployment of ``spec`` (prefect.yaml) to ``work_pool``; return their full names.

    Cron schedules run in ``CSV_MERGER_TIMEZONE`` (an IANA name, default UTC).
    """
    from prefect.schedules import Cron

    timezone = get_settings().timezone
    names = []
    for d in yaml.safe_load(spec.read_text(encoding="utf-8"))["deployments"]:
        flow = _load_flow(d["entrypoint"])
        schedules = [Cron(s["cron"], timezone=timezone, active=s.get("active", True))
                     for s in d.get("schedules", [])]
        deployment = flow.to_deployment(
            name=d["name"], description=" ".join(d.get("description", "").split()), tags=d.get("tags"),
            parameters=d.get("parameters"), schedules=schedules, concurrency_limit=d.get("concurrency_limit"),
            work_pool_name=work_pool, job_variables={"working_dir": str(REPO), "env": env})
        deployment.apply()
        names.append(f"{flow.name}/{d['name']}")
    return names


def main() -> int:
    """Run the three steps for the current settings; print what was done."""
    import os

    os.chdir(REPO)  # deployments record entrypoints relative to the repository, where workers run them
    settings = get_settings()
    ensure_work_pool(settings.work_pool, settings.worker_count)
    print(f"work pool {settings.work_pool!r}: process, concurrency limit {settings.worker_count}")
    env = register_blocks()
    print("blocks: " + (", ".join(sorted(env.values())) or "none (REDIS_URL and CLAY_WEBHOOK_AUTH unset)"))
    for name in apply_deployments(settings.work_pool, env):
        print(f"deployment {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
