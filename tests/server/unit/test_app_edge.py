"""The app's edge in process: rate limits, /metrics, liveness, access log and health 503s.

No cluster is involved: the system's login node is a closed local port, so SSH fails at once.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import asyncssh
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from firecrest_server.app import create_app
from firecrest_server.config import parse_settings
from firecrest_server.logs import JsonFormatter

ISSUER = "https://idp.example"
AUDIENCE = "firecrest"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def token(signing_key) -> Callable[[str], str]:
    def make(user: str, uid: int | None = 5000) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "preferred_username": user, "iat": now}
        claims |= {"exp": now + 600, "uid": uid}
        return jwt.encode(claims, signing_key, algorithm="RS256")

    return make


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings(signing_key, **server):
    pem = signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    probe_key = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    return parse_settings(
        {
            "server": server,
            "auth": {
                "public_keys": [pem.decode()],
                "issuer": ISSUER,
                "audience": AUDIENCE,
                # Uids from the token: these tests do not depend on this host's users.
                "principals": {"uid_source": "claim", "uid_claim": "uid"},
            },
            "rate_limit": {"requests_per_second": 0.5, "burst": 3, "max_concurrent_requests": 8},
            "systems": [
                {
                    "name": "cluster",
                    "ssh": {
                        "host": "127.0.0.1",
                        "port": closed_port(),
                        "known_hosts": "/dev/null",
                        "connect_timeout": 2,
                        "credentials": {
                            "type": "static_keys",
                            "keys": {"svc": {"private_key": probe_key}},
                        },
                    },
                    "file_systems": [{"path": "/home"}],
                    "probe_user": "svc",
                    "probe_interval": 3600,
                }
            ],
        }
    )


@pytest.fixture
async def client(signing_key) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings(signing_key))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            http.app = app  # type: ignore[attr-defined]
            yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_rate_limit_gives_429_with_retry_after_per_user(client, token) -> None:
    alice, bob = bearer(token("alice")), bearer(token("bob"))
    statuses = [(await client.get("/status/systems", headers=alice)).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    refused = await client.get("/status/systems", headers=alice)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["user"] == "alice"
    assert refused.headers["F7T-AppVersion"]
    assert (await client.get("/status/systems", headers=bob)).status_code == 200
    # Unauthenticated endpoints are not limited (and cost no user budget).
    for _ in range(10):
        assert (await client.get("/status/liveness")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
    metrics = (await client.get("/metrics")).text
    assert 'firecrest_rate_limited_requests_total{reason="rate"} 1.0' in metrics


async def test_slots_are_released_after_errors(client, token) -> None:
    alice = bearer(token("alice"))
    assert (await client.get("/status/nosuch/userinfo", headers=alice)).status_code == 404
    limiter = client.app.state.runtime.limiter  # type: ignore[attr-defined]
    assert limiter.in_flight("alice") == 0


async def test_auth_username_header_names_the_checked_caller_only(client, token) -> None:
    # FirecREST v2 sends F7T-AuthUsername once it knows the caller, errors included.
    ok = await client.get("/status/systems", headers=bearer(token("alice")))
    assert ok.headers["F7T-AuthUsername"] == "alice"
    missing = await client.get("/status/nosuch/userinfo", headers=bearer(token("bob")))
    assert (missing.status_code, missing.headers["F7T-AuthUsername"]) == (404, "bob")
    forged = await client.get("/status/systems", headers=bearer("not-a-token"))
    assert forged.status_code == 401
    assert "F7T-AuthUsername" not in forged.headers
    assert "F7T-AuthUsername" not in (await client.get("/status/liveness")).headers


@pytest.mark.parametrize("name", ["eve\r\nSet-Cookie: a=b", "eve bob", "e" * 200, "ev\u00e9"])
async def test_auth_username_header_never_carries_a_crafted_name(client, token, name) -> None:
    # The claim is signed by the identity provider, yet a name that is not plain never reaches
    # a header (response splitting, or a header some proxy would choke on).
    answer = await client.get("/status/systems", headers=bearer(token(name)))
    assert "F7T-AuthUsername" not in answer.headers
    assert "Set-Cookie" not in answer.headers


async def test_metrics_count_requests_by_route_template(client, token) -> None:
    alice = bearer(token("alice"))
    await client.get("/status/systems", headers=alice)
    await client.get("/no/such/route")
    body = (await client.get("/metrics")).text
    assert (
        'firecrest_http_requests_total{method="GET",route="/status/systems",status="200"}' in body
    )
    assert 'route="<unmatched>",status="404"' in body
    assert "/no/such/route" not in body
    assert "firecrest_ssh_connections" in body
    assert "firecrest_http_request_duration_seconds_bucket" in body


async def test_metrics_can_be_turned_off(signing_key) -> None:
    app = create_app(settings(signing_key, metrics=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            assert (await http.get("/metrics")).status_code == 404


async def test_unreachable_login_node_gives_fast_503(client, token) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    await runtime.health.probe("cluster")
    live = (await client.get("/status/liveness")).json()
    assert set(live["healthcheckRuns"]) == {"cluster"}
    assert live["lastUpdate"] >= 0
    systems = (await client.get("/status/systems", headers=bearer(token("alice")))).json()
    health = {h["serviceType"]: h for h in systems["systems"][0]["servicesHealth"]}
    assert health["ssh"]["healthy"] is False
    assert health["filesystem"]["path"] == "/home"
    started = time.monotonic()
    refused = await client.get("/status/cluster/userinfo", headers=bearer(token("bob")))
    assert refused.status_code == 503
    assert int(refused.headers["Retry-After"]) >= 1
    assert time.monotonic() - started < 1
    metrics = (await client.get("/metrics")).text
    assert 'firecrest_service_healthy{path="",service="ssh",system="cluster"} 0.0' in metrics
    assert 'program="true",result="error"' in metrics  # the probe went through the audit log


async def test_systems_are_described_in_firecrest_v2s_shape(client, token) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    await runtime.health.probe("cluster")
    system = (await client.get("/status/systems", headers=bearer(token("alice")))).json()
    [described] = system["systems"]
    # FirecREST v2's DataOperation is not camelCased: its keys are snake_case on the wire.
    assert described["dataOperation"] == {
        "max_ops_file_size": 5 * 1024 * 1024,
        "datatransfer_jobs_directives": [],
        "data_transfer": None,
    }
    assert described["ssh"]["timeout"] == {
        "connection": 2,
        "login": 2,
        "commandExecution": 30,
        "idleTimeout": 120,
        "keepAlive": 15,
    }
    assert (described["ssh"]["proxyHost"], described["ssh"]["proxyPort"]) == (None, None)
    assert described["scheduler"]["connectionMode"] == "ssh"
    assert described["probing"] == {
        "services": {s: {"timeout": 30} for s in ("ssh", "scheduler", "filesystem")},
        "intervalCheck": 3600,
    }
    # Dates, as upstream's datetimes; and a probe that could not run counts as unhealthy.
    assert datetime.fromisoformat(described["lastHealthCheck"]).tzinfo is not None
    health = described["servicesHealth"]
    assert {h["serviceType"] for h in health} == {"ssh", "scheduler", "filesystem"}
    assert all(h["healthy"] is False for h in health)
    assert all(datetime.fromisoformat(h["lastChecked"]) for h in health)
    live = (await client.get("/status/liveness")).json()
    assert datetime.fromisoformat(live["healthcheckRuns"]["cluster"]).tzinfo is not None


async def test_access_log_has_user_and_no_query_or_token(client, token, caplog) -> None:
    alice_token = token("alice")
    with caplog.at_level(logging.DEBUG):
        await client.get(
            "/status/systems?secret=x", headers=bearer(alice_token) | {"X-Request-ID": "req-7"}
        )
    formatter = JsonFormatter()
    lines = [json.loads(formatter.format(r)) for r in caplog.records]
    access = [e for e in lines if e["logger"] == "firecrest_server.access"]
    assert len(access) == 1
    entry = access[0]
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/status/systems", 200)
    assert (entry["user"], entry["request_id"]) == ("alice", "req-7")
    assert entry["seconds"] >= 0
    ours = [r for r in caplog.records if r.name.startswith("firecrest_server")]
    everything = "\n".join(formatter.format(r) for r in ours)
    assert alice_token not in everything
    assert "secret=x" not in everything


@pytest.mark.parametrize(
    ("user", "uid"), [("root", 5000), ("alice", 0), ("daemon", 1), ("nobody", 65534), ("x", None)]
)
async def test_system_accounts_get_403_before_any_ssh(client, token, user, uid) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    pool_users = runtime.pools["cluster"].stats()["users"]  # the health probe's, if it ran
    refused = await client.get("/status/cluster/userinfo", headers=bearer(token(user, uid)))
    assert refused.status_code == 403, refused.text
    body = refused.json()
    assert set(body) == {"errorType", "message", "causedBy", "data", "user"}
    assert f"User {user} may not use this service" in body["message"]
    assert runtime.limiter.in_flight(user) == 0
    metrics = (await client.get("/metrics")).text
    assert 'program="id"' not in metrics  # userinfo's command never ran
    assert runtime.pools["cluster"].stats()["users"] == pool_users  # no SSH login was tried


async def test_liveness_is_503_while_draining_and_the_rest_still_serves(client, token) -> None:
    assert (await client.get("/status/liveness")).status_code == 200
    client.app.state.runtime.drain.draining = True  # what the first SIGTERM does
    draining = await client.get("/status/liveness")
    assert draining.status_code == 503
    assert draining.headers["Retry-After"] == "1"
    assert "shutting down" in draining.json()["message"]
    # Requests the balancer still sends before it notices are served as usual.
    assert (await client.get("/status/systems", headers=bearer(token("bob")))).status_code == 200


async def test_routes_are_built_before_the_first_request(signing_key, monkeypatch) -> None:
    """FastAPI builds a route's request handling lazily; the lifespan has it done, so a fresh
    worker's first requests do not wait for it (server_timing and benchmarks/cold_burst.py)."""
    import fastapi.routing

    if not hasattr(fastapi.routing, "_populate_api_route_state"):
        # FastAPI before the lazy build (0.115-0.13x, inside our floor) builds routes when
        # they are declared: there is nothing left for the first request to wait for.
        pytest.skip("this FastAPI builds its routes eagerly")
    built = 0
    populate = fastapi.routing._populate_api_route_state

    def counting(*args, **kwargs):
        nonlocal built
        built += 1
        return populate(*args, **kwargs)

    app = create_app(settings(signing_key))
    monkeypatch.setattr(fastapi.routing, "_populate_api_route_state", counting)
    async with app.router.lifespan_context(app):
        assert built > 0  # FastAPI still builds lazily: else this test checks nothing
        built = 0
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            assert (await http.get("/status/liveness")).status_code == 200
            assert built == 0
            # The preparation itself was neither logged nor counted as a request.
            assert 'route="<unmatched>"' not in (await http.get("/metrics")).text


async def test_server_timing_header_only_when_configured(signing_key, token) -> None:
    alice = bearer(token("alice"))
    for enabled in (False, True):
        app = create_app(settings(signing_key, timing_header=enabled))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                answer = await http.get("/status/systems", headers=alice)
        assert answer.status_code == 200
        if not enabled:
            assert "server-timing" not in answer.headers
            continue
        phases = dict(
            item.strip().split(";dur=") for item in answer.headers["server-timing"].split(",")
        )
        assert {"auth", "app"} <= set(phases)
        assert 0 <= float(phases["auth"]) <= float(phases["app"])
