"""Where access tokens come from: OIDC client credentials, a fixed token, or a local command.

A token source is shared by every request of a client, possibly from many coroutines at once:
a refresh happens once (under an ``asyncio.Lock``) while the others wait for its result, and it
happens *ahead* of expiry, so a request never leaves with a token that dies on the way. Nothing
here blocks the event loop: the token endpoint is called with the client's async httpx client
and a token command runs as an asyncio subprocess.

Secrets never appear in reprs, logs or error messages.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import quote_plus

import httpx
import jwt

from .errors import AuthenticationError

# A token whose lifetime is unknown (no `expires_in`, not a JWT) is reused this long.
DEFAULT_LIFETIME = 60.0
# Refresh this long before expiry, or at half the lifetime for short-lived tokens.
DEFAULT_MIN_VALIDITY = 30.0
TOKEN_COMMAND_TIMEOUT = 60.0

Clock = Callable[[], float]
# Fetches a token; returns it with its lifetime in seconds (None when unknown).
TokenFetcher = Callable[[httpx.AsyncClient], Awaitable[tuple[str, float | None]]]
# How the client authenticates at the token endpoint (OpenID Connect Core §9): the secret in
# the form body (pyfirecrest's way, our default) or in an HTTP Basic Authorization header.
ClientAuthMethod = Literal["client_secret_post", "client_secret_basic"]
CLIENT_AUTH_METHODS: tuple[ClientAuthMethod, ...] = ("client_secret_post", "client_secret_basic")


class TokenSource(Protocol):
    async def token(self, http: httpx.AsyncClient) -> str:
        """A token valid for at least a little while."""
        ...

    def invalidate(self) -> None:
        """Forget the cached token (the server rejected it)."""
        ...


@dataclass(frozen=True)
class CachedToken:
    value: str
    refresh_at: float  # clock time after which a new token is fetched
    expires_at: float


def refresh_time(fetched_at: float, lifetime: float, min_validity: float) -> float:
    """When to replace a token fetched at ``fetched_at`` that lives ``lifetime`` seconds."""
    margin = min(min_validity, lifetime / 2)
    return fetched_at + lifetime - margin


class RefreshingToken:
    """Caches the token from ``fetch`` and refreshes it ahead of expiry, one refresh at a time."""

    def __init__(
        self,
        fetch: TokenFetcher,
        *,
        clock: Clock = time.monotonic,
        min_validity: float = DEFAULT_MIN_VALIDITY,
        default_lifetime: float = DEFAULT_LIFETIME,
        description: str = "token",
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._min_validity = min_validity
        self._default_lifetime = default_lifetime
        self._description = description
        self._cached: CachedToken | None = None
        self._lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._description}>"

    def needs_refresh(self) -> bool:
        return self._cached is None or self._clock() >= self._cached.refresh_at

    def invalidate(self) -> None:
        self._cached = None

    async def token(self, http: httpx.AsyncClient) -> str:
        cached = self._cached
        if cached is not None and not self.needs_refresh():
            return cached.value
        if self._lock is None:  # created here, inside the loop that uses it
            self._lock = asyncio.Lock()
        if cached is not None and self._lock.locked() and self._clock() < cached.expires_at:
            return cached.value  # still valid: no need to wait for the refresh under way
        async with self._lock:
            # Another coroutine may have refreshed while this one waited for the lock.
            if not self.needs_refresh():
                assert self._cached is not None
                return self._cached.value
            fetched_at = self._clock()
            value, lifetime = await self._fetch(http)
            if lifetime is None or lifetime <= 0:
                lifetime = self._default_lifetime
            self._cached = CachedToken(
                value=value,
                refresh_at=refresh_time(fetched_at, lifetime, self._min_validity),
                expires_at=fetched_at + lifetime,
            )
            return value


class StaticToken:
    """A token given once; it is never refreshed, so it works until it expires."""

    def __init__(self, value: str) -> None:
        if not value:
            raise ValueError("the static token is empty")
        self._value = value

    def __repr__(self) -> str:
        return "<StaticToken>"

    async def token(self, http: httpx.AsyncClient) -> str:
        return self._value

    def invalidate(self) -> None:
        pass  # nothing to refresh from


def jwt_lifetime(token: str, now: float | None = None) -> float | None:
    """Seconds until a JWT's ``exp`` (read without verifying: the server verifies), or None."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    if not isinstance(exp, int | float):
        return None
    return exp - (time.time() if now is None else now)


def basic_authorization(client_id: str, client_secret: str) -> str:
    """The ``Authorization`` header value of client_secret_basic.

    RFC 6749 §2.3.1: id and secret are form-urlencoded *before* base64, so a ``:`` or a
    non-ASCII character in either survives; httpx's BasicAuth skips that step.
    """
    pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


def client_credentials_request(
    client_id: str, client_secret: str, method: ClientAuthMethod
) -> tuple[dict[str, str], dict[str, str]]:
    """The form and headers of a client-credentials token request."""
    headers = {"Accept": "application/json"}
    form = {"grant_type": "client_credentials"}
    if method == "client_secret_basic":
        headers["Authorization"] = basic_authorization(client_id, client_secret)
    elif method == "client_secret_post":
        form.update(client_id=client_id, client_secret=client_secret)
    else:
        raise ValueError(f"unknown client authentication method {method!r}")
    return form, headers


def client_credentials_fetcher(
    token_uri: str,
    client_id: str,
    client_secret: str | Callable[[], str],
    method: ClientAuthMethod = "client_secret_post",
) -> TokenFetcher:
    """The OAuth2 client-credentials grant; client_secret_post is what pyfirecrest sends.

    ``client_secret`` may be a callable, called at each fetch (a secret file is then read
    when a token is needed, so a rotated secret is picked up without reconfiguring).
    """

    async def fetch(http: httpx.AsyncClient) -> tuple[str, float | None]:
        secret = client_secret() if callable(client_secret) else client_secret
        form, headers = client_credentials_request(client_id, secret, method)
        try:
            response = await http.post(token_uri, data=form, headers=headers)
        except httpx.HTTPError as exc:
            raise AuthenticationError(
                f"Cannot reach the token endpoint {token_uri}: {exc or type(exc).__name__}"
            ) from None
        if response.status_code != 200:
            # The provider's error/error_description say why; they never contain the secret.
            raise AuthenticationError(
                f"The token endpoint {token_uri} refused client {client_id!r} "
                f"(HTTP {response.status_code}): {_oauth_error(response)}",
                status_code=response.status_code,
            )
        try:
            body = response.json()
            value = body["access_token"]
        except (ValueError, KeyError, TypeError):
            raise AuthenticationError(
                f"The token endpoint {token_uri} answered without an access_token"
            ) from None
        expires_in = body.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else None
        return value, lifetime if lifetime is not None else jwt_lifetime(value)

    return fetch


def _oauth_error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("error", "error_description") if body.get(k)]
        if parts:
            return ": ".join(parts)
    return response.text[:200]


def client_credentials(
    token_uri: str,
    client_id: str,
    client_secret: str | Callable[[], str],
    *,
    method: ClientAuthMethod = "client_secret_post",
    clock: Clock = time.monotonic,
    min_validity: float = DEFAULT_MIN_VALIDITY,
) -> RefreshingToken:
    return RefreshingToken(
        client_credentials_fetcher(token_uri, client_id, client_secret, method),
        clock=clock,
        min_validity=min_validity,
        description=f"client credentials for {client_id!r} from {token_uri}",
    )


def token_command_fetcher(command: str, timeout: float = TOKEN_COMMAND_TIMEOUT) -> TokenFetcher:
    """Runs ``command`` through the shell; its stripped stdout is the token.

    The command line may carry secrets of its own, so messages do not repeat it.
    """

    async def fetch(http: httpx.AsyncClient) -> tuple[str, float | None]:
        process = await asyncio.create_subprocess_shell(
            command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise AuthenticationError(
                f"The token command did not finish within {timeout:g} s"
            ) from None
        if process.returncode != 0:
            raise AuthenticationError(
                f"The token command failed with exit status {process.returncode}:\n"
                + stderr.decode(errors="replace").strip()[-1000:]
            )
        value = stdout.decode(errors="replace").strip()
        if not value:
            raise AuthenticationError("The token command printed no token")
        return value, jwt_lifetime(value)

    return fetch


def token_command(
    command: str,
    *,
    clock: Clock = time.monotonic,
    min_validity: float = DEFAULT_MIN_VALIDITY,
) -> RefreshingToken:
    # Run again only when the token it printed is about to expire (JWT `exp`), not per request.
    return RefreshingToken(
        token_command_fetcher(command),
        clock=clock,
        min_validity=min_validity,
        description="from a token command",
    )
