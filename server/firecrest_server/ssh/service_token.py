"""A bearer token for the server's own login, from an OAuth2 client-credentials grant.

The health probes run as ``probe_user`` outside any request. With ``key_service`` credentials
the key service issues a key only for a bearer token of the same user, so the probe user is a
service account of the identity provider, and its token is fetched here: once, then again
shortly before it expires. Only the pool opening a probe connection asks for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from ..config import ServiceAccountToken
from ..errors import ServiceUnavailable
from .credentials import CallerProof, ClientKey, CredentialError, CredentialProvider

# Fetched again this long before the provider says it expires: a probe connection opened with
# a token about to expire may reach the key service after it has.
_RENEW_BEFORE = 30.0
# When the provider does not say how long its token lives.
_DEFAULT_LIFETIME = 60.0


class ClientCredentialsToken:
    def __init__(
        self,
        config: ServiceAccountToken,
        http: httpx.AsyncClient,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._http = http
        self._clock = clock
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        async with self._lock:  # one fetch at a time; the others take its token
            if self._token is None or self._clock() >= self._renew_at:
                self._token, lifetime = await self._fetch()
                self._renew_at = self._clock() + max(0.0, lifetime - _RENEW_BEFORE)
            return self._token

    async def _fetch(self) -> tuple[str, float]:
        config = self._config
        form = {
            "grant_type": "client_credentials",
            "client_id": config.client_id,
            "client_secret": config.client_secret.get_secret_value(),
        }
        if config.scope:
            form["scope"] = config.scope
        try:
            response = await self._http.post(config.token_url, data=form, timeout=config.timeout)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise CredentialError(f"probe token URL unusable: {exc}") from None
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                f"probe token endpoint unreachable: {type(exc).__name__}", retry_after=2
            ) from None
        if response.status_code != 200:
            # The body may echo what was sent: the status only, never the secret.
            raise CredentialError(f"probe token endpoint answered {response.status_code}")
        try:
            body = response.json()
            token = str(body["access_token"])
            lifetime = float(body.get("expires_in") or _DEFAULT_LIFETIME)
        except (KeyError, TypeError, ValueError) as exc:
            raise CredentialError(f"probe token endpoint sent no usable token: {exc}") from None
        return token, lifetime


class WithServiceToken:
    """A credential provider that presents the service account's token, never a caller's."""

    def __init__(self, inner: CredentialProvider, token: ClientCredentialsToken) -> None:
        self._inner = inner
        self._token = token

    async def client_key(self, username: str, proof: CallerProof) -> ClientKey:
        # Whatever the caller brought is set aside: the probe logs in as the service account.
        return await self._inner.client_key(username, await self._token.get())
