"""Forwarded headers and the URLs handed out, on the stack, through a real HAProxy.

A client that sends X-Forwarded-Host / X-Forwarded-Proto / X-Forwarded-For / Forwarded itself
must change nothing: not the staging URLs the server hands out, not the address and scheme it
logs. Only a configured proxy (here HAProxy, connecting from 127.0.0.2, the one trusted
address) is believed, and only for the client's address and scheme; the URLs come from
server.public_url. Loopback has all of 127.0.0.0/8, so "the proxy" and "a client" are told
apart by their source address on one machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from firecrest_dev.info import StackInfo
from firecrest_dev.own_server import own_server
from firecrest_dev.running import free_ports

pytestmark = pytest.mark.stack

PUBLIC_URL = "https://files.example.org/firecrest"
PROXY_ADDRESS = "127.0.0.2"  # HAProxy's source address towards the server: trusted
CLIENT_ADDRESS = "127.0.0.3"  # where the test client connects from: not trusted
FORGED = {
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-For": "198.51.100.66",
    "Forwarded": "for=198.51.100.67;host=evil.example;proto=https",
}


@contextlib.contextmanager
def _haproxy(directory: Path, backend_port: int) -> Iterator[str]:
    """HAProxy in front of the server: appends X-Forwarded-For, sets X-Forwarded-Proto."""
    port = free_ports(1)[0]
    config = directory / "haproxy.cfg"
    config.write_text(
        "defaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n"
        "  timeout server 60s\n"
        f"frontend api\n  bind 127.0.0.1:{port}\n  option forwardfor\n"
        "  http-request set-header X-Forwarded-Proto https\n  default_backend server\n"
        f"backend server\n  server api 127.0.0.1:{backend_port} source {PROXY_ADDRESS}\n"
    )
    process = subprocess.Popen(
        ["haproxy", "-db", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=(directory / "haproxy.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, (directory / "haproxy.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/status/liveness", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "HAProxy did not start"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def behind_proxy(stack: StackInfo, tmp_path_factory) -> Iterator[tuple[str, str, Path]]:
    """(the server's own URL, HAProxy's URL, the server's log file)."""
    directory = tmp_path_factory.mktemp("proxied")
    overrides = {"server": {"public_url": PUBLIC_URL, "trusted_proxies": [f"{PROXY_ADDRESS}/32"]}}
    with (
        own_server(stack, directory, overrides) as server,
        _haproxy(directory, int(server.rsplit(":", 1)[1])) as proxy,
    ):
        yield server.url, proxy, directory / "server.log"


@pytest.fixture
def alice_file(stack: StackInfo) -> Iterator[str]:
    path = Path(stack.users["alice"].home, f"fwd-{uuid.uuid4().hex[:8]}.bin")
    path.write_bytes(b"forwarded")
    entry = pwd.getpwnam("alice")
    os.chown(path, entry.pw_uid, entry.pw_gid)
    yield str(path)
    path.unlink(missing_ok=True)


def _client(source: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=60)


def _download_url(
    http: httpx.Client, base: str, stack: StackInfo, token: str, path: str, headers: dict
) -> tuple[str, str]:
    """(the staging URL handed out, the request id) for a transfer/download of ``path``."""
    request_id = uuid.uuid4().hex
    answer = http.post(
        f"{base}/filesystem/{stack.system}/transfer/download",
        json={"sourcePath": path, "transferDirectives": {"transferMethod": "s3"}},
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": request_id} | headers,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["transferDirectives"]["downloadUrl"], request_id


def _access_record(log: Path, request_id: str) -> dict:
    deadline = time.monotonic() + 10  # the line is written once the response has been sent
    while True:
        for line in log.read_text().splitlines():
            if request_id in line and '"firecrest_server.access"' in line:
                return json.loads(line)
        assert time.monotonic() < deadline, f"no access log line for {request_id}"
        time.sleep(0.1)


def test_forged_headers_from_a_client_change_no_url_and_no_logged_address(
    stack: StackInfo, token_for, behind_proxy, alice_file: str
) -> None:
    server, _proxy, log = behind_proxy
    with _client(CLIENT_ADDRESS) as http:
        url, request_id = _download_url(http, server, stack, token_for("alice"), alice_file, FORGED)
    assert url.startswith(f"{PUBLIC_URL}/staging/")
    record = _access_record(log, request_id)
    assert (record["client"], record["scheme"]) == (CLIENT_ADDRESS, "http")


def test_without_public_url_forged_headers_do_not_reach_the_urls(
    stack: StackInfo, token_for, alice_file: str
) -> None:
    # The stack's own server: no public_url, no trusted proxies. Its URLs name the Host the
    # client connected to, never a forwarded host or scheme.
    with _client("127.0.0.1") as http:
        url, _ = _download_url(http, stack.url, stack, token_for("alice"), alice_file, FORGED)
    assert url.startswith(f"{stack.url}/staging/")


def test_a_trusted_proxy_sets_the_client_address_and_scheme(
    stack: StackInfo, token_for, behind_proxy, alice_file: str
) -> None:
    _server, proxy, log = behind_proxy
    with _client(CLIENT_ADDRESS) as http:
        # The client's own forwarded headers pass through HAProxy; HAProxy appends the address
        # it saw and sets the scheme. Only what HAProxy added counts.
        url, request_id = _download_url(http, proxy, stack, token_for("alice"), alice_file, FORGED)
    assert url.startswith(f"{PUBLIC_URL}/staging/")
    record = _access_record(log, request_id)
    assert (record["client"], record["scheme"]) == (CLIENT_ADDRESS, "https")


def test_check_refuses_trusted_proxies_without_public_url(stack: StackInfo, tmp_path: Path) -> None:
    config = json.loads((stack.dir / "server" / "config.yaml").read_text())
    config["server"]["trusted_proxies"] = ["10.0.0.0/8"]
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))
    command = [sys.executable, "-m", "firecrest_server.cli", "--check", "--config", str(path)]
    refused = subprocess.run(command, capture_output=True, text=True, check=False)
    assert refused.returncode == 2
    assert "server.trusted_proxies" in refused.stderr
    assert "server.public_url" in refused.stderr
    config["server"]["public_url"] = PUBLIC_URL
    path.write_text(json.dumps(config))
    accepted = subprocess.run(command, capture_output=True, text=True, check=False)
    assert accepted.returncode == 0, accepted.stderr
    assert "firecrest-server: warning" not in accepted.stderr


def test_redirects_name_the_public_url_not_a_forged_host(behind_proxy) -> None:
    server, proxy, _log = behind_proxy
    for base in (server, proxy):
        with _client(CLIENT_ADDRESS) as http:
            answer = http.get(f"{base}/status/systems/", headers=FORGED | {"Host": "evil.example"})
        assert answer.status_code == 307
        assert answer.headers["location"] == f"{PUBLIC_URL}/status/systems"
