"""Validly signed tokens and staging grants that name root or a system account.

The identity provider's own key signs them (``forge``), so only the login they name differs from
a token the server accepts. Each must get a 403 in FirecREST's error shape before any SSH: proven
by sshd's own log (``DIR/log/sshd.out``, LogLevel VERBOSE logs every authentication attempt,
accepted or not, with the login name) and by the server's audit log, which has a line for every
remote command. A one-worker server of the test's own starts with an empty SSH pool, so the
positive control (a token for alice) must add a login to sshd's log.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from firecrest_dev.info import StackInfo
from firecrest_dev.own_server import own_server
from firecrest_server.staging.tokens import StagingGrant, UrlSigner

from .conftest import bearer, forge, ops

pytestmark = pytest.mark.stack

# root by name; daemon (uid 1), bin (2), sys (3) are system accounts in this host's NSS;
# nobody is uid 65534; the last is unknown to NSS.
REFUSED = ("root", "daemon", "bin", "sys", "nobody", "nosuchlogin7")
SIGNING_KEY = secrets.token_urlsafe(32)


# sshd's lines (LogLevel VERBOSE) that name the login of an authentication attempt or session.
_SSHD_LOGIN = re.compile(
    r"(?:(?:Failed|Accepted|Postponed) publickey for (?:invalid user )?"
    r"|Invalid user |^User (?=\S+ from)|command for "
    r"|Disconnected from (?:invalid |authenticating )?user )(\S+)",
    re.MULTILINE,
)


def _logins(log: Path, since: int, probe_user: str | None) -> list[str]:
    """Login names in sshd's authentication lines written after byte ``since``, but the
    health probes' own login (configured by the operator, it logs in on its own schedule)."""
    with log.open("rb") as fh:
        fh.seek(since)
        text = fh.read().decode(errors="replace")
    names = _SSHD_LOGIN.findall(text)
    if "ROOT LOGIN REFUSED" in text:
        names.append("root")
    return [name for name in names if name != probe_user]


@pytest.fixture(scope="module")
def server(stack: StackInfo, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    directory = tmp_path_factory.mktemp("principals")
    with own_server(
        stack, directory, overrides={"server": {"url_signing_key": SIGNING_KEY}}
    ) as url:
        yield url, directory / "server.log"


def _log_entries(server_log: Path, logger: str) -> list[dict]:
    entries = (json.loads(line) for line in server_log.read_text().splitlines() if line[:1] == "{")
    return [e for e in entries if e.get("logger") == logger]


def _audit_users(server_log: Path, probe_user: str | None) -> set[str]:
    """Users the server ran a remote command for (one audit line per command), but the health
    probes' own login."""
    users = {e["user"] for e in _log_entries(server_log, "firecrest_server.audit")}
    return users - {probe_user}


def test_system_accounts_get_403_and_no_ssh_login(
    stack: StackInfo, server: tuple[str, Path]
) -> None:
    url, server_log = server
    sshd_log = stack.dir / "log" / "sshd.out"
    home = stack.users["alice"].home
    userinfo = f"{url}/status/{stack.system}/userinfo"  # runs `id` on the login node
    for user in REFUSED:
        since = sshd_log.stat().st_size
        token = bearer(forge(stack, {"preferred_username": user}))
        listed = httpx.get(f"{url}{ops(stack)}/ls", params={"path": home}, headers=token)
        for response in (listed, httpx.get(userinfo, headers=token)):
            assert response.status_code == 403, (user, response.text)
            body = response.json()
            assert set(body) == {"errorType", "message", "causedBy", "data", "user"}
            assert body["message"].startswith(f"User {user} may not use this service")
        assert _logins(sshd_log, since, stack.probe_user) == [], user
    assert _audit_users(server_log, stack.probe_user) == set()  # nothing ran on the cluster
    # The access log line is written once the response has gone out: wait for the last ones.
    deadline = time.monotonic() + 15
    while True:
        access = _log_entries(server_log, "firecrest_server.access")
        refused = [e for e in access if e["status"] == 403]
        if len(refused) >= 2 * len(REFUSED) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(refused) == 2 * len(REFUSED)
    assert {e["user"] for e in refused} == set(REFUSED)
    # The control: the same requests for alice log in (the own server's pool was empty) and run.
    since = sshd_log.stat().st_size
    alice = bearer(forge(stack))
    assert httpx.get(userinfo, headers=alice, timeout=30).status_code == 200
    assert httpx.get(f"{url}{ops(stack)}/ls", params={"path": home}, headers=alice).is_success
    assert "alice" in _logins(sshd_log, since, stack.probe_user)
    assert _audit_users(server_log, stack.probe_user) == {"alice"}


def test_staging_grants_for_system_accounts_get_403(
    stack: StackInfo, server: tuple[str, Path], token_for
) -> None:
    url, server_log = server
    sshd_log = stack.dir / "log" / "sshd.out"
    signer = UrlSigner(SIGNING_KEY)
    path = f"{stack.users['alice'].home}/grant-{uuid.uuid4().hex[:8]}.txt"
    alice = bearer(token_for("alice"))
    uploaded = httpx.post(
        f"{url}{ops(stack)}/upload",
        params={"path": str(Path(path).parent)},
        files={"file": (Path(path).name, b"granted bytes")},
        headers=alice,
        timeout=30,
    )
    assert uploaded.status_code == 204, uploaded.text
    try:
        since = sshd_log.stat().st_size
        for user in REFUSED:
            for uid in (None, 5000):  # a uid in the grant does not matter with NSS as source
                download = StagingGrant("download", user, stack.system, path, 13, uid=uid)
                token = signer.sign(download, 60)
                got = httpx.get(f"{url}/staging/{token}/object", timeout=30)
                assert got.status_code == 403, (user, got.text)
                assert got.json()["message"].startswith(f"User {user} may not use")
                upload = StagingGrant(
                    "upload", user, stack.system, "/tmp/x", 1, part_size=1, parts=1, uid=uid
                )
                put = httpx.put(
                    f"{url}/staging/{signer.sign(upload, 60)}/parts/1", content=b"x", timeout=30
                )
                assert put.status_code == 403, (user, put.text)
        assert _logins(sshd_log, since, stack.probe_user) == []
        # The control: the same grant for alice streams her file.
        grant = StagingGrant("download", "alice", stack.system, path, 13)
        got = httpx.get(f"{url}/staging/{signer.sign(grant, 60)}/object", timeout=30)
        assert (got.status_code, got.content) == (200, b"granted bytes")
        assert _audit_users(server_log, stack.probe_user) <= {"alice"}
    finally:
        httpx.delete(f"{url}{ops(stack)}/rm", params={"path": path}, headers=alice, timeout=30)


def test_certificate_serials_never_repeat_across_workers_and_restarts(
    stack: StackInfo, server: tuple[str, Path], token_for
) -> None:
    """Every login sshd accepted with one of our certificates in this stack's life (the stack's
    two workers, every own server of the session, restarts) has a serial of its own."""
    url, _ = server
    for user in ("alice", "bob"):  # at least one login of each through the own server
        assert httpx.get(f"{url}/status/{stack.system}/userinfo", headers=bearer(token_for(user)))
    text = (stack.dir / "log" / "sshd.out").read_text(errors="replace")
    logins = re.findall(r"ID firecrest-server:([a-z0-9_.-]+):\d+:(\d+) \(serial (\d+)\)", text)
    assert len(logins) >= 2
    assert all(in_id == serial for _, in_id, serial in logins)  # the key id names the serial
    serials = [int(serial) for _, _, serial in logins]
    assert len(set(serials)) == len(serials)
    assert max(serials) >= 2**32  # random 64-bit, not a per-process counter from 1
