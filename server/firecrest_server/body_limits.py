"""Request bodies refused before they are read: a size cap per route, and no body without a token.

FastAPI reads a JSON body whole, before any dependency checks the token, and uvicorn buffers
what arrives until the app asks for it; left alone, a client with no token can make the server
take in a body of any size. This plain ASGI middleware sits in front of routing and decides from
the method, the path and the headers alone:

- an authenticated route called with a body but with no ``Authorization`` header: 401 at once;
- a declared ``Content-Length`` over the route's cap: 413 at once;
- a body without a declared length (chunked): counted as it streams in, 413 once it passes
  the cap.

Each refusal closes the connection (``Connection: close``), so uvicorn stops reading the rest of
the body instead of draining it to keep the connection alive.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .api.errors import error_response
from .api.upload_form import FORM_OVERHEAD
from .config import Settings
from .errors import ApiError, PayloadTooLarge, Unauthorized
from .staging.s3 import MAX_COMPLETE_BODY

log = logging.getLogger("firecrest_server.body_limits")

# Routes that take no bearer token: probes and scrapers, the API's own documentation, and the
# staging endpoints, whose presigned URL is the authorisation.
_PUBLIC_PATHS = frozenset(
    {
        "/status/liveness",
        "/status/liveness/",
        "/metrics",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
    }
)


@dataclass(frozen=True)
class BodyPolicy:
    """At most ``limit`` bytes of body (None: any), and whether a bearer token is required."""

    limit: int | None
    needs_token: bool
    what: str  # names the limit in the 413 message


class BodyLimits:
    """The body policy of every route, from the configuration (pure: no I/O)."""

    def __init__(self, settings: Settings) -> None:
        limits = settings.server.limits
        self.root_path = settings.server.root_path.rstrip("/")
        self.json = BodyPolicy(limits.max_json_body, True, "request bodies")
        self.tree = BodyPolicy(limits.max_tree_body or None, True, "tar stream uploads")
        # Presigned part URLs name their system only inside the signed token, which is checked
        # by the route: the largest part size of any system bounds them here.
        self.part = BodyPolicy(
            max(s.data_operation.staging_part_size for s in settings.systems),
            False,
            "staging parts",
        )
        self.complete = BodyPolicy(MAX_COMPLETE_BODY, False, "CompleteMultipartUpload")
        self.staging_other = BodyPolicy(limits.max_json_body, False, "request bodies")
        self.public = BodyPolicy(limits.max_json_body, False, "request bodies")
        self.uploads = {
            s.name: BodyPolicy(
                s.data_operation.max_ops_file_size + FORM_OVERHEAD, True, "direct uploads"
            )
            for s in settings.systems
        }

    def policy(self, method: str, path: str) -> BodyPolicy:
        if self.root_path and path.startswith(self.root_path + "/"):
            path = path[len(self.root_path) :]
        if path in _PUBLIC_PATHS:
            return self.public
        parts = path.strip("/").split("/")
        if parts[0] == "staging":
            if method == "PUT" and len(parts) == 4 and parts[2] == "parts":
                return self.part
            if method == "POST" and len(parts) == 3 and parts[2] == "complete":
                return self.complete
            return self.staging_other
        if len(parts) == 4 and parts[0] == "filesystem" and parts[2] == "ops":
            if method == "POST" and parts[3] == "upload":
                # System names are case-insensitive; an unknown one is answered 404 later.
                return self.uploads.get(parts[1].lower(), self.json)
            if method == "PUT" and parts[3] == "tree":
                return self.tree
        return self.json


@dataclass(frozen=True)
class BodyHeaders:
    """What the request headers say about its body and its credentials."""

    content_length: int | None  # None: not declared (chunked, or no body)
    chunked: bool
    has_authorization: bool
    malformed_length: bool = False

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length) or self.malformed_length

    @classmethod
    def from_scope(cls, headers: list[tuple[bytes, bytes]]) -> BodyHeaders:
        length: int | None = None
        malformed = False
        chunked = False
        authorization = False
        for name, value in headers:
            if name == b"content-length":
                if value.strip().isdigit():
                    length = int(value)
                else:
                    malformed = True  # the HTTP parser rejects most of these before us
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"authorization":
                authorization = bool(value.strip())
        return cls(length, chunked, authorization, malformed)


def refusal(policy: BodyPolicy, headers: BodyHeaders) -> ApiError | None:
    """The error to answer before reading anything, or None to let the request in."""
    if policy.needs_token and not headers.has_authorization and headers.has_body:
        return Unauthorized("Missing bearer token")
    if (
        policy.limit is not None
        and headers.content_length is not None
        and headers.content_length > policy.limit
    ):
        return too_large(policy, headers.content_length)
    return None


def too_large(policy: BodyPolicy, declared: int | None = None) -> PayloadTooLarge:
    size = f"of {declared} bytes " if declared is not None else ""
    return PayloadTooLarge(
        f"Request body {size}exceeds the {policy.limit} bytes limit for {policy.what}",
        headers={"Connection": "close"},
    )


class _BodyTooLarge(Exception):
    """Raised from ``receive`` once a body passes its cap; the 413 has been sent already."""


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.limits = BodyLimits(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = BodyHeaders.from_scope(scope["headers"])
        if not headers.has_body:  # most requests: nothing to refuse or count
            await self.app(scope, receive, send)
            return
        policy = self.limits.policy(scope["method"], scope["path"])
        error = refusal(policy, headers)
        if error is not None:
            await _answer(scope, receive, send, error)
            return
        if policy.limit is None:
            await self.app(scope, receive, send)
            return
        # A declared length within the cap is enforced by the HTTP parser (it never delivers
        # more than declared); a chunked body is counted here as it arrives.
        limit = policy.limit
        received = 0
        answered = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    answered = True
                    if not started:
                        await _answer(scope, receive, send, too_large(policy))
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the app's answer to a body it never got whole: the 413 went out instead
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not answered:
                raise
            # Whatever the app made of the cut-off body (a parse error, a disconnect) is moot.
            log.debug("request body over %d bytes refused", limit, exc_info=True)


async def _answer(scope: Scope, receive: Receive, send: Send, error: ApiError) -> None:
    headers = dict(error.headers)
    # Without this uvicorn would keep the connection alive by reading, and dropping, the rest
    # of a body that may be gigabytes long.
    headers["Connection"] = "close"
    response = error_response(Request(scope), error.status_code, error.message, headers=headers)
    await response(scope, receive, send)
