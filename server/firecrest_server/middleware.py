"""Response headers every FirecREST v2 client sees, and request/correlation ids for tracing.

A plain ASGI middleware rather than Starlette's BaseHTTPMiddleware: it adds headers without
buffering bodies, which matters for streamed downloads and for per-request CPU cost.
"""

from __future__ import annotations

import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import FIRECREST_API_VERSION, __version__

# Ids come from clients and end up in logs: accept only short, plain tokens.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _incoming(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            text = value.decode("latin-1")
            return text if _SAFE_ID.match(text) else None
    return None


class FirecrestHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming(scope, b"x-request-id") or uuid.uuid4().hex
        correlation_id = _incoming(scope, b"x-correlation-id")
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["correlation_id"] = correlation_id

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                # pyfirecrest switches code paths on this header: it carries the FirecREST API
                # level we implement, never our own product version.
                headers.append((b"f7t-appversion", FIRECREST_API_VERSION.encode()))
                headers.append((b"f7t-timestamp", str(int(time.time())).encode()))
                headers.append((b"x-firecrest-server-version", __version__.encode()))
                headers.append((b"x-request-id", request_id.encode()))
                if correlation_id:
                    headers.append((b"x-correlation-id", correlation_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
