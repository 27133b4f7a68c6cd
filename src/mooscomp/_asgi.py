"""ASGI middlewares of the service: a request body limit and optional bearer-token auth.

Both answer with the service's JSON error body, ``{"error": {"type": ..., "message": ...}}``.
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


async def reply(
    send: Send, status: int, kind: str, message: str, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    """Send a JSON error response and close the connection."""
    body = json.dumps({"error": {"type": kind, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BearerAuth:
    """Requires ``Authorization: Bearer <key>`` on paths under ``prefix`` (401 otherwise).

    The comparison is constant-time (``hmac.compare_digest``) and the key is never logged or
    echoed. Other paths (the page, its assets, the docs, ``/healthz``) stay open.
    """

    def __init__(self, app: ASGIApp, key: str, prefix: str = "/v1/") -> None:
        self.app = app
        self._key = key.encode()
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope.get("headers") or []:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    given = token.strip()
        if not (given and hmac.compare_digest(given, self._key)):
            await reply(
                send, 401, "unauthorized",
                "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
                ((b"www-authenticate", b'Bearer realm="mooscomp"'),),
            )
            return
        await self.app(scope, receive, send)


class BodyLimit:
    """ASGI middleware: refuses bodies over ``limit`` bytes with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                n = int(declared)
            except ValueError:
                await reply(send, 400, "bad_request", "invalid Content-Length header")
                return
            if n > self.limit:
                await self._too_large(send)
                return
        # Read the body up front (bounded), then replay it to the app.
        chunks: list[bytes] = []
        total = 0
        more = True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body = msg.get("body", b"")
            total += len(body)
            if total > self.limit:
                await self._too_large(send)
                return
            chunks.append(body)
            more = bool(msg.get("more_body", False))
        data = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": data, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        await reply(
            send, 413, "body_too_large", f"request body exceeds the limit of {self.limit} bytes"
        )
