"""Signing keys for bearer tokens: a JWKS cache and static PEM keys from the configuration."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import get_default_algorithms

from firecrest_server.auth.refresh import RefreshGate
from firecrest_server.config import ConfigError

if TYPE_CHECKING:
    # pyjwt 2.9 defines AllowedPublicKeys for type checkers only.
    from jwt.algorithms import AllowedPublicKeys

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
# Where the JWKS is: a configured URL, or one found when needed (OIDC discovery; None: not yet).
JwksLocation = str | Callable[[], Awaitable[str | None]]


@dataclass(frozen=True)
class _KeySet:
    """One successfully fetched JWKS; replaced whole, never mutated, so readers need no lock."""

    by_kid: Mapping[str, Mapping[str, jwt.PyJWK]] = field(default_factory=dict)
    every: tuple[jwt.PyJWK, ...] = ()


def _signing_keys(entry: object, algorithms: Sequence[str]) -> list[jwt.PyJWK]:
    """The verification keys one JWK yields: one per allowed algorithm it can serve."""
    if not isinstance(entry, dict):
        return []
    if entry.get("use", "sig") != "sig":
        return []
    key_ops = entry.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return []
    if not isinstance(entry.get("kid", ""), str):
        return []
    declared = entry.get("alg")
    if declared is not None:
        candidates = [declared] if declared in algorithms else []
    else:
        # Without "alg" the key may serve any allowed algorithm of its type (RS256 and PS256
        # share RSA keys); binding the algorithm here means the token header never picks it.
        candidates = list(algorithms)
    keys = []
    for alg in candidates:
        try:
            keys.append(jwt.PyJWK(entry, alg))
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue  # wrong key type for this algorithm, or a malformed key
    return keys


def _parse_jwks(entries: list[object], algorithms: Sequence[str]) -> _KeySet:
    by_kid: dict[str, dict[str, jwt.PyJWK]] = {}
    every: list[jwt.PyJWK] = []
    for entry in entries:
        for key in _signing_keys(entry, algorithms):
            every.append(key)
            if key.key_id is not None:
                by_kid.setdefault(key.key_id, {}).setdefault(key.algorithm_name, key)
    return _KeySet(by_kid=by_kid, every=tuple(every))


class JWKSCache:
    """Keys from an identity provider's JWKS endpoint, cached by key id.

    Every fetch, whatever triggered it, is at least ``min_refresh_interval`` seconds after the
    previous attempt, and concurrent callers wait for one shared fetch. When the provider cannot
    be reached the keys already held stay in use: an outage of the identity provider should not
    lock out users whose tokens it issued before going down.
    """

    def __init__(
        self,
        url: JwksLocation,
        http: httpx.AsyncClient,
        *,
        algorithms: Sequence[str],
        cache_ttl: float,
        min_refresh_interval: float,
        timeout: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self._url = url
        self._http = http
        self._algorithms = tuple(algorithms)
        self._cache_ttl = cache_ttl
        self._timeout = timeout
        self._clock = clock
        self._keys = _KeySet()
        self._fetched_at: float | None = None  # last successful fetch
        self._gate = RefreshGate(min_refresh_interval, clock)

    async def prefetch(self) -> None:
        """Fetch the keys now, at start-up: otherwise the first requests of a burst all wait
        for one fetch, on a provider that may be as loaded as we are. A failure is logged and
        the next token that needs keys tries again: outside the refresh gate, so that a
        provider down at start-up does not hold the first tokens behind the refresh floor."""
        now = self._clock()
        keys = await self._fetch()
        if keys is not None:
            self._keys, self._fetched_at = keys, now

    async def get(self, kid: str, alg: str) -> jwt.PyJWK | None:
        """The key with this id, bound to ``alg``; None when there is no such key."""
        await self._refresh_if_stale(have_key=kid in self._keys.by_kid)
        if kid not in self._keys.by_kid:
            await self._refresh()
        return self._keys.by_kid.get(kid, {}).get(alg)

    async def keys_for(self, alg: str) -> list[jwt.PyJWK]:
        """Every key usable with ``alg``, for tokens that name no key id."""
        await self._refresh_if_stale(have_key=bool(self._keys.every))
        return [key for key in self._keys.every if key.algorithm_name == alg]

    def _is_stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._cache_ttl

    async def _refresh_if_stale(self, *, have_key: bool) -> None:
        if not self._is_stale():
            return
        if have_key and self._gate.running:
            # Someone is already refreshing; a caller that can be served from the stale keys
            # should not queue behind a possibly slow provider.
            return
        await self._refresh()

    async def _refresh(self) -> None:
        async def fetch(now: float) -> None:
            keys = await self._fetch()
            if keys is not None:
                self._keys = keys
                self._fetched_at = now

        await self._gate.refresh(fetch)

    async def _fetch(self) -> _KeySet | None:
        url = self._url if isinstance(self._url, str) else await self._url()
        if url is None:
            # Discovery failed and has logged why; the keys already held stay in use.
            return None
        try:
            # httpx's timeout bounds each read, not the whole response; a provider trickling
            # bytes must not hold up the fetch (and every request waiting for it) indefinitely.
            async with asyncio.timeout(self._timeout):
                response = await self._http.get(url, timeout=self._timeout)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, httpx.InvalidURL, TimeoutError, ValueError) as exc:
            logger.warning(
                "cannot fetch JWKS from %s (%s: %s); keeping %d cached keys",
                url,
                type(exc).__name__,
                exc,
                len(self._keys.every),
            )
            return None
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            logger.warning("JWKS from %s has no 'keys' list; keeping cached keys", url)
            return None
        keys = _parse_jwks(entries, self._algorithms)
        if not keys.every:
            logger.warning(
                "JWKS from %s has no signing key for algorithms %s",
                url,
                list(self._algorithms),
            )
        return keys


def load_public_keys(
    pems: Sequence[str], algorithms: Sequence[str]
) -> dict[str, tuple[AllowedPublicKeys, ...]]:
    """Parse the configured PEM public keys, grouped by the allowed algorithms each can verify.

    Raises ConfigError for a key that is not a PEM public key (a private key pasted by mistake
    included) or that fits none of the allowed algorithms: such a key would otherwise be
    silently useless.
    """
    by_alg: dict[str, list[AllowedPublicKeys]] = {alg: [] for alg in algorithms}
    implementations = get_default_algorithms()
    for index, pem in enumerate(pems):
        where = f"auth.public_keys.{index}"
        try:
            public_key = load_pem_public_key(pem.encode())
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: not a PEM public key ({exc})") from None
        usable = False
        for alg in algorithms:
            try:
                by_alg[alg].append(implementations[alg].prepare_key(public_key))
            except (jwt.InvalidKeyError, TypeError, KeyError):
                continue  # e.g. an RSA key is no use for ES256
            usable = True
        if not usable:
            raise ConfigError(f"{where}: fits none of the algorithms {list(algorithms)}")
    return {alg: tuple(keys) for alg, keys in by_alg.items() if keys}
