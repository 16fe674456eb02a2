"""Redirects name ``server.public_url``, not the Host header a client sent.

Staging URLs are built from ``public_url`` directly (filesystem_transfer.py); the other URLs the
server hands out are Starlette's own redirects (``/status/systems/`` -> ``/status/systems``),
which it builds from the request's scheme and Host header. With ``public_url`` set, their origin
is replaced by it, so a forged Host (or a proxy's internal name) never comes back to a client.
"""

from __future__ import annotations

from starlette.datastructures import URL
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def rebase(location: str, request_base: str, public_url: str) -> str:
    """``location`` with ``request_base`` (scheme, host, root path) replaced by ``public_url``;
    a location elsewhere is left alone."""
    base = request_base.rstrip("/")
    rest = location[len(base) :]
    if location.startswith(base) and (rest == "" or rest[0] in "/?#"):
        return public_url.rstrip("/") + rest
    return location


class PublicUrlMiddleware:
    def __init__(self, app: ASGIApp, public_url: str) -> None:
        self.app = app
        self._public_url = public_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_rebased(message: Message) -> None:
            if message["type"] == "http.response.start" and 300 <= message["status"] < 400:
                # Scheme and Host as Starlette's redirects use them, then the mount point:
                # scope paths include root_path, so redirects to our routes start with it.
                origin = str(URL(scope={**scope, "path": "/", "query_string": b""}))
                base = origin.rstrip("/") + scope.get("root_path", "")
                headers = [
                    (k, rebase(v.decode("latin-1"), base, self._public_url).encode("latin-1"))
                    if k == b"location"
                    else (k, v)
                    for k, v in message.get("headers", [])
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_rebased)
