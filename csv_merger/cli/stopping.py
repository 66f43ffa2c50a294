"""SIGINT and SIGTERM as one graceful stop, for every long-running command.

Docker, Railway and systemd stop a service with SIGTERM; a terminal's Ctrl-C
is SIGINT. Both mean the same: the first signal asks for a graceful stop (no
new request; those in flight finish; the summary is written), a second one
ends the process at once by that signal (the delivery ledger keeps what was
recorded), after ``on_abort`` (e.g. killing the children it started). The command then exits 128 + the first signal: 130 for Ctrl-C,
143 for SIGTERM, as a shell reports a process killed by it.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StoppedEarly(BaseException):
    """Raised in the main thread by the first signal while a ``GracefulStop(interrupt=True)`` has no
    ``on_stop`` yet (a command still starting: nothing to wind down). A BaseException, as
    KeyboardInterrupt, so that no ``except Exception`` on the way swallows it."""


class GracefulStop:
    """Context manager installing the handler in the main thread (restored on exit).

    ``on_stop()`` runs in the handler at the first signal (keep it short: set an
    event); ``message`` is printed to stderr then. ``on_abort()`` runs at the
    second one, just before the process ends. Both may be set after ``__enter__``
    (a command installs the handler first, then imports what its callbacks need).
    With ``interrupt``, a first signal that comes before ``on_stop`` is set raises
    ``StoppedEarly`` instead (after the message): a command stops at once while it loads.
    ``signum`` is the first signal (None while none came); ``exit_code`` is 128 + it.
    """

    def __init__(self, on_stop: Callable[[], None] | None = None, message: str | None = None,
                 on_abort: Callable[[], None] | None = None, interrupt: bool = False):
        self.on_stop, self.message, self.on_abort, self.interrupt = on_stop, message, on_abort, interrupt
        self.signum: int | None = None
        self.previous: dict[int, object] = {}

    @property
    def exit_code(self) -> int | None:
        return None if self.signum is None else 128 + self.signum

    def __enter__(self) -> "GracefulStop":
        self.previous = {sig: signal.signal(sig, self.handle) for sig in SIGNALS}
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
        if self.message:
            print(self.message, file=sys.stderr, flush=True)
        if self.on_stop is not None:
            self.on_stop()
        elif self.interrupt:
            raise StoppedEarly(signum)
