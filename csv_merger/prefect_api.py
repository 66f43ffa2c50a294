"""Prefect's ephemeral API as a child that stays out of the terminal's way and dies with us.

With no ``PREFECT_API_URL``, Prefect starts its API as a subprocess
(``prefect.server.api.server.SubprocessASGIServer``: ``python -m uvicorn
... prefect.server.api.server:create_app``), in our process group, and stops
it only from an ``atexit`` hook. Two failures follow:

- Ctrl-C in a terminal sends SIGINT to the whole foreground process group:
  the API stops first, and the run we are cancelling gracefully can no longer
  report its state (minutes of connection errors, exit 1, no summary).
- SIGKILL (or any death that skips ``atexit``) leaves the API running with
  parent 1.

``tie_ephemeral_api()`` installs, before Prefect creates its own, an instance
of ``TiedASGIServer`` as Prefect's singleton (``SubprocessASGIServer()`` is
keyed by port; every Prefect client asks for the ``port=None`` one). It starts
the same command in a new session (``start_new_session``: no terminal signals)
with ``PR_SET_PDEATHSIG`` = SIGTERM (Linux ``prctl(2)``: the kernel signals the
child when the thread that forked it exits). That thread is a daemon thread
kept alive as long as the child runs, so the signal comes when this process
ends, however it ends. Elsewhere than Linux only the new session applies.
``csv-merger worker`` starts Prefect's worker the same way (``tied_popen``).

PR_SET_PDEATHSIG only sends SIGTERM, and the API then shuts down gracefully for
seconds with no parent. A command about to end at once (a second Ctrl-C) calls
``kill_tied_children()`` first, so that nothing it started outlives it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_tied: list[subprocess.Popen] = []  # every child tied_popen started, for kill_tied_children


def _die_with_parent() -> None:
    """``preexec_fn``: ask the kernel for SIGTERM when our parent (thread) dies."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def tied_popen(args: list[str], **kwargs: Any) -> subprocess.Popen:
    """``subprocess.Popen(args, **kwargs)`` in a new session, forked by a daemon thread that lives
    as long as the child (PR_SET_PDEATHSIG follows the forking thread, not the process)."""
    linux = sys.platform.startswith("linux")
    started: dict[str, Any] = {}
    ready = threading.Event()

    def parent() -> None:
        try:
            started["proc"] = subprocess.Popen(args, start_new_session=True,
                                               preexec_fn=_die_with_parent if linux else None, **kwargs)
        except BaseException as exc:  # handed to the caller's thread
            started["error"] = exc
        finally:
            ready.set()
        if "proc" in started:
            started["proc"].wait()  # this thread must outlive the child, or the kernel stops it

    threading.Thread(target=parent, daemon=True, name="prefect-api-parent").start()
    ready.wait()
    if "error" in started:
        raise started["error"]
    _tied.append(started["proc"])
    return started["proc"]


def kill_tied_children(timeout_s: float = 2.0) -> None:
    """SIGKILL every child ``tied_popen`` started that still runs, and wait up to ``timeout_s`` seconds
    until each is gone. Safe in a signal handler: its forking thread reaps it (we only watch)."""
    running = [proc for proc in _tied if proc.returncode is None]
    for proc in running:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # gone meanwhile
            pass
    deadline = time.monotonic() + timeout_s
    while any(proc.returncode is None for proc in running) and time.monotonic() < deadline:
        time.sleep(0.01)


def _server_class():
    from prefect.server.api.server import SubprocessASGIServer

    class TiedASGIServer(SubprocessASGIServer):
        """Prefect's ephemeral API server, started by ``tied_popen`` (see the module docstring)."""

        def _run_uvicorn_command(self) -> subprocess.Popen:
            # Prefect's own command line and environment (prefect 3.x, SubprocessASGIServer).
            import prefect
            from prefect.settings import get_current_settings

            args = [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent), "--factory",
                    "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(self.port),
                    "--log-level", "error", "--lifespan", "on"]
            env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                   "PREFECT__SERVER_FINAL": "1", **get_current_settings().to_environment_variables(exclude_unset=True)}
            return tied_popen(args, env=env)

    return TiedASGIServer


def tie_ephemeral_api() -> None:
    """Make Prefect's ephemeral API (if this process ends up starting one) a tied child; see the module
    docstring. Call before anything talks to Prefect; a no-op once Prefect's singleton exists
    (``SubprocessASGIServer.__new__`` returns the existing instance for a port)."""
    _server_class()()
