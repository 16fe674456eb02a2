"""Unit tests for bearer token validation, against a fake JWKS endpoint."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from firecrest_server.auth import JWKSCache, Principal, TokenRejected, TokenValidator
from firecrest_server.config import AuthConfig, ConfigError

JWKS_URL = "https://idp.example/certs"
ISSUER = "https://idp.example/realms/hpc"
AUDIENCE = "firecrest"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeIdP:
    """A JWKS endpoint that counts requests and can be taken down."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.keys = keys
        self.requests = 0
        self.failure: str | None = None  # None, "connect", "500" or "garbage"

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        await asyncio.sleep(0.01)  # lets concurrent validations pile up behind one fetch
        if self.failure == "connect":
            raise httpx.ConnectError("connection refused", request=request)
        if self.failure == "500":
            return httpx.Response(500, text="oops")
        if self.failure == "garbage":
            return httpx.Response(200, text="<html>not json</html>")
        return httpx.Response(200, json={"keys": self.keys})


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def key1() -> rsa.RSAPrivateKey:
    return _new_key()


@pytest.fixture(scope="module")
def key2() -> rsa.RSAPrivateKey:
    return _new_key()


@pytest.fixture(scope="module")
def intruder_key() -> rsa.RSAPrivateKey:
    return _new_key()


def jwk(private_key: rsa.RSAPrivateKey, kid: str | None, **extra: Any) -> dict[str, Any]:
    entry = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    entry.pop("key_ops", None)
    if kid is not None:
        entry["kid"] = kid
    entry.update({"use": "sig", "alg": "RS256"})
    entry.update(extra)
    return {k: v for k, v in entry.items() if v is not None}


def public_pem(private_key: rsa.RSAPrivateKey) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
        "sub": "f3b1c2",
        "preferred_username": "alice",
    }
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def make_token(
    private_key: rsa.RSAPrivateKey, kid: str | None = "k1", alg: str = "RS256", **overrides: Any
) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims(**overrides), private_key, algorithm=alg, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def idp(key1: rsa.RSAPrivateKey) -> FakeIdP:
    return FakeIdP([jwk(key1, "k1")])


@pytest.fixture
async def http(idp: FakeIdP) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(idp.handler)) as client:
        yield client


@pytest.fixture
def make_validator(http: httpx.AsyncClient, clock: FakeClock):
    def make(**overrides: Any) -> TokenValidator:
        settings: dict[str, Any] = {
            "jwks_url": JWKS_URL,
            "issuer": ISSUER,
            "audience": [AUDIENCE],
            "jwks_min_refresh_interval": 30.0,
            "jwks_cache_ttl": 3600.0,
        }
        settings.update(overrides)
        return TokenValidator(AuthConfig(**settings), http, clock=clock)

    return make


@pytest.fixture
def validator(make_validator) -> TokenValidator:
    return make_validator()


async def rejected(validator: TokenValidator, token: str) -> str:
    with pytest.raises(TokenRejected) as info:
        await validator.validate(token)
    if token:
        assert token not in str(info.value)
    return info.value.reason


async def test_valid_token_gives_principal(validator, key1, idp):
    token = make_token(key1)
    principal = await validator.validate(token)
    assert principal.username == "alice"
    assert principal.claims["iss"] == ISSUER
    assert principal.claims["sub"] == "f3b1c2"
    assert token not in repr(principal)
    assert idp.requests == 1


async def test_principal_is_immutable(validator, key1):
    principal = await validator.validate(make_token(key1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        principal.username = "root"  # type: ignore[misc]
    with pytest.raises(TypeError):
        principal.claims["preferred_username"] = "root"  # type: ignore[index]
    assert isinstance(principal, Principal)


async def test_known_key_is_served_from_cache(validator, key1, idp):
    for _ in range(5):
        await validator.validate(make_token(key1))
    assert idp.requests == 1


async def test_bad_signature(validator, intruder_key):
    assert await rejected(validator, make_token(intruder_key, kid="k1")) == (
        "Invalid token signature"
    )


async def test_tampered_payload(validator, key1):
    header, _, signature = make_token(key1).split(".")
    forged = b64(json.dumps(claims(preferred_username="root")).encode())
    assert await rejected(validator, f"{header}.{forged}.{signature}") == (
        "Invalid token signature"
    )


async def test_alg_none_rejected_before_key_lookup(validator, idp):
    token = jwt.encode(claims(), None, algorithm="none", headers={"kid": "k1"})
    assert await rejected(validator, token) == "Token algorithm not allowed"
    assert idp.requests == 0


async def test_hs256_with_public_key_as_secret(validator, key1, idp):
    # The classic key confusion attack: HMAC keyed with the (public) RSA key PEM.
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    payload = b64(json.dumps(claims(preferred_username="root")).encode())
    signing_input = f"{header}.{payload}".encode()
    mac = hmac.new(public_pem(key1).encode(), signing_input, hashlib.sha256).digest()
    token = f"{header}.{payload}.{b64(mac)}"
    assert await rejected(validator, token) == "Token algorithm not allowed"
    assert idp.requests == 0


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "....."])
async def test_malformed_token(validator, idp, token):
    assert await rejected(validator, token) == "Malformed token"
    assert idp.requests == 0


async def test_wrong_issuer(validator, key1):
    token = make_token(key1, iss="https://evil.example/")
    assert await rejected(validator, token) == "Invalid token issuer"


async def test_missing_issuer_when_configured(validator, key1):
    assert await rejected(validator, make_token(key1, iss=None)) == (
        "Token is missing the 'iss' claim"
    )


async def test_wrong_audience(validator, key1):
    token = make_token(key1, aud="some-other-client")
    assert await rejected(validator, token) == "Invalid token audience"


async def test_any_configured_audience_matches(make_validator, key1):
    validator = make_validator(audience=["other", AUDIENCE])
    principal = await validator.validate(make_token(key1, aud=["account", AUDIENCE]))
    assert principal.username == "alice"


async def test_missing_audience_is_rejected(validator, key1):
    assert await rejected(validator, make_token(key1, aud=None)) == (
        "Token is missing the 'aud' claim"
    )


async def test_audience_not_checked_only_when_switched_off(make_validator, key1, caplog):
    with caplog.at_level("WARNING", logger="firecrest_server.auth"):
        validator = make_validator(audience=[], verify_audience=False)
    assert "auth.verify_audience is false" in caplog.text
    principal = await validator.validate(make_token(key1, aud="account"))
    assert principal.claims["aud"] == "account"
    assert (await validator.validate(make_token(key1, aud=None))).username == "alice"


async def test_issuer_not_checked_only_when_switched_off(make_validator, key1, caplog):
    with caplog.at_level("WARNING", logger="firecrest_server.auth"):
        validator = make_validator(issuer=None, verify_issuer=False)
    assert "auth.verify_issuer is false" in caplog.text
    principal = await validator.validate(make_token(key1, iss="https://elsewhere.example/"))
    assert principal.claims["iss"] == "https://elsewhere.example/"


async def test_checking_both_logs_no_warning(make_validator, caplog):
    with caplog.at_level("WARNING", logger="firecrest_server.auth"):
        make_validator()
    assert caplog.records == []


async def test_expired(validator, key1):
    token = make_token(key1, exp=int(time.time()) - 120)
    assert await rejected(validator, token) == "Token has expired"


async def test_expiry_within_leeway_accepted(make_validator, key1):
    validator = make_validator(leeway=60)
    principal = await validator.validate(make_token(key1, exp=int(time.time()) - 10))
    assert principal.username == "alice"


async def test_missing_exp(validator, key1):
    assert await rejected(validator, make_token(key1, exp=None)) == (
        "Token is missing the 'exp' claim"
    )


async def test_nbf_in_the_future(validator, key1):
    token = make_token(key1, nbf=int(time.time()) + 600)
    assert await rejected(validator, token) == "Token is not yet valid"


async def test_min_token_ttl(make_validator, key1):
    validator = make_validator(min_token_ttl=120)
    short = make_token(key1, exp=int(time.time()) + 60)
    assert await rejected(validator, short) == "Access token expires too soon"
    long = make_token(key1, exp=int(time.time()) + 600)
    assert (await validator.validate(long)).username == "alice"


@pytest.mark.parametrize("value", [None, "", 123, ["alice"]])
async def test_missing_or_bad_username_claim(validator, key1, value):
    token = make_token(key1, preferred_username=value)
    assert await rejected(validator, token) == "Token has no 'preferred_username' claim"


async def test_username_claim_is_configurable(make_validator, key1):
    validator = make_validator(username_claim="uid")
    principal = await validator.validate(make_token(key1, uid="bob"))
    assert principal.username == "bob"


@pytest.mark.parametrize(
    "username",
    ["root; rm", "../x", "a/b", "-oProxyCommand=x", "alice\n", "Alice", "x" * 33, ".hidden"],
)
async def test_invalid_username(validator, key1, username):
    token = make_token(key1, preferred_username=username)
    assert await rejected(validator, token) == "Token username is not a valid login name"


@pytest.mark.parametrize("username", ["alice", "john.doe", "_svc", "u-1", "a" * 32])
async def test_valid_usernames(validator, key1, username):
    principal = await validator.validate(make_token(key1, preferred_username=username))
    assert principal.username == username


async def test_unknown_kid_refreshes_once_then_rejects(validator, key1, intruder_key, idp, clock):
    await validator.validate(make_token(key1))
    assert idp.requests == 1
    clock.advance(31)
    token = make_token(intruder_key, kid="nope")
    assert await rejected(validator, token) == "Unknown signing key"
    assert idp.requests == 2
    # Within the floor, further unknown kids do not reach the provider.
    assert await rejected(validator, make_token(intruder_key, kid="nope2")) == (
        "Unknown signing key"
    )
    assert idp.requests == 2


@pytest.mark.parametrize("warm", [False, True])
async def test_flood_of_unknown_kids_causes_one_fetch(
    validator, key1, intruder_key, idp, clock, warm
):
    if warm:
        await validator.validate(make_token(key1))
        clock.advance(31)
    before = idp.requests
    tokens = [make_token(intruder_key, kid=uuid.uuid4().hex) for _ in range(200)]
    results = await asyncio.gather(
        *(validator.validate(token) for token in tokens), return_exceptions=True
    )
    assert all(isinstance(r, TokenRejected) for r in results)
    assert {r.reason for r in results} == {"Unknown signing key"}
    assert idp.requests - before == 1


async def test_cold_start_concurrent_requests_share_one_fetch(validator, key1, idp):
    results = await asyncio.gather(*(validator.validate(make_token(key1)) for _ in range(50)))
    assert [p.username for p in results] == ["alice"] * 50
    assert idp.requests == 1


async def test_requests_waiting_for_a_fetch_resume_together(http, clock, key1, idp):
    # Waiters once queued on a lock and took it in turn, one per event-loop turn: under load,
    # the last of 500 requests arriving at a cold start waited about ten seconds.
    cache = JWKSCache(
        JWKS_URL, http, algorithms=["RS256"], cache_ttl=3600, min_refresh_interval=30, timeout=5
    )
    waiters = [asyncio.create_task(cache.get("k1", "RS256")) for _ in range(200)]
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    turns = 0
    while not all(waiter.done() for waiter in waiters):
        await asyncio.sleep(0)
        turns += 1
    assert turns <= 5
    assert all(waiter.result() is not None for waiter in waiters)
    assert idp.requests == 1


async def test_a_cancelled_waiter_leaves_the_fetch_to_the_others(http, clock, key1, idp):
    cache = JWKSCache(
        JWKS_URL, http, algorithms=["RS256"], cache_ttl=3600, min_refresh_interval=30, timeout=5
    )
    fetcher = asyncio.create_task(cache.get("k1", "RS256"))
    await asyncio.sleep(0)
    waiters = [asyncio.create_task(cache.get("k1", "RS256")) for _ in range(3)]
    await asyncio.sleep(0)
    waiters[0].cancel()
    assert await fetcher is not None
    assert all([await waiter is not None for waiter in waiters[1:]])
    assert waiters[0].cancelled()
    assert idp.requests == 1


async def test_concurrent_misses_share_a_fetch_once_the_floor_has_passed(
    make_validator, key1, intruder_key, idp, clock
):
    validator = make_validator(jwks_min_refresh_interval=1)
    await validator.validate(make_token(key1))
    clock.advance(2)
    tokens = [make_token(intruder_key, kid=uuid.uuid4().hex) for _ in range(200)]
    await asyncio.gather(*(validator.validate(token) for token in tokens), return_exceptions=True)
    assert idp.requests == 2


async def test_key_rotation(validator, key1, key2, idp, clock):
    assert (await validator.validate(make_token(key1))).username == "alice"
    idp.keys = [jwk(key1, "k1"), jwk(key2, "k2")]
    new_token = make_token(key2, kid="k2")
    # The refresh floor applies right after the first fetch...
    assert await rejected(validator, new_token) == "Unknown signing key"
    assert idp.requests == 1
    # ...and once it has passed the new key is picked up.
    clock.advance(31)
    assert (await validator.validate(new_token)).username == "alice"
    assert idp.requests == 2
    # A key withdrawn from the JWKS stops validating once the cache expires.
    idp.keys = [jwk(key2, "k2")]
    clock.advance(3600)
    assert await rejected(validator, make_token(key1)) == "Unknown signing key"
    assert idp.requests == 3


@pytest.mark.parametrize("failure", ["connect", "500", "garbage"])
async def test_provider_down_keeps_cached_keys(validator, key1, intruder_key, idp, clock, failure):
    assert (await validator.validate(make_token(key1))).username == "alice"
    idp.failure = failure
    clock.advance(7200)  # well past the cache TTL: the cached keys are stale
    assert (await validator.validate(make_token(key1))).username == "alice"
    assert idp.requests == 2  # a refresh was attempted, and failed
    clock.advance(31)
    assert await rejected(validator, make_token(intruder_key, kid="x")) == "Unknown signing key"
    assert (await validator.validate(make_token(key1))).username == "alice"
    assert idp.requests == 3


async def test_provider_down_at_start(validator, key1, idp, clock):
    idp.failure = "connect"
    assert await rejected(validator, make_token(key1)) == "Unknown signing key"
    assert await rejected(validator, make_token(key1)) == "Unknown signing key"
    assert idp.requests == 1  # failed fetches are floored too
    idp.failure = None
    clock.advance(31)
    assert (await validator.validate(make_token(key1))).username == "alice"


@pytest.mark.parametrize(
    "entry",
    [{"use": "enc"}, {"alg": "RS512"}, {"key_ops": ["encrypt"]}, {"kty": "oct", "k": "c2VjcmV0"}],
    ids=["encryption-key", "alg-not-allowed", "no-verify-op", "symmetric"],
)
async def test_unusable_jwks_keys_ignored(make_validator, key1, idp, entry):
    idp.keys = [{**jwk(key1, "k1"), **entry}]
    assert await rejected(make_validator(), make_token(key1)) == "Unknown signing key"


async def test_cache_drops_keys_for_algorithms_not_allowed(http, clock, key1, key2, idp):
    idp.keys = [jwk(key1, "k1", alg="RS512"), jwk(key2, "k2", alg="RS256")]
    cache = JWKSCache(
        JWKS_URL,
        http,
        algorithms=["RS256"],
        cache_ttl=3600,
        min_refresh_interval=30,
        timeout=5,
        clock=clock,
    )
    assert await cache.keys_for("RS512") == []
    assert await cache.get("k1", "RS512") is None
    assert [key.key_id for key in await cache.keys_for("RS256")] == ["k2"]


async def test_jwk_without_alg_serves_allowed_algorithms(make_validator, key1, idp):
    idp.keys = [jwk(key1, "k1", alg=None)]
    validator = make_validator(algorithms=["RS256", "PS256"])
    assert (await validator.validate(make_token(key1, alg="PS256"))).username == "alice"
    assert (await validator.validate(make_token(key1, alg="RS256"))).username == "alice"


async def test_token_alg_must_match_jwk_alg(make_validator, key1, idp):
    validator = make_validator(algorithms=["RS256", "RS512"])
    assert await rejected(validator, make_token(key1, alg="RS512")) == "Unknown signing key"


async def test_token_without_kid_tries_jwks_keys(validator, key1, key2, idp):
    idp.keys = [jwk(key2, "k2"), jwk(key1, None)]
    assert (await validator.validate(make_token(key1, kid=None))).username == "alice"


async def test_static_public_keys(make_validator, key1, key2, intruder_key, idp):
    validator = make_validator(jwks_url=None, public_keys=[public_pem(key2), public_pem(key1)])
    assert (await validator.validate(make_token(key1, kid=None))).username == "alice"
    assert (await validator.validate(make_token(key2, kid="anything"))).username == "alice"
    assert await rejected(validator, make_token(intruder_key, kid=None)) == (
        "Invalid token signature"
    )
    assert idp.requests == 0


async def test_static_keys_still_check_claims(make_validator, key1):
    validator = make_validator(jwks_url=None, public_keys=[public_pem(key1)])
    token = make_token(key1, kid=None, exp=int(time.time()) - 120)
    assert await rejected(validator, token) == "Token has expired"


def test_private_key_in_public_keys_is_a_config_error(make_validator, key1):
    private_pem = key1.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    with pytest.raises(ConfigError, match=r"auth\.public_keys\.0"):
        make_validator(jwks_url=None, public_keys=[private_pem])


def test_public_key_unfit_for_algorithms_is_a_config_error(make_validator, key1):
    with pytest.raises(ConfigError, match="fits none"):
        make_validator(jwks_url=None, public_keys=[public_pem(key1)], algorithms=["ES256"])


# ------------------------------------------------------------------- validated-token cache


async def test_a_validated_token_is_not_verified_again(validator, key1, monkeypatch):
    decoded: list[str] = []
    decode = validator._decode
    monkeypatch.setattr(validator, "_decode", lambda *a: decoded.append("x") or decode(*a))
    token = make_token(key1)
    first = await validator.validate(token)
    for _ in range(3):
        assert await validator.validate(token) is first
    assert len(decoded) == 1
    # Any other string, even the same claims signed again, is verified in full.
    assert await rejected(validator, token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))
    await validator.validate(make_token(key1, jti=uuid.uuid4().hex))
    assert len(decoded) == 3


async def test_a_cached_token_is_verified_again_after_the_cache_ttl(
    validator, key1, clock, monkeypatch
):
    decoded: list[str] = []
    decode = validator._decode
    monkeypatch.setattr(validator, "_decode", lambda *a: decoded.append("x") or decode(*a))
    token = make_token(key1)
    await validator.validate(token)
    clock.advance(59)
    await validator.validate(token)
    assert len(decoded) == 1
    clock.advance(2)
    await validator.validate(token)
    assert len(decoded) == 2


async def test_a_cached_token_still_expires(make_validator, key1):
    validator = make_validator(leeway=0)
    exp = int(time.time()) + 2
    token = make_token(key1, exp=exp)
    await validator.validate(token)
    await asyncio.sleep(exp - time.time() + 0.1)
    assert await rejected(validator, token) == "Token has expired"


async def test_a_cached_token_is_refused_once_it_expires_too_soon(make_validator, key1):
    validator = make_validator(min_token_ttl=5)
    exp = int(time.time()) + 7
    token = make_token(key1, exp=exp)
    await validator.validate(token)
    await asyncio.sleep(exp - 5 - time.time() + 0.1)
    assert await rejected(validator, token) == "Access token expires too soon"


async def test_prefetched_keys_serve_the_first_token_without_a_fetch(validator, key1, idp):
    await validator.prefetch_keys()
    assert idp.requests == 1
    assert (await validator.validate(make_token(key1))).username == "alice"
    assert idp.requests == 1


async def test_a_failed_prefetch_does_not_hold_the_first_token_behind_the_floor(
    validator, key1, idp
):
    idp.failure = "connect"
    await validator.prefetch_keys()  # logged, not raised: the provider may be down at start
    idp.failure = None
    # Well within the 30 s refresh floor: the first token fetches the keys itself.
    assert (await validator.validate(make_token(key1))).username == "alice"
    assert idp.requests == 2


async def test_one_token_brought_by_many_requests_at_once_is_checked_once(
    validator, key1, idp, monkeypatch
):
    # No keys yet (a failed prefetch, a rotated key): every request waits for the same fetch,
    # and then each would check the same signature.
    checks = 0
    decode = validator._decode

    def counting_decode(*args, **kwargs):
        nonlocal checks
        checks += 1
        return decode(*args, **kwargs)

    monkeypatch.setattr(validator, "_decode", counting_decode)
    token = make_token(key1)
    principals = await asyncio.gather(*(validator.validate(token) for _ in range(50)))
    assert {p.username for p in principals} == {"alice"}
    assert checks == 1
    # A rejected token is rejected for every caller, and nothing is left running.
    bad = make_token(key1, iss="https://elsewhere")
    reasons = await asyncio.gather(*(rejected(validator, bad) for _ in range(5)))
    assert set(reasons) == {"Invalid token issuer"}
    assert validator._validating == {}
