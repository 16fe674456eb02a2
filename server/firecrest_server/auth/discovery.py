"""OpenID Connect discovery: the provider's JWKS and token endpoint from its issuer alone.

OpenID Connect Discovery 1.0 §4: the metadata is at ``<issuer>/.well-known/openid-configuration``
and its ``issuer`` must be *identical* to the issuer it was fetched for (§4.3). A document that
names another issuer is refused: otherwise whoever answers at that URL (a misrouted proxy, a
multi-tenant host) would choose the keys our tokens are checked against.

Cached like the JWKS (auth/jwks.py): refreshed after ``cache_ttl``, never twice within
``min_refresh_interval``, one fetch shared by every waiter, and the last good document kept while
the provider cannot be reached.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from .refresh import RefreshGate

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
WELL_KNOWN = "/.well-known/openid-configuration"


class DiscoveryError(ValueError):
    """The discovery document is unusable; the message is safe to log."""


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    jwks_uri: str
    token_endpoint: str | None


def discovery_url(issuer: str) -> str:
    # §4.1: any trailing "/" of the issuer is removed before the well-known path is appended.
    return issuer.rstrip("/") + WELL_KNOWN


def _url(document: dict[str, object], key: str, *, required: bool) -> str | None:
    value = document.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise DiscoveryError(f"'{key}' is {'missing or ' if required else ''}not an http(s) URL")
    return value


def parse_metadata(document: object, issuer: str) -> ProviderMetadata:
    """The parts we use of a discovery document fetched for ``issuer``."""
    if not isinstance(document, dict):
        raise DiscoveryError("not a JSON object")
    if document.get("issuer") != issuer:
        raise DiscoveryError(f"its issuer {document.get('issuer')!r} is not {issuer!r}")
    jwks_uri = _url(document, "jwks_uri", required=True)
    assert jwks_uri is not None
    return ProviderMetadata(
        issuer=issuer,
        jwks_uri=jwks_uri,
        token_endpoint=_url(document, "token_endpoint", required=False),
    )


class OidcDiscovery:
    """The provider's metadata, fetched from its discovery document and cached."""

    def __init__(
        self,
        issuer: str,
        http: httpx.AsyncClient,
        *,
        cache_ttl: float,
        min_refresh_interval: float,
        timeout: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self.url = discovery_url(issuer)
        self._issuer = issuer
        self._http = http
        self._cache_ttl = cache_ttl
        self._timeout = timeout
        self._clock = clock
        self._metadata: ProviderMetadata | None = None
        self._fetched_at: float | None = None
        self._gate = RefreshGate(min_refresh_interval, clock)

    @property
    def current(self) -> ProviderMetadata | None:
        """The last good metadata, without fetching (for synchronous readers)."""
        return self._metadata

    async def metadata(self) -> ProviderMetadata | None:
        """Fresh metadata, or the last good one while the provider fails; None before any."""
        stale = self._fetched_at is None or self._clock() - self._fetched_at >= self._cache_ttl
        if stale:
            await self._refresh()
        return self._metadata

    async def jwks_uri(self) -> str | None:
        metadata = await self.metadata()
        return metadata.jwks_uri if metadata else None

    async def _refresh(self) -> None:
        async def fetch(now: float) -> None:
            metadata = await self._fetch()
            if metadata is not None:
                self._metadata = metadata
                self._fetched_at = now

        await self._gate.refresh(fetch)  # one fetch for every waiter, with a floor (refresh.py)

    async def _fetch(self) -> ProviderMetadata | None:
        try:
            async with asyncio.timeout(self._timeout):  # the whole response, not each read
                response = await self._http.get(self.url, timeout=self._timeout)
            response.raise_for_status()
            return parse_metadata(response.json(), self._issuer)
        except (httpx.HTTPError, httpx.InvalidURL, TimeoutError, ValueError) as exc:
            # DiscoveryError is a ValueError, as is a body that is not JSON.
            logger.warning(
                "cannot use OIDC discovery at %s (%s: %s); %s",
                self.url,
                type(exc).__name__,
                exc,
                "keeping the previous metadata" if self._metadata else "no provider metadata yet",
            )
            return None
