"""Forged, stolen-shape and malformed bearer tokens against the real stack.

Each bad token must get 401 with a ``WWW-Authenticate: Bearer`` challenge, must never be echoed
back (body or headers), and must run nothing on the cluster. Tokens are forged with the identity
provider's own private key (``stack.json``'s ``signing_key``), so every negative case differs
from an accepted token in exactly the property under test — the first test proves the forger
makes tokens the server accepts.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from firecrest_dev.info import StackInfo
from firecrest_dev.own_server import own_server

from .conftest import Canary, b64url, bearer, forge, ops

pytestmark = pytest.mark.stack

CANARY = Canary()


def _foreign_key() -> rsa.RSAPrivateKey:
    # A key object, not PEM: pyjwt would parse (and check) a PEM key again for every token.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _hs256(header: dict, payload: dict, secret: bytes) -> str:
    signing_input = f"{b64url(json.dumps(header))}.{b64url(json.dumps(payload))}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def _claims(stack: StackInfo, **overrides) -> dict:
    now = int(time.time())
    return {
        "iss": stack.issuer,
        "aud": stack.audience,
        "iat": now,
        "exp": now + 300,
        "preferred_username": "alice",
    } | overrides


def _probe_url(stack: StackInfo) -> str:
    """An endpoint that runs a program on the cluster: if auth let a token through, it would."""
    return f"{stack.url}{ops(stack)}/checksum"


def _assert_rejected(response: httpx.Response, token: str, status: int = 401) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    challenge = response.headers.get("WWW-Authenticate", "")
    assert challenge.startswith("Bearer"), response.headers
    if token:
        # No part of the token comes back: not the whole, not its signature, not its payload.
        for piece in {token, *(p for p in token.split(".") if len(p) >= 8)}:
            assert piece not in response.text
            assert all(piece not in value for value in response.headers.values())
    body = response.json()
    assert body["user"] is None  # nobody was authenticated
    assert body["message"]


def _attempt(stack: StackInfo, token: str, path: str) -> httpx.Response:
    return httpx.get(_probe_url(stack), params={"path": path}, headers=bearer(token), timeout=30)


@pytest.fixture(scope="module")
def target(stack: StackInfo, token_for) -> Iterator[str]:
    """A file of alice's that a successful request would checksum."""
    path = f"{stack.users['alice'].home}/auth-{uuid.uuid4().hex[:8]}.txt"
    headers = bearer(token_for("alice"))
    response = httpx.post(
        f"{stack.url}{ops(stack)}/upload",
        params={"path": str(Path(path).parent)},
        files={"file": (Path(path).name, b"x")},
        headers=headers,
        timeout=30,
    )
    assert response.status_code == 204, response.text
    yield path
    httpx.delete(f"{stack.url}{ops(stack)}/rm", params={"path": path}, headers=headers)


@pytest.fixture(autouse=True)
def no_canary_after_each_test() -> Iterator[None]:
    yield
    assert CANARY.hits() == []


def test_the_forger_makes_tokens_the_server_accepts(
    stack: StackInfo, provider_kid: str, target: str
) -> None:
    token = forge(stack, kid=provider_kid)
    response = _attempt(stack, token, target)
    assert response.status_code == 200, response.text
    # Also without a kid: the server then tries every key of the allowed algorithm.
    assert _attempt(stack, forge(stack), target).status_code == 200


def test_alg_none(stack: StackInfo, target: str) -> None:
    for alg in ("none", "None", "NONE"):
        header = b64url(json.dumps({"alg": alg, "typ": "JWT"}))
        token = f"{header}.{b64url(json.dumps(_claims(stack)))}."
        _assert_rejected(_attempt(stack, token, target), token)


def test_hs256_with_the_public_key_as_the_secret(
    stack: StackInfo, provider_kid: str, target: str
) -> None:
    """The classic key-confusion attack: the provider's *public* key used as an HMAC secret."""
    jwks = httpx.get(stack.issuer + "/jwks", timeout=10).json()
    jwk = jwks["keys"][0]
    public = jwt.PyJWK(jwk).key
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    secrets = [
        pem,
        pem.strip(),
        der,
        json.dumps(jwk).encode(),
        json.dumps(jwk, separators=(",", ":")).encode(),
        json.dumps(jwks).encode(),
    ]
    for secret in secrets:
        for header in ({"alg": "HS256", "kid": provider_kid}, {"alg": "HS256"}):
            token = _hs256(header, _claims(stack), secret)
            _assert_rejected(_attempt(stack, token, target), token)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"iss": "http://evil.example"}, "issuer"),
        ({"iss": None}, "'iss'"),
        ({"aud": "someone-else"}, "audience"),
        ({"aud": ["someone-else", "another"]}, "audience"),
        ({"aud": None}, "'aud'"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"exp": None}, "'exp'"),
        ({"exp": "9999999999"}, "malformed"),
        ({"nbf": int(time.time()) + 3600}, "not yet valid"),
        ({"preferred_username": None}, "claim"),
        ({"preferred_username": ""}, "claim"),
        ({"preferred_username": ["alice"]}, "claim"),
        ({"preferred_username": 1001}, "claim"),
    ],
)
def test_claims_that_must_be_refused(
    stack: StackInfo, provider_kid: str, target: str, change: dict, why: str
) -> None:
    token = forge(stack, change, kid=provider_kid)
    response = _attempt(stack, token, target)
    _assert_rejected(response, token)
    assert why.lower() in response.json()["message"].lower(), response.json()["message"]


@pytest.mark.parametrize(
    "username",
    [
        f"alice;{CANARY.command}",
        f"alice$({CANARY.command})",
        f"alice`{CANARY.command}`",
        f"alice\n{CANARY.command}",
        f"alice' ; {CANARY.absolute_command} ; '",
        "../bob",
        "../../root",
        "alice/../bob",
        "bob/",
        "-oProxyCommand=sh",
        "root@localhost",
        "alice bob",
        "Alice",
        "alice\x00bob",
        "a" * 64,
    ],
)
def test_usernames_that_are_no_login_name(
    stack: StackInfo, provider_kid: str, target: str, username: str
) -> None:
    """The username becomes an SSH principal and a login: it must be a plain login name."""
    token = forge(stack, {"preferred_username": username}, kid=provider_kid)
    response = _attempt(stack, token, target)
    _assert_rejected(response, token)
    assert username not in response.text


def test_token_signed_by_a_foreign_key(stack: StackInfo, provider_kid: str, target: str) -> None:
    foreign = _foreign_key()
    claims = _claims(stack)
    for headers in ({"kid": provider_kid}, {"kid": uuid.uuid4().hex}, {}):
        token = jwt.encode(claims, foreign, algorithm="RS256", headers=headers or None)
        _assert_rejected(_attempt(stack, token, target), token)


def test_tampered_payload_keeps_no_signature(
    stack: StackInfo, provider_kid: str, target: str
) -> None:
    header, _, signature = forge(stack, kid=provider_kid).split(".")
    payload = b64url(json.dumps(_claims(stack, preferred_username="bob")))
    token = f"{header}.{payload}.{signature}"
    _assert_rejected(_attempt(stack, token, target), token)


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer garbage",
        "Bearer a.b.c",
        "Bearer eyJhbGciOiJSUzI1NiJ9.e30.",
        "Bearer " + "A" * 20000,
        "Bearer \u00e9t\u00e9",
        "Basic YWxpY2U6c2VjcmV0",
        "Token abc",
        "Bearer",
        "",
    ],
)
def test_garbage_authorization_headers(stack: StackInfo, target: str, authorization: str) -> None:
    encoded = authorization.encode("utf-8")
    response = httpx.get(
        _probe_url(stack),
        params={"path": target},
        headers=[(b"Authorization", encoded)] if authorization else [],
        timeout=30,
    )
    token = authorization.partition(" ")[2]
    _assert_rejected(response, token if len(token) >= 8 else "")


def test_token_in_the_query_string_is_not_a_credential(
    stack: StackInfo, target: str, token_for
) -> None:
    """Tokens in URLs end up in logs and proxies: only the Authorization header counts."""
    token = token_for("alice")
    for name in ("access_token", "token", "Authorization", "jwt"):
        response = httpx.get(_probe_url(stack), params={"path": target, name: token}, timeout=30)
        _assert_rejected(response, token)
    response = httpx.get(
        _probe_url(stack), params={"path": target}, cookies={"access_token": token}, timeout=30
    )
    _assert_rejected(response, token)


def test_a_valid_token_for_alice_never_acts_as_bob(
    stack: StackInfo, provider_kid: str, token_for
) -> None:
    userinfo = f"{stack.url}/status/{stack.system}/userinfo"
    alice = bearer(token_for("alice"))
    # Whatever else the request says, the token's user is the one who acts.
    spoofs = [
        {},
        {"X-Forwarded-User": "bob"},
        {"X-Remote-User": "bob"},
        {"X-User": "bob"},
        {"Remote-User": "bob"},
        {"X-Username": "bob"},
    ]
    for extra in spoofs:
        response = httpx.get(userinfo, headers=alice | extra, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["user"]["name"] == "alice"
    response = httpx.get(userinfo, params={"user": "bob", "username": "bob"}, headers=alice)
    assert response.json()["user"]["name"] == "alice"
    # Other claims naming bob do not matter: only the configured username claim does.
    token = forge(
        stack, {"sub": "bob", "name": "bob", "username": "bob", "email": "bob@x"}, kid=provider_kid
    )
    response = httpx.get(userinfo, headers=bearer(token), timeout=30)
    assert response.json()["user"]["name"] == "alice"
    # And alice's token opens nothing of bob's: his home is his.
    listing = httpx.get(
        f"{stack.url}{ops(stack)}/ls",
        params={"path": stack.users["bob"].home},
        headers=alice,
        timeout=30,
    )
    assert listing.status_code == 403, listing.text


def test_error_bodies_never_echo_a_valid_token_either(
    stack: StackInfo, token_for, target: str
) -> None:
    token = token_for("alice")
    for response in (
        httpx.get(_probe_url(stack), params={"path": "relative"}, headers=bearer(token)),
        httpx.get(f"{stack.url}/status/nosuchsystem/userinfo", headers=bearer(token)),
        httpx.get(
            f"{stack.url}{ops(stack)}/view",
            params={"path": target, "size": -1},
            headers=bearer(token),
        ),
    ):
        assert 400 <= response.status_code < 500
        assert token not in response.text
        assert token.split(".")[2] not in response.text
        assert all(token not in v for v in response.headers.values())


# ------------------------------------------------------------------------- JWKS fetch flood


class _CountingJwksProxy:
    """Serves the provider's JWKS, counting how often the API server comes to fetch it."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.fetches = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with proxy._lock:
                    proxy.fetches += 1
                body = httpx.get(proxy.upstream, timeout=10).content
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _CountingJwksProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow
async def test_a_flood_of_unknown_kids_causes_a_bounded_number_of_jwks_fetches(
    stack: StackInfo, provider_kid: str, tmp_path: Path
) -> None:
    """300 concurrent tokens, each naming a random key id nobody knows, must not turn the API
    server into a amplifier against the identity provider: the JWKS cache refreshes on an
    unknown kid at most once per `jwks_min_refresh_interval` (30 s by default)."""
    foreign = _foreign_key()
    claims = _claims(stack)
    tokens = [
        jwt.encode(claims, foreign, algorithm="RS256", headers={"kid": uuid.uuid4().hex})
        for _ in range(300)
    ]
    with (
        _CountingJwksProxy(stack.issuer + "/jwks") as proxy,
        own_server(stack, tmp_path, overrides={"auth": {"jwks_url": proxy.url}}) as url,
    ):
        limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
            responses = await asyncio.gather(
                *(client.get("/status/systems", headers=bearer(t)) for t in tokens)
            )
            assert sorted({r.status_code for r in responses}) == [401]
            for response in responses[:20]:
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
            flood_fetches = proxy.fetches
            # The first request of a cold server fetches once; the unknown kids that follow
            # may add one refresh; the floor stops the rest.
            assert 1 <= flood_fetches <= 2, flood_fetches

            # The provider's real tokens still work, served from the cache.
            good = forge(stack, kid=provider_kid)
            assert (await client.get("/status/systems", headers=bearer(good))).status_code == 200
            # A second wave inside the refresh floor fetches nothing at all.
            again = await asyncio.gather(
                *(client.get("/status/systems", headers=bearer(t)) for t in tokens[:100])
            )
            assert {r.status_code for r in again} == {401}
            assert proxy.fetches == flood_fetches
