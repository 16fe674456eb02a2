"""Body caps and the no-token refusal: the policy per route, and the middleware on a tiny app."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse

from firecrest_server.api.upload_form import FORM_OVERHEAD
from firecrest_server.body_limits import BodyHeaders, BodyLimitMiddleware, BodyLimits, refusal
from firecrest_server.config import parse_settings
from firecrest_server.staging.s3 import MAX_COMPLETE_BODY


def _settings(**limits):
    system = {
        "name": "Cluster",
        "ssh": {
            "host": "login",
            "known_hosts": "/etc/known_hosts",
            "credentials": {"type": "ca", "ca_key": "K"},
        },
        "data_operation": {"max_ops_file_size": 5_000_000, "staging_part_size": 8 * 2**20},
    }
    return parse_settings(
        {
            "server": {"limits": limits, "root_path": "/api"},
            "auth": {"jwks_url": "https://idp/jwks", "issuer": "https://idp", "audience": "f7t"},
            "systems": [system],
        }
    )


def test_each_route_gets_its_own_cap() -> None:
    limits = BodyLimits(_settings(max_json_body=4096))
    upload = limits.policy("POST", "/filesystem/CLUSTER/ops/upload")
    assert (upload.limit, upload.needs_token) == (5_000_000 + FORM_OVERHEAD, True)
    part = limits.policy("PUT", "/staging/tok/parts/3")
    assert (part.limit, part.needs_token) == (8 * 2**20, False)
    complete = limits.policy("POST", "/staging/tok/complete")
    assert (complete.limit, complete.needs_token) == (MAX_COMPLETE_BODY, False)
    assert limits.policy("POST", "/compute/cluster/jobs").limit == 4096
    assert limits.policy("POST", "/compute/cluster/jobs").needs_token
    # An unknown system's upload gets the small cap (the route answers 404 anyway).
    assert limits.policy("POST", "/filesystem/other/ops/upload").limit == 4096
    # The tar-stream extension is unbounded by default, bounded when configured.
    assert limits.policy("PUT", "/filesystem/cluster/ops/tree").limit is None
    bounded = BodyLimits(_settings(max_tree_body=10_000))
    assert bounded.policy("PUT", "/filesystem/cluster/ops/tree").limit == 10_000


def test_root_path_and_public_routes() -> None:
    limits = BodyLimits(_settings())
    assert limits.policy("POST", "/api/filesystem/cluster/ops/upload").limit == 5_000_000 + (
        FORM_OVERHEAD
    )
    for path in ("/status/liveness", "/metrics", "/openapi.json", "/api/status/liveness"):
        assert not limits.policy("GET", path).needs_token
    assert limits.policy("GET", "/status/systems").needs_token


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"content-length", b"10")], 401),  # a body and no token
        ([(b"transfer-encoding", b"chunked")], 401),
        ([(b"content-length", b"0")], None),  # no body: the route answers as always
        ([], None),
        ([(b"authorization", b"Bearer x"), (b"content-length", b"2000")], 413),
        ([(b"authorization", b"Bearer x"), (b"content-length", b"1024")], None),
        ([(b"authorization", b"Bearer x"), (b"transfer-encoding", b"chunked")], None),
        ([(b"authorization", b"  "), (b"content-length", b"5")], 401),
    ],
)
def test_refusal_before_reading(headers, expected) -> None:
    policy = BodyLimits(_settings(max_json_body=1024)).policy("POST", "/compute/c/jobs")
    error = refusal(policy, BodyHeaders.from_scope(headers))
    assert (error.status_code if error else None) == expected


def test_public_route_with_a_body_needs_no_token() -> None:
    policy = BodyLimits(_settings()).policy("PUT", "/staging/tok/parts/1")
    assert refusal(policy, BodyHeaders.from_scope([(b"content-length", b"100")])) is None
    too_big = [(b"content-length", str(8 * 2**20 + 1).encode())]
    error = refusal(policy, BodyHeaders.from_scope(too_big))
    assert error is not None
    assert error.status_code == 413


# ------------------------------------------------------------------ the middleware itself


class _Echo:
    """An app that reads the whole body (as FastAPI does for JSON) and reports its size."""

    def __init__(self) -> None:
        self.bodies_read = 0

    async def __call__(self, scope, receive, send) -> None:
        body = await Request(scope, receive).body()
        self.bodies_read += 1
        await JSONResponse({"size": len(body)})(scope, receive, send)


@pytest.fixture
def echo() -> _Echo:
    return _Echo()


@pytest.fixture
def client(echo) -> httpx.AsyncClient:
    app = BodyLimitMiddleware(echo, _settings(max_json_body=4096))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def _chunks(count: int, size: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b"x" * size


async def test_no_token_is_401_in_firecrest_shape_and_closes(client, echo) -> None:
    response = await client.post("/compute/c/jobs", content=b"{}" * 100)
    assert response.status_code == 401
    assert response.headers["connection"] == "close"
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert set(body) == {"errorType", "message", "causedBy", "data", "user"}
    assert echo.bodies_read == 0


async def test_declared_length_over_the_cap_is_413_unread(client, echo) -> None:
    auth = {"Authorization": "Bearer x"}
    response = await client.post("/compute/c/jobs", content=b"x" * 5000, headers=auth)
    assert response.status_code == 413
    assert "4096 bytes limit" in response.json()["message"]
    assert echo.bodies_read == 0


async def test_chunked_body_is_cut_off_at_the_cap(client, echo) -> None:
    auth = {"Authorization": "Bearer x"}
    response = await client.post("/compute/c/jobs", content=_chunks(100, 1000), headers=auth)
    assert response.status_code == 413
    assert response.headers["connection"] == "close"
    assert json.loads(response.content)["errorType"] == "error"
    assert echo.bodies_read == 0  # the app never got the whole body
    within = await client.post("/compute/c/jobs", content=_chunks(4, 1000), headers=auth)
    assert within.status_code == 200
    assert within.json() == {"size": 4000}
