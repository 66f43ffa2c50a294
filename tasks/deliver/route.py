"""Which destination a row goes to: a job's webhooks in order, each up to its
lifetime ceiling (the destination ledger, ``tasks.deliver.destinations``).

``DestinationRoute.reserve(row)`` takes one submission of the first
destination that is not full and returns its URL: the engine POSTs the
row there. When that destination's ceiling is reached the route moves on
to the next one (rollover) and never comes back to it within the job;
None once every destination is full (the row is dead-lettered as
not-sent). Each reservation is the store's atomic "take one while used <
ceiling", so no row is ever sent past any destination's ceiling, however
many workers, chunks and processes share it.

Every destination of one job should belong to one Clay workspace: they
share the job's limit key (the workspace's rate), as ``--limit-key`` says.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tasks.deliver.destinations import Destinations, destination_id, destination_label, open_destinations
from tasks.deliver.job import DestinationUse


class DestinationRoute:
    """One job's ordered destinations. ``ceiling`` in submissions per destination, 0 = unlimited.

    ``placed`` maps each row number holding a reservation to its destination
    id (rows whose reservation was given back are removed), so the lead
    index learns where each delivered lead went.
    """

    def __init__(self, store: Destinations, webhook_urls: Sequence[str], ceiling: int):
        self.store, self.ceiling, self.urls = store, ceiling, list(webhook_urls)
        self.ids = [destination_id(u) for u in self.urls]
        self.labels = [destination_label(u) for u in self.urls]
        self.seen = [0] * len(self.urls)  # each destination's count as last read or reserved
        self.open = 0  # index of the first destination not known to be full
        self.placed: dict[int, str] = {}

    async def reserve(self, row: int) -> str | None:
        """The URL to send row number ``row`` to (one submission taken there), None when all are full."""
        while (i := self.open) < len(self.urls):
            used = await self.store.reserve(self.ids[i], self.labels[i], self.ceiling)
            if used is not None:
                self.seen[i], self.placed[row] = used, self.ids[i]
                return self.urls[i]
            self.seen[i] = max(self.seen[i], self.ceiling)
            self.open = max(self.open, i + 1)  # concurrent workers: never skip a destination twice
        return None

    async def release(self, row: int) -> None:
        """Give row ``row``'s reservation back (it was not accepted)."""
        dest = self.placed.pop(row)
        await self.store.release(dest)
        i = self.ids.index(dest)
        self.seen[i] = max(0, self.seen[i] - 1)

    async def counts(self) -> list[DestinationUse]:
        """Each destination's count as the store holds it now (every job counted)."""
        for i, dest in enumerate(self.ids):
            found = await self.store.get(dest)
            self.seen[i] = found.used if found else 0
        return self.snapshot()

    def snapshot(self) -> list[DestinationUse]:
        """Each destination's count as last seen by this job (no store call: for progress lines)."""
        return [DestinationUse(label=label, used=used, ceiling=self.ceiling)
                for label, used in zip(self.labels, self.seen)]

    def full_reason(self) -> str:
        """The dead-letter reason of a row no destination can take."""
        which = (f"destination {self.labels[0]} is" if len(self.labels) == 1
                 else f"destinations {', '.join(self.labels)} are")
        return (f"not sent: {which} full ({self.ceiling:,} submissions, the lifetime ceiling:"
                " CSV_MERGER_ROW_CEILING); send these rows to another webhook with csv-merger redeliver")

    async def aclose(self) -> None:
        await self.store.aclose()

    async def shortfall(self, rows: int) -> str | None:
        """A warning when ``rows`` will not all fit under the ceilings (reads the counts), else None.
        The text is the same for every part of a job (chunks add up to one warning)."""
        counts = await self.counts()
        if not self.ceiling or rows <= sum(max(0, self.ceiling - d.used) for d in counts):
            return None
        which = (f"destination {self.labels[0]} has fewer of its" if len(self.labels) == 1
                 else f"destinations {', '.join(self.labels)} have fewer of their")
        return (f"{which} {self.ceiling:,} lifetime submissions left than rows"
                " to send: rows past the ceiling are not sent (dead-lettered as not-sent)")


def open_route(webhook_urls: Sequence[str], ceiling: int, *, redis_url: str | None,
               data_dir: str | Path) -> DestinationRoute:
    """A ``DestinationRoute`` over the destination ledger (Redis when ``redis_url`` is set, else
    under ``data_dir``); ``aclose()`` it. Raises ConfigError when the local ledger cannot be opened."""
    return DestinationRoute(open_destinations(redis_url=redis_url, data_dir=data_dir), webhook_urls, ceiling)
