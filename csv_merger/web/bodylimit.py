"""ASGI middleware: refuse request bodies above a byte limit with 413.

Checks ``Content-Length`` before reading anything, and counts the bytes of
bodies sent without it (chunked), so an oversized upload is never spooled
to disk in full.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """413 with a JSON message for any request body over ``limit_bytes``.

    ``file_limit_bytes`` is the setting the message quotes (the body limit
    adds room for the multipart framing around one file)."""

    def __init__(self, app: ASGIApp, limit_bytes: int, file_limit_bytes: int,
                 setting: str = "CSV_MERGER_UPLOAD_LIMIT_BYTES"):
        self.app, self.limit_bytes, self.setting = app, limit_bytes, setting
        self.file_limit_bytes = file_limit_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit_bytes:
            await self._reject(send, int(length))
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send, None)

    async def _reject(self, send: Send, size: int | None) -> None:
        got = f" ({size:,} bytes)" if size is not None else ""
        body = json.dumps({
            "error": f"upload too large{got}: the limit is {self.file_limit_bytes:,} bytes per file "
                     f"({self.setting}); send several files in separate requests",
            "field": "files",
        }).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
