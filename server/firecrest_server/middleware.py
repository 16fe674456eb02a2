"""The edge of every request: FirecREST response headers, request ids, access log and metrics.

A plain ASGI middleware rather than Starlette's BaseHTTPMiddleware: it adds headers without
buffering bodies, which matters for streamed downloads and for per-request CPU cost. One layer
does all of this because each layer costs a function call per message on every request.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import FIRECREST_API_VERSION, __version__
from .logs import RequestContext, current_request
from .redaction import redact_path
from .server_timing import CONNECTED_AT, header_value

access_log = logging.getLogger("firecrest_server.access")

# Ids come from clients and end up in logs: accept only short, plain tokens.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# Polled by monitoring every few seconds: logged at debug so they do not drown the access log.
_QUIET_PATHS = frozenset({"/status/liveness", "/status/liveness/", "/metrics"})

# The label for requests that matched no route: raw paths would make label values unbounded.
UNMATCHED_ROUTE = "<unmatched>"


def _incoming(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            text = value.decode("latin-1")
            return text if _SAFE_ID.match(text) else None
    return None


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/status/{system_name}/userinfo``), set by routing."""
    route = scope.get("route")
    return getattr(route, "path", None) or UNMATCHED_ROUTE


class FirecrestHeadersMiddleware:
    def __init__(self, app: ASGIApp, timing_header: bool = False) -> None:
        self.app = app
        self.timing_header = timing_header  # Server-Timing on every response (server_timing.py)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _incoming(scope, b"x-request-id") or uuid.uuid4().hex
        correlation_id = _incoming(scope, b"x-correlation-id")
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["correlation_id"] = correlation_id
        context = RequestContext(request_id, correlation_id)
        if self.timing_header:
            context.timings = {}
        reset = current_request.set(context)
        status = 500  # if the app raises before answering, the server error handler sends a 500
        # Body bytes each way, for the access log: what a client's operation costs on the wire.
        body_bytes = [0, 0]  # received, sent

        async def receive_counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body_bytes[0] += len(message.get("body", b""))
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.body":
                body_bytes[1] += len(message.get("body", b""))
            elif message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                # pyfirecrest switches code paths on this header: it carries the FirecREST API
                # level we implement, never our own product version.
                headers.append((b"f7t-appversion", FIRECREST_API_VERSION.encode()))
                headers.append((b"f7t-timestamp", str(int(time.time())).encode()))
                headers.append((b"x-firecrest-server-version", __version__.encode()))
                headers.append((b"x-request-id", request_id.encode()))
                if correlation_id:
                    headers.append((b"x-correlation-id", correlation_id.encode()))
                # FirecREST v2 names the authenticated caller; set once the token was checked,
                # so 401s and unauthenticated routes carry none. The name comes from a signed
                # claim, still only a plain one is written into a header.
                if context.user and _SAFE_ID.match(context.user):
                    headers.append((b"f7t-authusername", context.user.encode()))
                if context.timings is not None:
                    headers.append((b"server-timing", _timings(scope, context.timings, started)))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive_counted, send_with_headers)
        finally:
            seconds = time.perf_counter() - started
            self._record(scope, context, status, seconds, body_bytes)
            current_request.reset(reset)

    @staticmethod
    def _record(
        scope: Scope, context: RequestContext, status: int, seconds: float, body_bytes: list[int]
    ) -> None:
        # A staging URL's path is a bearer capability: its token segment never reaches the log.
        path = redact_path(scope.get("path", ""))
        runtime = getattr(scope["app"].state, "runtime", None) if "app" in scope else None
        if runtime is not None:
            runtime.metrics.observe_request(
                route_template(scope), scope.get("method", ""), status, seconds
            )
        level = logging.DEBUG if path in _QUIET_PATHS else logging.INFO
        if access_log.isEnabledFor(level):
            # The path only: query strings may carry user file names or credentials (a client
            # may send ?access_token=), and never belong in an access log shipped elsewhere.
            access_log.log(
                level,
                "%s %s %d",
                scope.get("method", ""),
                path,
                status,
                # Stamped explicitly rather than read from the context by the formatter: a
                # handler that formats later (a queue, a test's capture) must see them too.
                extra={
                    "request_id": context.request_id,
                    "correlation_id": context.correlation_id,
                    "user": context.user,
                    "system": context.system,
                    "method": scope.get("method", ""),
                    "path": path,
                    "status": status,
                    # The route's template groups requests by endpoint without user paths.
                    "route": route_template(scope),
                    "bytes_in": body_bytes[0],
                    "bytes_out": body_bytes[1],
                    "seconds": round(seconds, 6),
                    # As reported by a trusted proxy (forwarding.py), else the TCP peer's.
                    "client": (scope.get("client") or (None,))[0],
                    "scheme": scope.get("scheme"),
                },
            )


def _timings(scope: Scope, timings: dict[str, float], started: float) -> bytes:
    connected_at = scope.get("extensions", {}).get(CONNECTED_AT)
    phases = {"conn": started - connected_at} if connected_at is not None else {}
    phases.update(timings)
    phases["app"] = time.perf_counter() - started
    return header_value(phases)
