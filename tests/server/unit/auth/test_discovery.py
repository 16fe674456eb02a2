"""Unit tests for OIDC discovery, against a fake provider (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from firecrest_server.auth import TokenRejected, TokenValidator
from firecrest_server.auth.discovery import (
    DiscoveryError,
    OidcDiscovery,
    discovery_url,
    parse_metadata,
)
from firecrest_server.config import AuthConfig

ISSUER = "https://idp.example/realms/hpc"
JWKS = "https://idp.example/realms/hpc/protocol/openid-connect/certs"
TOKEN = "https://idp.example/realms/hpc/protocol/openid-connect/token"


def document(**overrides: Any) -> dict[str, Any]:
    body = {"issuer": ISSUER, "jwks_uri": JWKS, "token_endpoint": TOKEN}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeProvider:
    """Serves a discovery document and a JWKS, counting requests per path."""

    def __init__(self, key: rsa.RSAPrivateKey, discovery: dict[str, Any]) -> None:
        entry = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        entry.update({"kid": "k1", "use": "sig", "alg": "RS256"})
        self.jwks = {"keys": [entry]}
        self.discovery = discovery
        self.requests: dict[str, int] = {}
        self.down = False

    async def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests[path] = self.requests.get(path, 0) + 1
        await asyncio.sleep(0.01)  # lets concurrent callers pile up behind one fetch
        if self.down:
            raise httpx.ConnectError("refused", request=request)
        if path == "/realms/hpc/.well-known/openid-configuration":
            return httpx.Response(200, json=self.discovery)
        if path == "/realms/hpc/protocol/openid-connect/certs":
            return httpx.Response(200, json=self.jwks)
        return httpx.Response(404)

    def count(self, suffix: str) -> int:
        return sum(n for path, n in self.requests.items() if path.endswith(suffix))


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def token(key: rsa.RSAPrivateKey, **overrides: Any) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": "firecrest", "exp": now + 300, "preferred_username": "alice"}
    payload.update(overrides)
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": "k1"})


def discovery(provider: FakeProvider, clock: FakeClock | None = None) -> OidcDiscovery:
    http = httpx.AsyncClient(transport=httpx.MockTransport(provider.handler))
    return OidcDiscovery(
        ISSUER,
        http,
        cache_ttl=3600,
        min_refresh_interval=30,
        timeout=5,
        clock=clock or FakeClock(),
    )


# ----------------------------------------------------------------------- the document


def test_the_well_known_url_drops_a_trailing_slash() -> None:
    expected = "https://idp.example/realms/hpc/.well-known/openid-configuration"
    assert discovery_url(ISSUER) == expected
    assert discovery_url(ISSUER + "/") == expected


def test_parse_takes_jwks_uri_and_token_endpoint() -> None:
    metadata = parse_metadata(document(), ISSUER)
    assert (metadata.jwks_uri, metadata.token_endpoint) == (JWKS, TOKEN)
    assert parse_metadata(document(token_endpoint=None), ISSUER).token_endpoint is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (document(issuer="https://evil.example/realms/hpc"), "is not"),
        (document(issuer=ISSUER + "/"), "is not"),  # identical, not "equivalent"
        (document(issuer=None), "is not"),
        (document(jwks_uri=None), "jwks_uri"),
        (document(jwks_uri="file:///etc/passwd"), "jwks_uri"),
        (document(token_endpoint=42), "token_endpoint"),
        (["not", "an", "object"], "JSON object"),
    ],
)
def test_parse_refuses(body: object, message: str) -> None:
    with pytest.raises(DiscoveryError, match=message):
        parse_metadata(body, ISSUER)


# ------------------------------------------------------------------------ the cache


async def test_fetched_once_and_shared_by_concurrent_callers(key) -> None:
    provider = FakeProvider(key, document())
    found = discovery(provider)
    results = await asyncio.gather(*(found.jwks_uri() for _ in range(50)))
    assert set(results) == {JWKS}
    assert provider.count("openid-configuration") == 1
    assert found.current is not None
    assert found.current.token_endpoint == TOKEN


async def test_refreshed_after_the_ttl_and_kept_while_the_provider_is_down(key) -> None:
    clock = FakeClock()
    provider = FakeProvider(key, document())
    found = discovery(provider, clock)
    assert await found.jwks_uri() == JWKS
    clock.now += 3599
    await found.metadata()
    assert provider.count("openid-configuration") == 1  # still fresh
    clock.now += 2
    provider.down = True
    assert await found.jwks_uri() == JWKS  # the last good document stays in use
    assert provider.count("openid-configuration") == 2
    await found.metadata()
    assert provider.count("openid-configuration") == 2  # not again within the floor
    clock.now += 31
    provider.down = False
    provider.discovery = document(jwks_uri=JWKS + "/v2")
    assert await found.jwks_uri() == JWKS + "/v2"
    assert provider.count("openid-configuration") == 3


async def test_a_document_for_another_issuer_is_never_used(key) -> None:
    provider = FakeProvider(key, document(issuer="https://evil.example/"))
    found = discovery(provider)
    assert await found.jwks_uri() is None
    assert found.current is None


# ------------------------------------------------------------ tokens with the issuer only


def validator(provider: FakeProvider, **auth: Any) -> TokenValidator:
    config = AuthConfig(issuer=ISSUER, audience=["firecrest"], **auth)
    http = httpx.AsyncClient(transport=httpx.MockTransport(provider.handler))
    return TokenValidator(config, http)


async def test_tokens_are_checked_against_the_discovered_jwks(key) -> None:
    provider = FakeProvider(key, document())
    tokens = validator(provider)
    principal = await tokens.validate(token(key))
    assert principal.username == "alice"
    assert provider.count("openid-configuration") == 1
    assert provider.count("/certs") == 1
    assert tokens.token_url() == TOKEN  # what Swagger UI's Authorize is given
    with pytest.raises(TokenRejected, match="issuer"):
        await tokens.validate(token(key, iss="https://idp.example/realms/other"))


async def test_no_keys_from_a_document_naming_another_issuer(key) -> None:
    provider = FakeProvider(key, document(issuer="https://idp.example/realms/other"))
    tokens = validator(provider)
    with pytest.raises(TokenRejected, match="Unknown signing key"):
        await tokens.validate(token(key))
    assert provider.count("/certs") == 0  # its jwks_uri was never fetched
    assert tokens.token_url() is None


async def test_configured_urls_win_over_discovery(key) -> None:
    provider = FakeProvider(key, document())
    tokens = validator(provider, jwks_url=JWKS, token_url="https://elsewhere.example/token")
    assert tokens.discovery is None  # nothing left to discover: no request for it
    await tokens.validate(token(key))
    assert provider.count("openid-configuration") == 0
    assert tokens.token_url() == "https://elsewhere.example/token"


async def test_only_the_token_url_is_discovered_when_the_jwks_is_configured(key) -> None:
    provider = FakeProvider(key, document())
    tokens = validator(provider, jwks_url=JWKS)
    assert tokens.discovery is not None
    await tokens.validate(token(key))
    assert provider.count("openid-configuration") == 0  # tokens never wait for it
    await tokens.discovery.metadata()
    assert tokens.token_url() == TOKEN
