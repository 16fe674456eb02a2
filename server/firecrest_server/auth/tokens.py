"""Bearer token validation: from an access token to the user the request acts as."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import httpx
import jwt

from firecrest_server.auth.discovery import OidcDiscovery
from firecrest_server.auth.jwks import Clock, JWKSCache, JwksLocation, load_public_keys
from firecrest_server.config import AuthConfig
from firecrest_server.server_timing import timed

# The username becomes an SSH principal and a login name on the cluster, so it must be a
# plausible POSIX login name: no path separators, shell metacharacters or leading "-".
_USERNAME = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")

log = logging.getLogger("firecrest_server.auth")

# Validated tokens are remembered for a short while: a client sends the same token with every
# request, and checking its signature again (base64 decoding, an RSA verification) was about a
# tenth of the server's CPU per ops/ls request. Only the exact token string hits; its expiry
# is checked on every use. No longer than the JWKS cache keeps keys, so a key removed from the
# provider stops being honoured at most this much later than without the cache.
VALIDATED_TTL = 60.0
MAX_VALIDATED = 10_000


@dataclass(frozen=True)
class Principal:
    """The authenticated caller. Holds the verified claims, never the token itself."""

    username: str
    claims: Mapping[str, Any]
    uid: int | None = None  # set once the principal policy has accepted the login


class TokenRejected(Exception):
    """The token is not acceptable; ``reason`` is safe to return to the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _reason(exc: jwt.PyJWTError) -> str:
    # Subclasses before their bases: InvalidSignatureError is a DecodeError.
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "Token has expired"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "Token is not yet valid"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "Invalid token audience"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "Invalid token issuer"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"Token is missing the '{exc.claim}' claim"  # names one of our required claims
    if isinstance(exc, jwt.InvalidSignatureError):
        return "Invalid token signature"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "Token algorithm not allowed"
    if isinstance(exc, jwt.DecodeError):
        return "Malformed token"
    return "Invalid token"


if TYPE_CHECKING:
    # pyjwt 2.9 defines AllowedPublicKeys for type checkers only.
    from jwt.algorithms import AllowedPublicKeys

    VerifyingKey = jwt.PyJWK | AllowedPublicKeys


class TokenValidator:
    """Validates bearer tokens against the configured keys, issuer and audiences."""

    def __init__(
        self, config: AuthConfig, http: httpx.AsyncClient, clock: Clock = time.monotonic
    ) -> None:
        self._config = config
        self._clock = clock
        # token -> (principal, exp, monotonic time until which the entry may be used)
        self._validated: dict[str, tuple[Principal, float, float]] = {}
        self._validating: dict[str, asyncio.Future[Principal]] = {}  # validations running
        self._validated_ttl = min(VALIDATED_TTL, config.jwks_cache_ttl)
        self._algorithms = frozenset(config.algorithms)
        required = ["exp"]
        if config.verify_issuer:
            required.append("iss")
        else:
            log.warning(
                "auth.verify_issuer is false: tokens from any issuer signed by a trusted key "
                "are accepted"
            )
        if config.verify_audience:
            required.append("aud")
        else:
            log.warning(
                "auth.verify_audience is false: tokens issued for any application are accepted"
            )
        self._required_claims = required
        self._static_keys = load_public_keys(config.public_keys, config.algorithms)
        # Only built when something is left to discover; refreshed like the JWKS.
        self.discovery = (
            OidcDiscovery(
                config.issuer or "",
                http,
                cache_ttl=config.jwks_cache_ttl,
                min_refresh_interval=config.jwks_min_refresh_interval,
                timeout=config.jwks_timeout,
                clock=clock,
            )
            if config.discovers_jwks or config.discovers_token_url
            else None
        )
        location: JwksLocation | None = config.jwks_url
        if location is None and config.discovers_jwks and self.discovery is not None:
            location = self.discovery.jwks_uri
        self._jwks = (
            JWKSCache(
                location,
                http,
                algorithms=config.algorithms,
                cache_ttl=config.jwks_cache_ttl,
                min_refresh_interval=config.jwks_min_refresh_interval,
                timeout=config.jwks_timeout,
                clock=clock,
            )
            if location is not None
            else None
        )

    async def prefetch_keys(self) -> None:
        """Load the signing keys before the first request needs them (see JWKSCache)."""
        if self._jwks is not None:
            await self._jwks.prefetch()

    def token_url(self) -> str | None:
        """The token endpoint to advertise: configured, else discovered (when known yet)."""
        if self._config.token_url:
            return self._config.token_url
        metadata = self.discovery.current if self.discovery is not None else None
        return metadata.token_endpoint if metadata is not None else None

    async def validate(self, token: str) -> Principal:
        """The principal the token authenticates; raises TokenRejected otherwise."""
        cached = self._validated.get(token)
        if cached is not None:
            principal, exp, until = cached
            if self._clock() < until and self._still_valid(exp):
                return principal
            del self._validated[token]  # validated again below, with the reason if it fails
        with timed("auth"):
            principal = await self._validate_once(token)
        if len(self._validated) >= MAX_VALIDATED:
            del self._validated[next(iter(self._validated))]  # the oldest
        exp = principal.claims["exp"]
        self._validated[token] = (principal, exp, self._clock() + self._validated_ttl)
        return principal

    async def _validate_once(self, token: str) -> Principal:
        """``_validate``, shared by the requests that bring the same token while it runs: a
        client's burst (hundreds of requests at once, each on a new connection) arriving while
        the keys are being fetched costs one signature check, not one each.

        The first caller validates inline, not in a task: with the keys at hand nothing
        suspends, so it costs no event-loop turn (under a burst a turn took up to 1.5 s)."""
        while (running := self._validating.get(token)) is not None:
            try:
                # Shielded: a waiter's cancellation (its client went away) is its own.
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                if not running.cancelled():
                    raise  # this caller was cancelled
                # The first caller was cancelled: validate again, perhaps as the first.
        running = asyncio.get_running_loop().create_future()
        self._validating[token] = running
        try:
            principal = await self._validate(token)
        except asyncio.CancelledError:
            running.cancel()
            raise
        except BaseException as exc:
            running.set_exception(exc)
            running.exception()  # retrieved: nobody may be waiting, and that is no error
            raise
        finally:
            del self._validating[token]
        running.set_result(principal)
        return principal

    def _still_valid(self, exp: float) -> bool:
        """The expiry checks of ``_decode``, for a token whose signature and claims passed."""
        remaining = exp - time.time()
        if remaining <= -self._config.leeway:  # as pyjwt: expired when exp <= now - leeway
            return False
        return self._config.min_token_ttl <= 0 or remaining >= self._config.min_token_ttl

    async def _validate(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("Malformed token") from None
        alg = header.get("alg")
        # Checked before any key is looked up, so "none" and HMAC tokens (which would use a
        # public key as the shared secret) never reach a key, nor trigger a JWKS fetch.
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise TokenRejected("Token algorithm not allowed")
        keys = await self._candidate_keys(header.get("kid"), alg)
        if not keys:
            raise TokenRejected("Unknown signing key")
        claims = self._decode(token, alg, keys)
        return Principal(username=self._username(claims), claims=MappingProxyType(claims))

    async def _candidate_keys(self, kid: str | None, alg: str) -> list[VerifyingKey]:
        keys: list[VerifyingKey] = []
        if self._jwks is not None:
            if kid is None:
                keys.extend(await self._jwks.keys_for(alg))
            else:
                key = await self._jwks.get(kid, alg)
                if key is not None:
                    keys.append(key)
        # Static keys have no id; a token may name one anyway, so they are always candidates.
        keys.extend(self._static_keys.get(alg, ()))
        return keys

    def _decode(self, token: str, alg: str, keys: list[VerifyingKey]) -> dict[str, Any]:
        config = self._config
        for key in keys:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[alg],
                    audience=config.audience if config.verify_audience else None,
                    issuer=config.issuer if config.verify_issuer else None,
                    leeway=config.leeway,
                    # Without verify_aud pyjwt rejects any token carrying "aud" when no
                    # audience is given; most providers always set it.
                    options={
                        "require": self._required_claims,
                        "verify_aud": config.verify_audience,
                        "verify_iss": config.verify_issuer,
                    },
                )
            except (jwt.InvalidSignatureError, jwt.InvalidKeyError):
                continue  # not signed by this key; try the next
            except jwt.PyJWTError as exc:
                raise TokenRejected(_reason(exc)) from None
            break
        else:
            raise TokenRejected("Invalid token signature")
        exp = claims["exp"]
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise TokenRejected("Malformed token")  # pyjwt also accepts numeric strings
        if config.min_token_ttl > 0 and exp - time.time() < config.min_token_ttl:
            raise TokenRejected("Access token expires too soon")
        return claims

    def _username(self, claims: Mapping[str, Any]) -> str:
        username = claims.get(self._config.username_claim)
        if not isinstance(username, str) or not username:
            raise TokenRejected(f"Token has no '{self._config.username_claim}' claim")
        if not _USERNAME.fullmatch(username):
            raise TokenRejected("Token username is not a valid login name")
        return username
