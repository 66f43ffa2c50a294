"""The early stop for a target never reached (a typo in the webhook URL's host or port).

While no attempt of a delivery has reached the target (every one so far ended
in ``httpx.ConnectError``: connection refused, no route, a name that does not
resolve) and the first of them is ``stop_s`` seconds old, the engine stops
taking rows as a cancel does, leaves the rows never sent out of the
dead-letter file and the ledger (a re-run with the same job id sends them)
and raises ``TargetRefusedError``. Any other outcome of an attempt (an HTTP
response, a timeout, an error after connecting) turns the rule off for the
run: a target that exists may be down, and the outage policy
(tasks.deliver.outage) waits for it. So does a job whose ledger already holds
a delivered row (a resume, or a fan-out consumer that starts after the others
reached the target).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import httpx

from csv_merger.wording import plural

if TYPE_CHECKING:  # job.py takes its default from here
    from tasks.deliver.job import DeliverySummary

UNREACHABLE_STOP_S = 60.0  # outlasts a target restarting as the run starts; a typo costs 1 min, not the 600 s budget


def host_port(url: str) -> str:
    """``"host:port"`` of ``url``, the scheme's default port spelled out."""
    u = httpx.URL(url)
    return f"{u.host}:{u.port or (443 if u.scheme == 'https' else 80)}"


def connect_cause(exc: BaseException) -> str:
    """A connect error's reason in a few words: the errno of the OSError under it (httpx says only
    "All connection attempts failed"), e.g. ``"connection refused"``; else the error's own text."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno:  # gaierror: negative, its strerror says it
            return (os.strerror(cause.errno) if cause.errno > 0 else str(cause.strerror)).lower()
        cause = cause.__cause__ or cause.__context__
    return str(exc).lower() or "connection failed"


class UnreachableWatch:
    """A delivery's connect failures so far; ``due`` says when to stop. Times are ``time.monotonic()`` s."""

    def __init__(self, stop_s: float = UNREACHABLE_STOP_S) -> None:
        self.stop_s = stop_s
        self.armed = True  # every attempt so far ended in a connect error (or none ended yet)
        self.since: float | None = None  # when the first connect error happened
        self.target = self.cause = ""  # the last one's host:port and reason
        self.fired = False

    def failed(self, url: str, exc: Exception, now: float) -> bool:
        """An attempt to ``url`` raised ``exc`` at ``now``: an ``httpx.ConnectError`` keeps the rule
        going (True for the first one: the moment to tell the user), anything else turns it off."""
        if not isinstance(exc, httpx.ConnectError):
            self.got_through()
            return False
        first = self.armed and self.since is None
        if first:
            self.since = now
        self.target, self.cause = host_port(url), connect_cause(exc)
        return first

    def got_through(self) -> None:
        """An attempt ended otherwise (a response, a timeout, an error after connecting): off for the run."""
        self.armed = False

    def due(self, now: float) -> bool:
        """True once (then ``fired``) when only connect errors happened, the first ``stop_s`` or more ago."""
        if self.armed and self.since is not None and now - self.since >= self.stop_s:
            self.armed, self.fired = False, True
            return True
        return False

    def notice(self) -> str:
        """The warning after the first connect error."""
        return f"cannot connect to {self.target} ({self.cause}): stopping in {self.stop_s:g} s unless it answers"

    def reason(self, s: DeliverySummary) -> str:
        """The summary's ``stopped_reason`` after the stop fired."""
        not_sent = s.rows_total - s.delivered - s.failed - s.skipped_already_delivered
        dead = f", {s.failed} in the dead-letter file" if s.failed else ""
        return (f"stopped: could not connect to {self.target} for {self.stop_s:g} s ({self.cause}) and no request"
                f" ever reached it: check the webhook URL; {plural(not_sent, 'row')} not sent{dead};"
                f" fix it and run again with --job-id {s.job_id}")
