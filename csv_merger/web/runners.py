"""Where a web job's flow run happens, and how its progress is followed.

- ``EmbeddedRunner`` (no Prefect API configured): creates a flow run of
  ``merge_and_deliver`` on Prefect's ephemeral API and executes it in a
  background thread of this process (``prefect.flow_engine.run_flow``); an
  off-hours job waits in that thread until its start time.
- ``DeploymentRunner`` (``PREFECT_API_URL`` set): creates a flow run of the
  ``merge-and-deliver`` deployment (``run_deployment``, scheduled for the
  window start when off-hours) and follows its state; a worker runs it.
  Workers must see this server's data folder (same machine or a shared
  volume): the job's inputs and outputs live there.

Both cancel through the API (state Cancelling; the flow's cancellation
watcher stops sending within a second) and follow progress from what the
flow leaves behind while it runs: ``merge-report.json`` (rows to deliver),
the job's delivery ledger (rows delivered), the per-chunk dead-letter files
(rows failed) and, at the end, ``summary.json`` (every count, 429s too).
The webhook auth token goes into a Prefect Secret block named after the job
(passed as ``auth_token_block``), deleted when the job ends.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from datetime import datetime, timezone
from typing import Protocol

from csv_merger.errors import ConfigError, CsvMergerError
from csv_merger.web.flow_request import FlowRequest
from csv_merger.web.jobs import JobStatus, JobStore
from csv_merger.web.progress import POLL_S, ProgressProbe, follow, record_outcome

log = logging.getLogger("csv_merger.web")

DEPLOYMENT = "merge-and-deliver/merge-and-deliver"
API_START_TIMEOUT_S = 120.0  # Prefect's ephemeral API takes a few seconds to start on a busy machine


class Runner(Protocol):
    name: str

    def prepare(self) -> None: ...
    def start(self, request: FlowRequest) -> None: ...
    def cancel(self, job_id: str) -> None: ...
    def close(self) -> None: ...


def prefect_api_url_setting() -> str | None:
    """Prefect's configured API URL (``PREFECT_API_URL`` or the active profile), or None."""
    from prefect.settings import get_current_settings

    return get_current_settings().api.url or None


def make_runner(store: JobStore, prefect_api_url: str | None, deployment: str = DEPLOYMENT) -> Runner:
    """``DeploymentRunner`` (runs of ``deployment``, "flow/deployment") when a Prefect API is
    configured, else ``EmbeddedRunner``."""
    return DeploymentRunner(store, deployment) if prefect_api_url else EmbeddedRunner(store)


# ---------------------------------------------------------------- embedded


class EmbeddedRunner:
    """Runs each job's flow run in a thread of this process (Prefect's ephemeral API)."""

    name = "embedded"

    def __init__(self, store: JobStore):
        self.store = store
        self._threads: dict[str, threading.Thread] = {}
        self._wake: dict[str, threading.Event] = {}
        self._flow_runs: dict[str, str] = {}
        self._api_ready: threading.Event | None = None  # set once the Prefect API answered
        self._owns_api = False  # this runner started Prefect's ephemeral API (and stops it)
        self._closing = threading.Event()

    def prepare(self) -> None:
        """Start Prefect's (ephemeral) API in the background, once: a job is probably coming."""
        if self._api_ready is None:
            from prefect.server.api.server import SubprocessASGIServer

            # Only an API this runner starts is this runner's to stop (a test harness shares the singleton).
            self._owns_api = SubprocessASGIServer().server_process is None
            self._api_ready = threading.Event()
            _thread(_warm_up, self._api_ready, self._closing, name="prefect-warm-up").start()

    def start(self, request: FlowRequest) -> None:
        self.prepare()
        wake = threading.Event()
        thread = _thread(self._run, request, wake, name=f"job-{request.job_id}")
        self._wake[request.job_id] = wake
        self._threads[request.job_id] = thread
        thread.start()

    def _run(self, request: FlowRequest, wake: threading.Event) -> None:
        from prefect.client.orchestration import get_client
        from prefect.flow_engine import run_flow
        from prefect.states import Scheduled
        from prefect.utilities.urls import url_for

        from flows.merge_and_deliver import merge_and_deliver, summary_of

        job_id = request.job_id
        probe = ProgressProbe(request)
        self._api_ready.wait(API_START_TIMEOUT_S)
        try:
            with get_client(sync_client=True) as client:
                _save_secret(request)
                when = datetime.fromtimestamp(request.scheduled_for or time.time(), timezone.utc)
                flow_run = client.create_flow_run(
                    merge_and_deliver, name=f"web-{job_id}", parameters=request.parameters(),
                    tags=["csv-merger-web"], state=Scheduled(scheduled_time=when) if request.scheduled_for else None)
            self._flow_runs[job_id] = str(flow_run.id)
            self.store.update(job_id, flow_run_id=str(flow_run.id), flow_run_url=url_for(flow_run))
            if request.scheduled_for:
                wake.wait(max(0.0, request.scheduled_for - time.time()))
            if self.store.get(job_id).cancel_requested:
                self._set_api_state(job_id, cancelled=True)
                record_outcome(self.store, request, probe, JobStatus.CANCELLED)
                return
            self.store.set_status(job_id, JobStatus.RUNNING)
            done = threading.Event()
            follower = _thread(follow, self.store, probe, job_id, done, name=f"follow-{job_id}")
            follower.start()
            try:
                state = run_flow(merge_and_deliver, flow_run=flow_run, parameters=request.parameters(),
                                 return_type="state")
            finally:
                done.set()
                follower.join(timeout=5)
            try:
                summary = summary_of(state)
            except CsvMergerError as exc:
                record_outcome(self.store, request, probe, JobStatus.FAILED, error=str(exc))
                return
            status = {"Completed": JobStatus.COMPLETED, "Cancelled": JobStatus.CANCELLED}.get(
                summary.state, JobStatus.FAILED)
            error = None
            if status is JobStatus.FAILED and summary.delivery:
                error = f"{summary.delivery.failed} rows could not be delivered: see the dead-letter CSV"
            record_outcome(self.store, request, probe, status, error=error)
        except Exception as exc:  # unexpected: keep the server up, show the reason on the job
            log.exception("job %s failed", job_id)
            record_outcome(self.store, request, probe, JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        finally:
            _delete_secret(request)

    def cancel(self, job_id: str) -> None:
        wake = self._wake.get(job_id)
        if wake is not None:
            wake.set()  # a job waiting for its window stops waiting
        self._set_api_state(job_id, cancelled=False)

    def _set_api_state(self, job_id: str, *, cancelled: bool) -> None:
        flow_run_id = self._flow_runs.get(job_id)
        if flow_run_id is None:
            return
        _set_flow_run_cancel(flow_run_id, cancelled)

    def close(self) -> None:
        """Cancel unfinished jobs, then stop Prefect's ephemeral API.

        uvicorn re-raises SIGTERM/SIGINT once it has shut down, so the process
        dies by the signal and Prefect's own atexit stop never runs: without
        this the API's server process would outlive ``csv-merger web``.
        """
        for job in self.store.list():
            if not job.status.terminal:
                self.store.request_cancel(job.id)
                self.cancel(job.id)
        owned = self._api_ready is not None and self._owns_api
        if owned:
            self._closing.set()
            _cut_start_short(self._api_ready)
        for thread in self._threads.values():
            thread.join(timeout=5)
        if owned:
            from prefect.server.api.server import SubprocessASGIServer

            SubprocessASGIServer().stop()  # the ephemeral API's singleton; no-op if never started


def _warm_up(ready: threading.Event, closing: threading.Event) -> None:
    """Start Prefect's ephemeral API now, so the first job does not wait for it."""
    try:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            client.hello()
    except Exception as exc:
        if not closing.is_set():  # a start cut short by ``close`` is expected
            log.warning("Prefect API not reachable yet: %s", exc)
    finally:
        ready.set()


def _cut_start_short(ready: threading.Event) -> None:
    """Stop the ephemeral API's server process while ``_warm_up`` still waits for it to answer:
    Prefect would wait up to its startup timeout (90 s here) before ``stop`` could run, far past
    the 10 s a ``docker stop`` grants. Returns once the warm-up has ended."""
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    deadline = time.monotonic() + API_START_TIMEOUT_S
    while not ready.wait(0.05) and time.monotonic() < deadline:
        if server.server_process is not None:  # started: stopping it ends the start's wait with an error
            server.stop()


# ---------------------------------------------------------------- deployment


class DeploymentRunner:
    """Creates flow runs of the ``merge-and-deliver`` deployment and follows them."""

    name = "prefect"

    def __init__(self, store: JobStore, deployment: str = DEPLOYMENT):
        self.store, self.deployment = store, deployment
        self._threads: dict[str, threading.Thread] = {}
        self._stop = threading.Event()

    def start(self, request: FlowRequest) -> None:
        from prefect.deployments import run_deployment
        from prefect.exceptions import ObjectNotFound
        from prefect.utilities.urls import url_for

        when = datetime.fromtimestamp(request.scheduled_for, timezone.utc) if request.scheduled_for else None
        try:
            _save_secret(request)
            flow_run = run_deployment(self.deployment, parameters=request.parameters(), scheduled_time=when,
                                      timeout=0, as_subflow=False, flow_run_name=f"web-{request.job_id}",
                                      tags=["csv-merger-web"])
        except ObjectNotFound:
            _delete_secret(request)
            raise ConfigError(f"Prefect deployment {self.deployment!r} not found: apply the deployments first "
                              "(csv-merger setup)") from None
        except Exception as exc:  # the API is down or refused the run: say so, keep the server up
            _delete_secret(request)
            raise ConfigError(f"the Prefect API did not create the flow run: {type(exc).__name__}: {exc}") from None
        self.store.update(request.job_id, flow_run_id=str(flow_run.id), flow_run_url=url_for(flow_run))
        thread = _thread(self._watch, request, str(flow_run.id), name=f"watch-{request.job_id}")
        self._threads[request.job_id] = thread
        thread.start()

    def _watch(self, request: FlowRequest, flow_run_id: str) -> None:
        from prefect.client.orchestration import get_client

        probe = ProgressProbe(request)
        try:
            with get_client(sync_client=True) as client:
                while not self._stop.wait(POLL_S):
                    try:
                        state = client.read_flow_run(flow_run_id).state
                    except Exception as exc:  # the API restarting must not lose the job
                        log.warning("job %s: flow run not readable: %s", request.job_id, exc)
                        continue
                    if state is None:
                        continue
                    if state.is_final():
                        status = (JobStatus.COMPLETED if state.is_completed() else
                                  JobStatus.CANCELLED if state.is_cancelled() else JobStatus.FAILED)
                        error = None if status is not JobStatus.FAILED else (state.message or state.name)
                        record_outcome(self.store, request, probe, status, error=error)
                        return
                    if state.is_running() or state.is_cancelling():
                        self.store.set_status(request.job_id, JobStatus.RUNNING)
                        if (counts := probe.counts()) is not None:
                            self.store.progress(request.job_id, counts)
        finally:
            _delete_secret(request)

    def prepare(self) -> None:
        """Nothing to start: the Prefect API runs elsewhere."""

    def cancel(self, job_id: str) -> None:
        job = self.store.get(job_id)
        if job is not None and job.flow_run_id:
            _set_flow_run_cancel(job.flow_run_id, cancelled=job.started_at is None)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads.values():
            thread.join(timeout=5)


# ---------------------------------------------------------------- helpers


def _thread(target, *args, name: str) -> threading.Thread:
    """A daemon thread running in a copy of the caller's context (same Prefect settings)."""
    ctx = contextvars.copy_context()
    return threading.Thread(target=ctx.run, args=(target, *args), daemon=True, name=name)



def _set_flow_run_cancel(flow_run_id: str, cancelled: bool) -> None:
    """Move a flow run to Cancelling (running) or Cancelled (not started)."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled, Cancelling

    state = Cancelled(message="cancelled from the web page") if cancelled else Cancelling(
        message="cancelled from the web page")
    try:
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(flow_run_id, state, force=True)
    except Exception as exc:
        log.warning("flow run %s: cancel not recorded in the API: %s", flow_run_id, exc)


def _save_secret(request: FlowRequest) -> None:
    """Store the webhook token in a Secret block named after the job (the flow loads it by name)."""
    if request.auth_token:
        from prefect.blocks.system import Secret

        Secret(value=request.auth_token).save(request.secret_block, overwrite=True)


def _delete_secret(request: FlowRequest) -> None:
    """Remove the job's Secret block (if any); a failure is logged, the job's outcome stands."""
    if request.auth_token:
        from prefect.blocks.system import Secret

        try:
            Secret.delete(request.secret_block)
        except Exception as exc:
            log.warning("secret block %s not deleted: %s", request.secret_block, exc)
