"""Deployments, work queues and alerts on a real `prefect server start`.

- ``csv-merger setup`` and a plain ``prefect --no-prompt deploy --all`` give
  the same deployments (prefect.yaml is the single declaration): schedule
  timezone, work pool and queue, job variables, pull steps, tags;
- queues by priority: interactive (UI, web page, API) before batch (nightly);
- alerts: a failed run, a job with dead letters and an empty nightly inbox
  each reach the notification webhook (a real sink on 127.0.0.1), their text
  carrying the job's counts from our events.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from csv_merger.testing import PrefectServer

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    try:
        srv = PrefectServer(tmp_path_factory.mktemp("prefect"))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield srv
    srv.stop()


def _run(args: list[str], env: dict, timeout: float = 180) -> subprocess.CompletedProcess:
    done = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _snapshot(env: dict) -> dict:
    """What a deployment is, per name: everything prefect.yaml declares."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}), get_client(sync_client=True) as c:
        queues = {q.id: (q.name, q.priority) for q in c.read_work_queues(work_pool_name=env["WORK_POOL"])}
        return {d.name: dict(pool=d.work_pool_name, queue=d.work_queue_name, queue_priority=queues[d.work_queue_id][1],
                             job_variables=d.job_variables, pull_steps=d.pull_steps, tags=sorted(d.tags),
                             entrypoint=d.entrypoint, description=d.description,
                             limit=d.global_concurrency_limit.limit if d.global_concurrency_limit else None,
                             schedules=[(s.schedule.cron, s.schedule.timezone, s.active) for s in d.schedules])
                for d in c.read_deployments() if d.work_pool_name == env["WORK_POOL"]}


def _delete_deployments(env: dict) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}), get_client(sync_client=True) as c:
        for d in c.read_deployments():
            c.delete_deployment(d.id)


@pytest.mark.slow
def test_setup_and_prefect_deploy_give_the_same_deployments(server, redis_url):
    env = {**server.env, "WORK_POOL": "same-both-ways", "CSV_MERGER_TIMEZONE": "Europe/Berlin",
           "REDIS_URL": redis_url, "WORKER_COUNT": "3"}
    setup = _run([sys.executable, "-m", "deployments.setup"], env)
    assert "queues interactive, default, batch" in setup.stdout and "blocks: csv-merger-redis" in setup.stdout
    by_setup = _snapshot(env)
    _delete_deployments(env)
    plain = {k: v for k, v in env.items() if k not in ("CSV_MERGER_TIMEZONE", "REDIS_URL", "WORKER_COUNT")}
    _run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"], plain)  # as a user would, no settings
    assert _snapshot(env) == by_setup

    nightly, job, chunk = by_setup["nightly-inbox"], by_setup["merge-and-deliver"], by_setup["deliver-consumer"]
    assert nightly["schedules"] == [("0 2 * * *", "Europe/Berlin", True)] and nightly["limit"] == 1
    assert (job["queue"], chunk["queue"], nightly["queue"]) == ("interactive", "interactive", "batch")
    assert job["queue_priority"] < nightly["queue_priority"]  # lower runs first
    assert job["job_variables"]["env"]["CSV_MERGER_REDIS_BLOCK"] == "csv-merger-redis"
    step = job["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]
    assert step["directory"] == "{{ prefect.variables.csv_merger_app_dir }}"  # resolved when a worker runs it


def _alerts(sink, n: int, timeout: float = 90) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        texts = [r["body"]["text"] for r in sink.records()]
        if len(texts) >= n:
            return texts
        time.sleep(0.5)
    raise AssertionError(f"{n} alerts expected within {timeout} s, got {sink.records()}")


@pytest.mark.slow
def test_alerts_reach_the_notification_webhook(server, sink_factory, tmp_path):
    alert_sink, refusing = sink_factory(), sink_factory(status=422)
    env = {**server.env, "WORK_POOL": "alerts", "CSV_MERGER_ALERT_WEBHOOK_URL": alert_sink.url,
           "CSV_MERGER_DATA_DIR": str(tmp_path / "data")}
    setup = _run([sys.executable, "-m", "deployments.setup"], env)
    assert "alerts: csv-merger: run failed or crashed, csv-merger: dead letters, csv-merger: inbox empty" in setup.stdout
    assert alert_sink.url not in setup.stdout + setup.stderr  # the webhook URL is a credential

    (tmp_path / "inbox").mkdir()
    _run([sys.executable, "-c", "from flows.nightly_inbox import nightly_inbox; nightly_inbox()"],
         {**env, "CSV_MERGER_INBOX_DIR": str(tmp_path / "inbox")})
    texts = _alerts(alert_sink, 1)
    assert texts[0].startswith("csv-merger: nightly inbox found no file") and str(tmp_path / "inbox") in texts[0]

    failed = subprocess.run([sys.executable, "-m", "csv_merger", "run", str(REPO / "examples" / "apollo_export.csv"),
                             "--webhook-url", refusing.url, "--allow-private-targets",
                             "--output-dir", str(tmp_path / "out")],
                            env=env, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert failed.returncode == 3, failed.stderr
    texts = _alerts(alert_sink, 3)
    dead = next(t for t in texts if "has dead letters" in t)
    assert "40 of 40 rows could not be delivered (0 delivered)" in dead
    assert any(t.startswith("csv-merger: flow run ") and "Failed" in t and "40 of 40 rows dead-lettered" in t
               for t in texts)
