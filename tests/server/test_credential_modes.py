"""The SSH credential modes other than the stack's built-in CA, end to end: a server of their
own on the stack's sshd, Slurm and identity provider, with

* ``key_service``: FirecREST's SSHService protocol, served by dev/key_service.py (the caller's
  token in, a short-lived key and certificate signed by the stack's CA out);
* ``static_keys``: one configured key and certificate per user (development only).

Staging URLs in key_service mode are used on a second server sharing the first one's signing
key, which has never seen the caller's token: it can log in only with the key sealed in the URL.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import httpx
import pytest

from firecrest_dev.info import StackInfo
from firecrest_dev.own_server import own_server
from firecrest_dev.running import free_ports

pytestmark = pytest.mark.stack

KEY_SERVICE = Path(__file__).resolve().parents[2] / "dev" / "key_service.py"


@contextlib.contextmanager
def _key_service(stack: StackInfo) -> Iterator[str]:
    port = free_ports(1)[0]
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, str(KEY_SERVICE), str(stack.dir / "stack.json"), "--port", str(port)]
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, "the key service exited"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the key service did not start"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def key_service(stack: StackInfo) -> Iterator[str]:
    with _key_service(stack) as url:
        yield url


def _list_home(url: str, stack: StackInfo, user: str, token: str) -> httpx.Response:
    """ops/ls of ``user``'s home, asked with ``token``."""
    return httpx.get(
        f"{url}/filesystem/{stack.system}/ops/ls",
        params={"path": stack.users[user].home},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )


def test_the_key_service_issues_keys_only_to_the_tokens_owner(
    stack: StackInfo, token_for, key_service: str
) -> None:
    def ask(token: str, username: str) -> httpx.Response:
        return httpx.post(
            f"{key_service}/api/v1/ssh-keys",
            json={"duration": "1min", "username": username},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    issued = ask(token_for("alice"), "alice")
    assert issued.status_code == 201, issued.text
    cert = asyncssh.import_certificate(issued.json()["sshKey"]["publicKey"])
    assert cert.principals == ["alice"]
    assert ask(token_for("alice"), "bob").status_code == 403
    assert ask("not-a-token", "alice").status_code == 401


def test_key_service_mode_logs_each_user_in_as_themselves(
    stack: StackInfo, token_for, key_service: str, tmp_path: Path
) -> None:
    credentials = {"type": "key_service", "url": key_service, "timeout": 10}
    with own_server(stack, tmp_path, ssh_credentials=credentials) as url:
        for user in ("alice", "bob"):
            made = f"{stack.users[user].home}/credentials-{uuid.uuid4().hex[:8]}"
            answer = httpx.post(
                f"{url}/filesystem/{stack.system}/ops/mkdir",
                json={"path": made},
                headers={"Authorization": f"Bearer {token_for(user)}"},
                timeout=60,
            )
            try:
                assert answer.status_code == 201, answer.text
                assert Path(made).owner() == user  # made by a login as that user
            finally:
                shutil.rmtree(made, ignore_errors=True)
        # Logged in as alice, not as anyone who may read bob's home (mode 0700).
        assert _list_home(url, stack, "alice", token_for("alice")).status_code == 200
        answer = _list_home(url, stack, "bob", token_for("alice"))
        assert answer.status_code == 403, answer.text


def test_key_service_systems_are_not_probed_and_nothing_is_refused_for_health(
    stack: StackInfo, token_for, key_service: str, tmp_path: Path
) -> None:
    # The key service issues keys only for a token of the same user, and the probes have none:
    # the probe_user is left out (with a warning), never replaced by a caller.
    credentials = {"type": "key_service", "url": key_service, "timeout": 10}
    overrides = {"probe_interval": 1}
    with own_server(
        stack, tmp_path, system_overrides=overrides, ssh_credentials=credentials
    ) as url:
        alice = {"Authorization": f"Bearer {token_for('alice')}"}
        for _ in range(3):  # callers for three probe intervals
            listed = httpx.get(
                f"{url}/filesystem/{stack.system}/ops/ls",
                params={"path": stack.users["alice"].home},
                headers=alice,
                timeout=60,
            )
            assert listed.status_code == 200, listed.text
            time.sleep(1)
        assert httpx.get(f"{url}/status/liveness").json() == {
            "healthcheckRuns": {},
            "lastUpdate": 0,
        }
        systems = httpx.get(f"{url}/status/systems", headers=alice, timeout=60).json()
        # Nothing probed: no health entries and no probed services, as FirecREST v2 reports it.
        assert systems["systems"][0]["servicesHealth"] is None
        assert systems["systems"][0]["probing"]["services"] == {}
        assert systems["systems"][0]["lastHealthCheck"] is None
    assert "probe_user is ignored" in (tmp_path / "server.log").read_text()


def test_key_service_systems_probe_with_the_probe_users_own_token(
    stack: StackInfo, key_service: str, tmp_path: Path
) -> None:
    # A service account of the identity provider for the probe user (here mallory's client,
    # as the stack's probe account has none): the probes fetch its token themselves and log
    # in before anyone calls, on their own pool.
    mallory = stack.users["mallory"]
    token = {
        "token_url": stack.token_url,
        "client_id": mallory.client_id,
        "client_secret": mallory.client_secret,
    }
    credentials = {"type": "key_service", "url": key_service, "timeout": 10, "probe_token": token}
    overrides = {"probe_interval": 1, "probe_user": "mallory"}
    with own_server(
        stack, tmp_path, system_overrides=overrides, ssh_credentials=credentials
    ) as url:
        deadline = time.monotonic() + 30
        while not httpx.get(f"{url}/status/liveness").json()["healthcheckRuns"]:
            assert time.monotonic() < deadline, "no probe ran"
            time.sleep(0.2)
        metrics = httpx.get(f"{url}/metrics").text
        assert f'firecrest_ssh_connections{{system="{stack.system}"}} 0.0' in metrics  # no caller
        systems = httpx.get(
            f"{url}/status/systems",
            headers={"Authorization": f"Bearer {stack.fetch_token('bob')}"},
            timeout=60,
        ).json()
    health = systems["systems"][0]["servicesHealth"]
    assert {h["serviceType"] for h in health} == {"ssh", "scheduler", "filesystem"}
    assert all(h["healthy"] is True for h in health), health
    log = (tmp_path / "server.log").read_text()
    assert mallory.client_secret not in log


def test_an_unreachable_key_service_is_a_503_to_retry(
    stack: StackInfo, token_for, tmp_path: Path
) -> None:
    # A port held by a socket that does not listen: connections to it are refused, and no one
    # else can take it meanwhile.
    with socket.socket() as closed_port:
        closed_port.bind(("127.0.0.1", 0))
        unused = f"http://127.0.0.1:{closed_port.getsockname()[1]}"
        credentials = {"type": "key_service", "url": unused, "timeout": 5}
        with own_server(stack, tmp_path, ssh_credentials=credentials) as url:
            answer = _list_home(url, stack, "alice", token_for("alice"))
            assert answer.status_code == 503, answer.text
            assert "key service" in answer.json()["message"]
            assert int(answer.headers["Retry-After"]) >= 1


def test_static_keys_serve_the_configured_users_only(
    stack: StackInfo, token_for, tmp_path: Path
) -> None:
    ca = asyncssh.import_private_key(stack.ca_key.read_bytes())
    key = asyncssh.generate_private_key("ssh-ed25519")
    now = int(time.time())
    cert = ca.generate_user_certificate(
        key, "static-test", principals=["alice"], valid_after=now - 60, valid_before=now + 3600
    )
    key_file = tmp_path / "alice_key"
    key_file.write_bytes(key.export_private_key())
    key_file.chmod(0o600)
    credentials = {
        "type": "static_keys",
        "keys": {
            "alice": {
                "private_key": {"file": str(key_file)},
                "certificate": cert.export_certificate().decode(),
            }
        },
    }
    with own_server(stack, tmp_path, ssh_credentials=credentials) as url:
        answer = _list_home(url, stack, "alice", token_for("alice"))
        assert answer.status_code == 200, answer.text
        refused = _list_home(url, stack, "bob", token_for("bob"))
        assert refused.status_code == 403, refused.text
        assert "no SSH key is configured for user bob" in refused.json()["message"]


def _wait_for(condition, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen"
        time.sleep(0.5)


def test_key_service_mode_serves_staging_urls_on_another_server(
    stack: StackInfo, token_for, key_service: str, tmp_path: Path
) -> None:
    """Server A makes the URLs (it has alice's token and asks the key service); server B, which
    shares A's signing key and has never seen a token of alice's, serves every staging request:
    the parts, the complete, the download."""
    credentials = {"type": "key_service", "url": key_service, "timeout": 10}
    shared = {"url_signing_key": uuid.uuid4().hex + uuid.uuid4().hex}
    small_parts = {"data_operation": {"staging_part_size": 1 << 20}}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    home = stack.users["alice"].home
    target = f"{home}/staged-{uuid.uuid4().hex[:8]}.bin"
    data = os.urandom((2 << 20) + 12345)  # three parts
    with (
        own_server(stack, tmp_path / "b", {"server": shared}, small_parts, credentials) as b,
        own_server(
            stack,
            tmp_path / "a",
            {"server": shared | {"public_url": b.url}},  # A hands out URLs that reach B
            small_parts,
            credentials,
        ) as a,
    ):
        alice = {"Authorization": f"Bearer {token_for('alice')}"}
        try:
            made = httpx.post(
                f"{a.url}/filesystem/{stack.system}/transfer/upload",
                json={
                    "path": target,
                    "transferDirectives": {"transferMethod": "s3", "fileSize": len(data)},
                },
                headers=alice,
                timeout=60,
            )
            assert made.status_code == 201, made.text
            directives = made.json()["transferDirectives"]
            urls = directives["partsUploadUrls"]
            assert len(urls) == 3
            assert all(url.startswith(f"{b.url}/staging/") for url in urls)
            parts = []
            for number, url in enumerate(urls, start=1):
                chunk = data[(number - 1) << 20 : number << 20]
                put = httpx.put(url, content=chunk, timeout=60)  # no bearer token
                assert put.status_code == 200, put.text
                parts.append(
                    f"<Part><PartNumber>{number}</PartNumber><ETag>{put.headers['etag']}</ETag></Part>"
                )
            complete = httpx.post(
                directives["completeUploadUrl"],
                content=f"<CompleteMultipartUpload>{''.join(parts)}</CompleteMultipartUpload>",
                timeout=60,
            )
            assert complete.status_code == 200, complete.text
            _wait_for(lambda: Path(target).exists(), "the transfer job's move")
            assert (
                hashlib.sha256(Path(target).read_bytes()).digest() == hashlib.sha256(data).digest()
            )
            assert Path(target).owner() == "alice"

            asked = httpx.post(
                f"{a.url}/filesystem/{stack.system}/transfer/download",
                json={"sourcePath": target, "transferDirectives": {"transferMethod": "s3"}},
                headers=alice,
                timeout=60,
            )
            assert asked.status_code == 201, asked.text
            download_url = asked.json()["transferDirectives"]["downloadUrl"]
            assert download_url.startswith(f"{b.url}/staging/")
            got = httpx.get(download_url, timeout=60)
            assert got.status_code == 200, got.text
            assert got.content == data
        finally:
            Path(target).unlink(missing_ok=True)
        # B logged in only with the sealed keys: it never had a token of alice's to ask with.
        b_log = (tmp_path / "b" / "server.log").read_text()
        assert b_log.count("opened SSH connection") >= 1
        assert "key service" not in b_log


def test_key_service_refusing_a_staging_key_refuses_the_transfer_first(
    stack: StackInfo, token_for, tmp_path: Path
) -> None:
    with socket.socket() as closed_port:
        closed_port.bind(("127.0.0.1", 0))
        unused = f"http://127.0.0.1:{closed_port.getsockname()[1]}"
        credentials = {"type": "key_service", "url": unused, "timeout": 5}
        with own_server(stack, tmp_path, ssh_credentials=credentials) as url:
            target = f"{stack.users['alice'].home}/never-{uuid.uuid4().hex[:8]}"
            answer = httpx.post(
                f"{url}/filesystem/{stack.system}/transfer/upload",
                json={
                    "path": target,
                    "transferDirectives": {"transferMethod": "s3", "fileSize": 10},
                },
                headers={"Authorization": f"Bearer {token_for('alice')}"},
                timeout=60,
            )
            assert answer.status_code == 503, answer.text
            assert "key service" in answer.json()["message"]
            assert not Path(target).exists()
