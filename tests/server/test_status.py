"""/status/{system}/userinfo, health probes, liveness and /metrics, against the real stack."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from firecrest_dev.info import StackInfo
from firecrest_dev.own_server import own_server

pytestmark = pytest.mark.stack


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def metric_values(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
async def http(stack: StackInfo) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
        yield client


# ---------------------------------------------------------------------- the stack's own server


async def test_userinfo_for_alice(http, stack: StackInfo, token_for) -> None:
    alice = bearer(token_for("alice"))
    response = await http.get(f"/status/{stack.system}/userinfo", headers=alice)
    assert response.status_code == 200, response.text
    info = response.json()
    assert info["user"]["name"] == "alice"
    assert info["user"]["id"].isdigit()
    assert info["group"]["id"].isdigit()
    assert info["group"]["name"]
    assert info["group"] in info["groups"]
    assert info["accounts"] == [{"name": stack.account, "default": True}]


async def test_userinfo_is_the_tokens_user(http, stack: StackInfo, token_for) -> None:
    alice = await http.get(f"/status/{stack.system}/userinfo", headers=bearer(token_for("alice")))
    bob = await http.get(f"/status/{stack.system}/userinfo", headers=bearer(token_for("bob")))
    assert bob.json()["user"]["name"] == "bob"
    assert bob.json()["user"]["id"] != alice.json()["user"]["id"]


async def test_userinfo_errors(http, stack: StackInfo, token_for) -> None:
    missing = await http.get("/status/nosuch/userinfo", headers=bearer(token_for("alice")))
    assert missing.status_code == 404
    assert (await http.get(f"/status/{stack.system}/userinfo")).status_code == 401


async def test_metrics_endpoint_exposes_the_counters(http, stack: StackInfo, token_for) -> None:
    alice = bearer(token_for("alice"))
    # Each worker reports its own counters: make both serve requests before scraping.
    await asyncio.gather(*(http.get("/status/systems", headers=alice) for _ in range(20)))
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    for name in (
        "firecrest_http_requests_total",
        "firecrest_http_request_duration_seconds",
        "firecrest_remote_commands_total",
        "firecrest_remote_command_duration_seconds",
        "firecrest_rate_limited_requests_total",
        "firecrest_shared_state_errors_total",
        "firecrest_ssh_connections",
        "firecrest_ssh_channels_busy",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in response.text, name
    values = metric_values(response.text)
    key = (
        "firecrest_http_requests_total",
        frozenset({"route": "/status/systems", "method": "GET", "status": "200"}.items()),
    )
    assert values.get(key, 0) >= 1


async def test_systems_report_services_health(http, stack: StackInfo, token_for) -> None:
    systems = (await http.get("/status/systems", headers=bearer(token_for("alice")))).json()
    health = systems["systems"][0]["servicesHealth"]
    assert {h["serviceType"] for h in health} >= {"ssh", "filesystem"}


# ----------------------------------------------------- a one-worker server: exact, per process


@pytest.fixture(scope="module")
def probed_server(stack: StackInfo, tmp_path_factory) -> Iterator[str]:
    directory: Path = tmp_path_factory.mktemp("status-server")
    # The stack's probe_user (its own account, firecrest-probe); one probe run in the test.
    with own_server(stack, directory, system_overrides={"probe_interval": 600}) as url:
        yield url


async def test_probes_run_before_any_caller_and_liveness_reports_them(
    probed_server: str, stack: StackInfo, token_for: Callable[[str], str]
) -> None:
    async with httpx.AsyncClient(base_url=probed_server, timeout=60) as http:
        # (Behaviour change: probes used to wait for a first caller and then run as them.)
        deadline = time.monotonic() + 30
        while True:
            live = (await http.get("/status/liveness/")).json()
            if live["healthcheckRuns"]:
                break
            assert time.monotonic() < deadline, "no health check ran"
            await asyncio.sleep(0.2)
        assert set(live["healthcheckRuns"]) == {stack.system}
        # The probe's login is in a pool of its own: the callers' pool is still empty.
        before = metric_values((await http.get("/metrics")).text)
        callers = frozenset({"system": stack.system}.items())
        assert before[("firecrest_ssh_connections", callers)] == 0
        assert before[("firecrest_ssh_users", callers)] == 0
        alice = bearer(token_for("alice"))
        userinfo = await http.get(f"/status/{stack.system}/userinfo", headers=alice)
        assert userinfo.status_code == 200
        # ISO 8601 in UTC, as FirecREST v2's datetime (it was epoch seconds before).
        probed_at = datetime.fromisoformat(live["healthcheckRuns"][stack.system])
        assert abs(probed_at.timestamp() - time.time()) < 60
        assert 0 <= live["lastUpdate"] < 60

        systems = (await http.get("/status/systems", headers=alice)).json()["systems"]
        health = systems[0]["servicesHealth"]
        by_service = {(h["serviceType"], h.get("path")): h for h in health}
        assert by_service[("ssh", None)]["healthy"] is True
        assert by_service[("scheduler", None)]["healthy"] is True
        assert by_service[("filesystem", "/home")]["healthy"] is True
        assert by_service[("filesystem", "/tmp")]["healthy"] is True
        assert all(h["lastChecked"] and h["latency"] is not None for h in health)
        last_checked = [datetime.fromisoformat(h["lastChecked"]).timestamp() for h in health]
        assert all(abs(t - time.time()) < 60 for t in last_checked)
        assert datetime.fromisoformat(systems[0]["lastHealthCheck"]).tzinfo is not None
        assert set(systems[0]["probing"]["services"]) == {"ssh", "scheduler", "filesystem"}
        assert systems[0]["probing"]["intervalCheck"] == 600

        values = metric_values((await http.get("/metrics")).text)
        system = stack.system

        def value(name: str, **labels: str) -> float:
            return values.get((name, frozenset(labels.items())), 0)

        def succeeded(program: str) -> float:
            return value(
                "firecrest_remote_commands_total", system=system, program=program, result="ok"
            )

        assert succeeded("id") >= 1
        assert succeeded("sacctmgr") >= 2
        assert succeeded("true") >= 1  # the SSH probe
        assert succeeded("stat") >= 2  # one probe per file system
        userinfo = {"route": "/status/{system_name}/userinfo", "method": "GET", "status": "200"}
        assert value("firecrest_http_requests_total", **userinfo) == 1
        assert value("firecrest_ssh_connections", system=system) >= 1
        assert value("firecrest_service_healthy", system=system, service="ssh", path="") == 1
