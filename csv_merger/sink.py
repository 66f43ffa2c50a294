"""A local Clay-like webhook target for the demo, the tests and the benchmarks.

``POST`` any path: the request is judged in this order, at its arrival time:

1. ``--auth-token``: a missing or different ``x-clay-webhook-auth`` -> 401.
2. ``--throttle-at N --throttle-for S``: after N accepted requests, every
   request for S seconds gets 429 with ``Retry-After`` (whole seconds left).
   ``--outage-at N --outage-for S``: after N accepted requests, every request
   for S seconds gets ``--fail-status`` (503), as a target that is down does.
3. Token bucket (``--rate`` requests/s, ``--burst`` requests; no rate =
   unlimited): above it -> 429 with ``Retry-After`` (seconds until the next
   token, rounded up, at least 1), as Clay answers when throttled.
   ``--rate-after "N:RATE,M:RATE2"``: after N accepted requests the bucket
   refills at RATE, after M at RATE2 (its size stays), as when another client
   starts or stops drawing on a shared limit.
4. Injected failures: ``--fail-every N`` (every Nth request past the bucket)
   or ``--fail-rate F`` (random fraction) -> ``--fail-status`` (503).
5. ``--reject-field "NAME=VALUE"``: a JSON body holding that field (at any
   depth) with that value -> ``--reject-status`` (400).
6. Otherwise accepted with ``--status`` (200; 202 and 204 are useful too);
   ``--record OUT.jsonl`` appends ``{"t", "path", "key", "auth", "body"}``
   (``auth``: whether the auth header was present; never its value).

A request whose client hangs up before its whole body arrived is not judged at all (counted as
``disconnected``): a cut-off body is no submission, and the client, never answered, sends it again.

``GET /stats`` returns the counters of ``SinkStats.as_dict``. Served by
uvicorn with httptools and uvloop on a raw ASGI app (no framework), so that
one sink answers well above what one delivery process sends.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csv_merger.errors import ConfigError


@dataclass(frozen=True)
class SinkConfig:
    """Sink behaviour; see the module docstring. Rates in requests/s,
    latency in milliseconds, durations in seconds."""

    rate: float | None = None
    burst: int | None = None  # default: max(1, rate)
    latency_ms: float = 0.0
    fail_every: int | None = None
    fail_rate: float | None = None
    fail_status: int = 503
    status: int = 200
    record: str | None = None
    throttle_at: int | None = None
    throttle_for: float = 3.0
    outage_at: int | None = None
    outage_for: float = 30.0
    rate_after: str | None = None  # "N:RATE,M:RATE2": the bucket's rate from the Nth accepted request on
    reject_field: str | None = None  # "NAME=VALUE"
    reject_status: int = 400
    auth_token: str | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.rate is not None and not self.rate > 0:
            raise ConfigError(f"--rate must be positive, got {self.rate}")
        if self.outage_at is not None and (self.outage_at < 0 or not self.outage_for > 0):
            raise ConfigError("--outage-at must be >= 0 requests and --outage-for > 0 s")
        if self.burst is not None and self.burst < 1:
            raise ConfigError(f"--burst must be at least 1, got {self.burst}")
        if self.fail_every is not None and self.fail_rate is not None:
            raise ConfigError("--fail-every and --fail-rate exclude each other")
        if self.fail_every is not None and self.fail_every < 1:
            raise ConfigError(f"--fail-every must be at least 1, got {self.fail_every}")
        if self.fail_rate is not None and not 0 <= self.fail_rate <= 1:
            raise ConfigError(f"--fail-rate must be between 0 and 1, got {self.fail_rate}")
        if self.rate_after is not None and self.rate is None:
            raise ConfigError("--rate-after needs --rate")
        self.rate_changes()  # raises for a malformed --rate-after
        if self.reject_field is not None and "=" not in self.reject_field:
            raise ConfigError(f"--reject-field must look like NAME=VALUE, got {self.reject_field!r}")
        for name in ("status", "fail_status", "reject_status"):
            code = getattr(self, name)
            if not 100 <= code <= 599:
                raise ConfigError(f"--{name.replace('_', '-')} must be an HTTP status, got {code}")


    def rate_changes(self) -> list[tuple[int, float]]:
        """``--rate-after`` as [(accepted requests, rate requests/s)], in order."""
        changes = []
        for part in filter(None, (self.rate_after or "").split(",")):
            try:
                at, rate = part.split(":")
                changes.append((int(at), float(rate)))
            except ValueError:
                raise ConfigError(f"--rate-after must look like N:RATE[,M:RATE2], got {self.rate_after!r}") from None
            if changes[-1][0] < 0 or not changes[-1][1] > 0:
                raise ConfigError(f"--rate-after needs N >= 0 and a positive rate, got {part!r}")
        return sorted(changes)


class TokenBucket:
    """Classic token bucket: ``capacity`` tokens, refilled at ``rate``/s."""

    def __init__(self, rate: float, capacity: int):
        self.rate, self.capacity = rate, capacity
        self.tokens = float(capacity)
        self.last = time.monotonic()

    def take(self, now: float) -> float:
        """Take one token: 0.0 if granted, else seconds until one is available."""
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate

    def set_rate(self, rate: float, now: float) -> None:
        """Refill at ``rate`` from ``now`` on (tokens earned so far kept)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last, self.rate = now, rate


@dataclass
class SinkStats:
    """Counters served by ``GET /stats``."""

    received: int = 0
    accepted: int = 0
    rejected_429: int = 0
    failed_injected: int = 0
    rejected_field: int = 0
    unauthorized: int = 0
    disconnected: int = 0  # client gone before its whole body arrived: not judged, not counted as received
    no_key: int = 0
    duplicate_keys: int = 0
    keys: set[str] = field(default_factory=set)
    throttle_started: float | None = None  # unix time
    throttle_offsets: list[float] = field(default_factory=list)
    outage_started: float | None = None  # unix time
    failed_in_outage: int = 0
    max_in_window: int = 0  # most requests accepted within any 1 s
    rate_changes: list[list[float]] = field(default_factory=list)  # [unix time, new rate] per --rate-after step
    first_accepted_at: float | None = None
    last_accepted_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        span = (self.last_accepted_at or 0) - (self.first_accepted_at or 0)
        return {
            "received": self.received,
            "accepted": self.accepted,
            "rejected_429": self.rejected_429,
            "failed_injected": self.failed_injected,
            "rejected_field": self.rejected_field,
            "unauthorized": self.unauthorized,
            "disconnected": self.disconnected,
            "distinct_keys": len(self.keys),
            "duplicate_keys": self.duplicate_keys,
            "no_key": self.no_key,
            "throttle_started_at": self.throttle_started,
            # requests that arrived after the throttle window opened (the one
            # that opened it excluded), as seconds since it opened
            "received_during_throttle": len(self.throttle_offsets),
            "throttle_arrival_offsets": [round(x, 4) for x in self.throttle_offsets],
            "max_in_window": self.max_in_window,
            "rate_changes": self.rate_changes,
            "outage_started_at": self.outage_started,
            "failed_in_outage": self.failed_in_outage,
            "first_accepted_at": self.first_accepted_at,
            "last_accepted_at": self.last_accepted_at,
            "accepted_per_s": round((self.accepted - 1) / span, 3) if span > 0 else None,
        }


def _holds(value: Any, name: str, wanted: str) -> bool:
    """Whether a JSON value holds ``name: wanted`` at any depth."""
    if isinstance(value, dict):
        return any((k == name and str(v) == wanted) or _holds(v, name, wanted) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds(v, name, wanted) for v in value)
    return False


class SinkApp:
    """The ASGI application (HTTP only; lifespan is switched off)."""

    def __init__(self, config: SinkConfig):
        self.config = config
        self.stats = SinkStats()
        burst = config.burst or max(1, math.ceil(config.rate or 1))
        self.bucket = TokenBucket(config.rate, burst) if config.rate else None
        self._random = random.Random(config.seed)
        self._window: collections.deque[float] = collections.deque()
        self._throttle_until = 0.0
        self._outage_until = 0.0
        self._rate_changes = config.rate_changes()  # still to come
        self._change_rate(time.monotonic(), time.time())
        self._reject = config.reject_field.split("=", 1) if config.reject_field else None
        self._record = open(config.record, "a", encoding="utf-8") if config.record else None  # noqa: SIM115
        self._counted = 0  # requests past the bucket, for --fail-every

    def close(self) -> None:
        if self._record:
            self._record.close()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "GET" and scope["path"] == "/stats":
            await _respond(send, 200, json.dumps(self.stats.as_dict()).encode())
            return
        if scope["method"] != "POST":
            await _respond(send, 405, b'{"error": "POST a JSON body"}')
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.stats.disconnected += 1
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, headers, payload = self._judge(scope, bytes(body))
        if self.config.latency_ms:
            await asyncio.sleep(self.config.latency_ms / 1000)
        await _respond(send, status, payload, headers)

    def _judge(self, scope, body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Decide the answer to one POST and count it (no await: atomic)."""
        cfg, st = self.config, self.stats
        now, wall = time.monotonic(), time.time()
        st.received += 1
        headers = dict(scope["headers"])
        auth = headers.get(b"x-clay-webhook-auth")
        if cfg.auth_token is not None and auth != cfg.auth_token.encode():
            st.unauthorized += 1
            return 401, [], b'{"error": "missing or wrong x-clay-webhook-auth"}'
        if cfg.throttle_at is not None and st.accepted >= cfg.throttle_at:
            if st.throttle_started is None:
                st.throttle_started, self._throttle_until = wall, now + cfg.throttle_for
            elif now < self._throttle_until:
                st.throttle_offsets.append(wall - st.throttle_started)
            if now < self._throttle_until:
                st.rejected_429 += 1
                return 429, [(b"retry-after", str(math.ceil(self._throttle_until - now)).encode())], b'{"error": "throttled"}'
        if cfg.outage_at is not None and st.accepted >= cfg.outage_at:
            if st.outage_started is None:
                st.outage_started, self._outage_until = wall, now + cfg.outage_for
            if now < self._outage_until:
                st.failed_in_outage += 1
                return cfg.fail_status, [], b'{"error": "target down (--outage-for)"}'
        if self.bucket is not None:
            wait = self.bucket.take(now)
            if wait:
                st.rejected_429 += 1
                return 429, [(b"retry-after", str(max(1, math.ceil(wait))).encode())], b'{"error": "rate limited"}'
        self._counted += 1
        if (cfg.fail_every and self._counted % cfg.fail_every == 0) or (
            cfg.fail_rate and self._random.random() < cfg.fail_rate
        ):
            st.failed_injected += 1
            return cfg.fail_status, [], b'{"error": "injected failure"}'
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            parsed = body.decode("utf-8", "replace")
        if self._reject and _holds(parsed, *self._reject):
            st.rejected_field += 1
            return cfg.reject_status, [], b'{"error": "row rejected by --reject-field"}'
        self._accept(now, wall, headers, scope["path"], auth is not None, parsed)
        return cfg.status, [], b"" if cfg.status == 204 else b'{"status": "ok"}'

    def _change_rate(self, now: float, wall: float) -> None:
        """Apply the ``--rate-after`` steps due at this many accepted requests."""
        while self._rate_changes and self.stats.accepted >= self._rate_changes[0][0]:
            rate = self._rate_changes.pop(0)[1]
            self.bucket.set_rate(rate, now)
            self.stats.rate_changes.append([round(wall, 6), rate])

    def _accept(self, now: float, wall: float, headers: dict, path: str, auth: bool, body: Any) -> None:
        st = self.stats
        st.accepted += 1
        self._change_rate(now, wall)
        st.first_accepted_at = st.first_accepted_at or wall
        st.last_accepted_at = wall
        self._window.append(now)
        while self._window[0] <= now - 1.0:
            self._window.popleft()
        st.max_in_window = max(st.max_in_window, len(self._window))
        raw_key = headers.get(b"idempotency-key")
        key = raw_key.decode("latin-1") if raw_key is not None else None
        if key is None:
            st.no_key += 1
        elif key in st.keys:
            st.duplicate_keys += 1
        else:
            st.keys.add(key)
        if self._record:
            line = {"t": round(wall, 6), "path": path, "key": key, "auth": auth, "body": body}
            self._record.write(json.dumps(line, ensure_ascii=False) + "\n")
            self._record.flush()


async def _respond(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    head = [(b"content-type", b"application/json"), *(headers or [])]
    if status != 204:
        head.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": b"" if status == 204 else body})


def serve(config: SinkConfig, host: str = "127.0.0.1", port: int = 8787) -> SinkStats:
    """Run the sink until SIGINT/SIGTERM; print one line with its URL once it
    listens. Returns the final counters. Raises ConfigError if the port is taken."""
    import socket

    import uvicorn

    class _Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:  # stop cleanly; do not re-raise the signal
            self.should_exit = True

    if config.record:
        Path(config.record).parent.mkdir(parents=True, exist_ok=True)
    app = SinkApp(config)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"sink cannot listen on {host}:{port}: {exc.strerror}") from None
    server = _Server(
        uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="off", access_log=False,
                       log_level="warning", timeout_graceful_shutdown=2, backlog=2048)
    )

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started:
            print(f"sink listening on http://{host}:{sock.getsockname()[1]}", flush=True)
        await task

    import uvloop

    try:
        uvloop.run(main())
    finally:
        app.close()
        sock.close()
    return app.stats
