"""The early stop: a target that refuses every row alike (a wrong auth token or URL).

While no row of a run has been delivered, if the first ``REFUSED_STOP_AFTER``
finished rows all ended with the same status among ``REFUSAL_STATUSES``
(401, 403, 404, 410), the engine stops taking rows as a cancel does, leaves
the rows never sent out of the dead-letter file and the ledger (a re-run with
the same job id sends them) and raises ``TargetRefusedError``. Once any row
is delivered, or a row ends otherwise, the rule is off for the run.
"""

from __future__ import annotations

from csv_merger.wording import plural
from tasks.deliver.job import DeliverySummary

REFUSED_STOP_AFTER = 10  # first N finished rows all refused the same way (and none delivered): stop
REFUSAL_STATUSES = frozenset({401, 403, 404, 410})  # the target refuses every row: auth token or URL


class RefusalWatch:
    """Counts the run's first finished rows; ``dead`` says when to stop."""

    def __init__(self) -> None:
        self.armed = True  # nothing delivered, every finished row refused alike
        self.count = 0
        self.status: int | str | None = None
        self.fired = False  # set by the engine when it stopped because of this rule

    def delivered(self) -> None:
        """A row was delivered: the rule is off for the run."""
        self.armed = False

    def dead(self, status: int | str) -> bool:
        """A row ended undelivered with ``status``: True once the stop should fire (only once)."""
        if not self.armed:
            return False
        if status not in REFUSAL_STATUSES or (self.count and status != self.status):
            self.armed = False
            return False
        self.status, self.count = status, self.count + 1
        if self.count >= REFUSED_STOP_AFTER:
            self.armed = False
            return True
        return False

    def reason(self, s: DeliverySummary) -> str:
        """The summary's ``stopped_reason`` after the stop fired."""
        not_sent = s.rows_total - s.delivered - s.failed - s.skipped_already_delivered
        return (f"stopped: the target answered {self.status} to each of the first {plural(self.count, 'row')} and"
                f" accepted none (check the auth token / webhook URL); {plural(s.failed, 'row')} in the dead-letter"
                f" file (with the requests already in flight), {not_sent} not sent;"
                f" fix it and run again with --job-id {s.job_id}")
