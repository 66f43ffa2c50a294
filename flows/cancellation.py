"""Notice that a flow run was cancelled, so delivery stops sending within a second.

A flow called in-process (embedded mode, ``csv-merger run``, tests) has no
worker or runner that could kill it when someone presses Cancel in the
Prefect UI or runs ``prefect flow-run cancel``: the API only moves the run
to Cancelling. ``watch_cancellation`` polls the run's state every
``poll_s`` seconds and sets a ``threading.Event`` that ``deliver_rows``
checks before each new request; the flow then ends in a Cancelled state with
its counts. The same event is set by ``request_local_cancel`` (the CLI's
Ctrl-C handler). Under a worker, Cancel makes the worker send SIGTERM to the
run's process, which Prefect turns into ``TerminationSignal`` in the flow's
main thread, maybe before the next poll: the flow body is then unwound while
the chunk tasks' threads go on. So the event is also set whenever the
``with`` body is left by an exception: the delivery stops taking rows, the
requests in flight finish, and the process can exit.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

from prefect.client.orchestration import get_client

log = logging.getLogger(__name__)

_local_cancel = threading.Event()


def request_local_cancel() -> None:
    """Ask every flow run of this process to stop (used by Ctrl-C in the CLI)."""
    _local_cancel.set()


def local_cancel_requested() -> bool:
    """True once ``request_local_cancel`` was called (and not reset since)."""
    return _local_cancel.is_set()


def reset_local_cancel() -> None:
    """Forget an earlier ``request_local_cancel`` (e.g. before the next run in one process)."""
    _local_cancel.clear()


def _poll(flow_run_id: UUID | None, event: threading.Event, stop: threading.Event, poll_s: float) -> None:
    with get_client(sync_client=True) as client:
        while not stop.wait(poll_s):
            if _local_cancel.is_set():
                event.set()
                return
            if flow_run_id is None:
                continue
            try:
                state = client.read_flow_run(flow_run_id).state
            except Exception as exc:  # a slow or restarting API must not end the run
                log.debug("cancellation poll failed: %s", exc)
                continue
            if state is not None and (state.is_cancelling() or state.is_cancelled()):
                event.set()
                return


@contextmanager
def watch_cancellation(flow_run_id: UUID | None, poll_s: float = 0.5) -> Iterator[threading.Event]:
    """Yield an event that is set once the run is Cancelling/Cancelled in the API or Ctrl-C was pressed."""
    event, stop = threading.Event(), threading.Event()
    ctx = contextvars.copy_context()  # same Prefect API settings in the thread
    thread = threading.Thread(target=ctx.run, args=(_poll, flow_run_id, event, stop, poll_s),
                              daemon=True, name="cancel-watch")
    if _local_cancel.is_set():  # asked before delivery started: not one request
        event.set()
    thread.start()
    try:
        yield event
    except BaseException:  # unwound (TerminationSignal, KeyboardInterrupt, an error): stop sending too
        event.set()
        raise
    finally:
        stop.set()
        thread.join(timeout=5)
