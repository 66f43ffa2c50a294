"""SIGINT and SIGTERM as one graceful stop, for every long-running command.

Docker, Railway and systemd stop a service with SIGTERM; a terminal's Ctrl-C
is SIGINT. Both mean the same: the first signal asks for a graceful stop (no
new request; those in flight finish; the summary is written), a second one
ends the process at once by that signal (the delivery ledger keeps what was
recorded), after ``on_abort`` (e.g. killing the children it started). The command then exits 128 + the first signal: 130 for Ctrl-C,
143 for SIGTERM, as a shell reports a process killed by it.

Before a command installs its ``GracefulStop`` (Python and typer still import,
a delivery's input is read), ``StopWhileLoading`` ends the process on Ctrl-C
with one line and exit 130 (``end_early``), where Python's KeyboardInterrupt
would print a traceback from whatever module was being imported. SIGTERM keeps
its default then (the process ends by it: no output, 143 in a shell).
"""

from __future__ import annotations

import os
import signal
import sys

from csv_merger.wording import STOPPED_EARLY

TYPE_CHECKING = False  # typing is not imported: this module is loaded before main's Ctrl-C handler is in place
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def end_early(signum: int, before: Callable[[], None] | None = None) -> NoReturn:
    """End the process at once: a signal came before the command started anything that needs winding down
    (it was loading, or had not started delivering). ``before()`` first (e.g. write the summary a script
    waits for; if it fails, that is not told), then one line on stderr, exit 128 + signum.

    No exception is raised: one raised at an arbitrary moment (inside an import, a callback of a compiled
    module such as pydantic's, which wraps it, or a finaliser, which prints and drops it) can reach the user
    as a traceback, or not at all. ``os.write`` and ``os._exit`` take no lock the interrupted code may hold.
    """
    if before is not None:
        try:
            before()
        except Exception:  # noqa: BLE001  a full disk, or a module the interrupted import left half-loaded
            pass
    os.write(2, f"csv-merger: {STOPPED_EARLY}\n".encode())
    os._exit(128 + signum)


def _stop_loading(signum: int, _frame) -> NoReturn:
    end_early(signum)


_before_loading: list = []
"""The SIGINT handler ``StopWhileLoading`` replaced (Python's), while its own is installed: at most one."""


class StopWhileLoading:
    """``main``'s Ctrl-C handler while a command loads: a SIGINT ends the process (``end_early``). It ends
    when a command enters its own ``GracefulStop`` (which restores Python's handler when it ends), when
    ``loaded()`` is called, or at the end of the block. Main thread only."""

    def __enter__(self) -> None:
        _before_loading.append(signal.signal(signal.SIGINT, _stop_loading))

    def __exit__(self, *exc) -> None:
        loaded()


def loaded() -> None:
    """End ``StopWhileLoading`` now, if it still runs: Ctrl-C is Python's again (the command handles it
    its own way, as uvicorn does, or lets typer turn it into exit 130)."""
    if _before_loading:
        signal.signal(signal.SIGINT, _before_loading.pop())


class GracefulStop:
    """Context manager installing the handler in the main thread (restored on exit).

    ``on_stop()`` runs in the handler at the first signal (keep it short: set an
    event); ``message`` is printed to stderr then. ``on_abort()`` runs at the
    second one, just before the process ends. Both may be set after ``__enter__``
    (a command installs the handler first, then imports what its callbacks need).
    With ``interrupt``, a first signal that comes before ``on_stop`` is set ends the
    process at once instead (``end_early``, after ``on_early()`` when given: it runs in
    the handler, at any moment, so it must not import; no message): a command stops at
    once while it loads.
    ``signum`` is the first signal (None while none came); ``exit_code`` is 128 + it.
    """

    def __init__(self, on_stop: Callable[[], None] | None = None, message: str | None = None,
                 on_abort: Callable[[], None] | None = None, interrupt: bool = False,
                 on_early: Callable[[], None] | None = None):
        self.on_stop, self.message, self.on_abort, self.interrupt = on_stop, message, on_abort, interrupt
        self.on_early = on_early
        self.signum: int | None = None
        self.previous: dict[int, object] = {}

    @property
    def exit_code(self) -> int | None:
        return None if self.signum is None else 128 + self.signum

    def __enter__(self) -> "GracefulStop":
        self.previous = {sig: signal.signal(sig, self.handle) for sig in SIGNALS}
        if self.previous[signal.SIGINT] is _stop_loading:  # taking over from StopWhileLoading, with no gap
            self.previous[signal.SIGINT] = _before_loading.pop()
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def handle(self, signum: int, _frame) -> None:
        if self.signum is not None:  # asked twice: stop now
            if self.on_abort is not None:
                self.on_abort()
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signum = signum
        if self.on_stop is None and self.interrupt:
            end_early(signum, self.on_early)  # no message: nothing to wind down, end_early's line says so
        if self.message:
            print(self.message, file=sys.stderr, flush=True)
        if self.on_stop is not None:
            self.on_stop()
