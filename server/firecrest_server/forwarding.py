"""The client's address and scheme as reported by trusted reverse proxies.

Behind a proxy, the TCP peer is the proxy; the client's address and the scheme it used arrive
in headers, which any client can also send. They are believed only when the peer is one of
``server.trusted_proxies``, and only the kind the proxies set (``server.proxy_headers``): a
proxy that appends X-Forwarded-For passes a client's forged ``Forwarded`` header on untouched.

The address list is read from the right (the nearest hop) and the first address that is not a
trusted proxy is the client: whatever a client wrote to the left of what its proxy appended is
skipped. The Host a proxy passes on (X-Forwarded-Host) is never used: the URLs this server hands
out come from ``server.public_url`` (required with trusted proxies).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Literal

from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
HeaderKind = Literal["x-forwarded", "forwarded"]

_SCHEMES = frozenset({"http", "https"})


def _address(text: str) -> Address | None:
    """The IP address in a hop: ``192.0.2.1``, ``192.0.2.1:80``, ``"[2001:db8::1]:443"``."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has several colons
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None  # "unknown", an obfuscated identifier ("_hidden"), or garbage


def _joined(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> str:
    # Several header lines of one name are one comma-separated list (RFC 9110 5.3).
    return ",".join(value.decode("latin-1") for key, value in headers if key == name)


def _forwarded_elements(value: str) -> list[dict[str, str]]:
    """RFC 7239 ``Forwarded``: ``for=a;proto=https, for=b`` -> [{for: a, proto: https}, ...]."""
    elements = []
    for element in value.split(","):
        pairs: dict[str, str] = {}
        for pair in element.split(";"):
            name, _, content = pair.partition("=")
            if content:
                pairs[name.strip().lower()] = content.strip().strip('"')
        elements.append(pairs)
    return elements


def _hops(headers: Sequence[tuple[bytes, bytes]], kind: HeaderKind) -> tuple[list[str], str | None]:
    """(the addresses the proxies reported, left to right; the nearest proxy's scheme)."""
    if kind == "forwarded":
        elements = [e for e in _forwarded_elements(_joined(headers, b"forwarded")) if e]
        protos = [e["proto"] for e in elements if "proto" in e]
        return [e.get("for", "") for e in elements], (protos[-1] if protos else None)
    chain = [a for a in _joined(headers, b"x-forwarded-for").split(",") if a.strip()]
    protos = [p.strip() for p in _joined(headers, b"x-forwarded-proto").split(",") if p.strip()]
    return chain, (protos[-1] if protos else None)


def _trusted(address: Address, trusted: Sequence[Network]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:10.0.0.1 from a dual-stack socket
    return any(address in network for network in trusted)


def resolve_client(
    peer: str | None,
    headers: Sequence[tuple[bytes, bytes]],
    trusted: Sequence[Network],
    kind: HeaderKind,
) -> tuple[str, str | None] | None:
    """(client address, scheme or None) when ``peer`` is a trusted proxy, else None.

    Walks the reported addresses from the nearest hop back while they are trusted proxies too;
    stops at the first that is not, or at one that is not an address (then the last trusted hop
    is the best we know).
    """
    peer_address = _address(peer) if peer else None
    if peer_address is None or not _trusted(peer_address, trusted):
        return None
    chain, proto = _hops(headers, kind)
    client = peer_address
    for hop in reversed(chain):
        address = _address(hop)
        if address is None:
            break
        client = address
        if not _trusted(address, trusted):
            break
    scheme = proto.lower() if proto and proto.lower() in _SCHEMES else None
    return str(client), scheme


class ForwardedHeadersMiddleware:
    """Sets the ASGI scope's ``client`` and ``scheme`` from trusted proxies' headers."""

    def __init__(self, app: ASGIApp, trusted: Sequence[Network], kind: HeaderKind) -> None:
        self.app = app
        self._trusted = tuple(trusted)
        self._kind = kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            peer = scope.get("client")
            resolved = resolve_client(
                peer[0] if peer else None, scope.get("headers", ()), self._trusted, self._kind
            )
            if resolved is not None:
                client, scheme = resolved
                scope = {**scope, "client": (client, 0)}
                if scheme is not None:
                    if scope["type"] == "websocket":
                        scheme = "wss" if scheme == "https" else "ws"
                    scope["scheme"] = scheme
        await self.app(scope, receive, send)
