"""The delivery client's transport: one keep-alive connection per worker, to the checked address."""

from __future__ import annotations

import contextvars
from collections.abc import Sequence

import httpx

from csv_merger.safety import CheckedTarget, pinned_request

worker_index: contextvars.ContextVar[int] = contextvars.ContextVar("worker_index", default=0)
"""Index of the delivery worker running in this task; picks its connection."""


class WorkerPools(httpx.AsyncBaseTransport):
    """The client's connection pool: one keep-alive connection per worker.

    Each worker has at most one request in flight, so a pool of one per
    worker is never contended. One shared pool of N connections is slower
    here: httpcore assigns every request queued in the same instant to the
    same idle connection and retries all but one (ConnectionNotAvailable),
    which costs ~30% of throughput when workers wake together.

    Every request goes to the address its host (one of ``targets``, from
    ``check_target``: a job's destinations) was checked at
    (``pinned_request``), never to a fresh DNS answer; a host not among
    them is refused (UnsafeTargetError).
    """

    def __init__(self, workers: int, targets: Sequence[CheckedTarget] = ()):
        self.targets = {t.host: t for t in targets}
        self.first = targets[0] if targets else None
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=30.0)
        tls = httpx.create_ssl_context()  # one CA bundle load (~0.1 s each), shared by every pool
        self.pools = [httpx.AsyncHTTPTransport(verify=tls, limits=limits) for _ in range(workers)]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        target = self.targets.get(request.url.host.rstrip(".").lower(), self.first)
        return await self.pools[worker_index.get()].handle_async_request(pinned_request(request, target))

    async def aclose(self) -> None:
        for pool in self.pools:
            await pool.aclose()
