"""The SSH pool against the stack's real sshd: multiplexing, limits, idle close, recovery."""

from __future__ import annotations

import asyncio
import re
import subprocess
from datetime import datetime
from pathlib import Path

import asyncssh
import pytest

from firecrest_dev.info import StackInfo
from firecrest_server.cluster import RemoteRunner
from firecrest_server.config import CertificateAuthorityCredentials, SSHConfig
from firecrest_server.errors import ApiError
from firecrest_server.ssh import SSHPool
from firecrest_server.ssh.credentials import CertificateAuthority
from firecrest_server.ssh.pool import ChannelsBusy, ConnectionLost

pytestmark = pytest.mark.stack


def _config(stack: StackInfo, known_hosts: Path | None = None, **overrides) -> SSHConfig:
    return SSHConfig(
        host=stack.ssh_host,
        port=stack.ssh_port,
        known_hosts=known_hosts or stack.known_hosts,
        credentials=CertificateAuthorityCredentials(
            type="ca", ca_key=stack.ca_key.read_text(), validity=120
        ),
        **overrides,
    )


def _pool(stack: StackInfo, **overrides) -> SSHPool:
    config = _config(stack, **overrides)
    return SSHPool("cluster", config, CertificateAuthority(config.credentials))


def _runner(pool: SSHPool, user: str) -> RemoteRunner:
    return RemoteRunner(pool, user, None, timeout=30, max_output=1 << 20)


async def test_each_user_runs_as_themselves(stack: StackInfo) -> None:
    pool = _pool(stack)
    pool.start()
    try:
        for user in ("alice", "bob"):
            result = await _runner(pool, user).run(["id", "-un"])
            assert result.stdout_text.strip() == user
        assert pool.stats()["users"] == 2
        assert pool.stats()["connections"] == 2
    finally:
        await pool.close()


async def test_certificates_name_only_the_users_principal(stack: StackInfo, tmp_path: Path) -> None:
    config = _config(stack)
    _key, cert = await CertificateAuthority(config.credentials).client_key("alice", None)
    assert cert.principals == ["alice"]
    # Read it back with OpenSSH's own tool: one principal, minutes of validity, no permissions
    # beyond running a command (no forwarding of any kind, no pty, no ~/.ssh/rc).
    cert_file = tmp_path / "cert.pub"
    cert.write_certificate(str(cert_file))
    described = subprocess.run(
        ["ssh-keygen", "-L", "-f", str(cert_file)], capture_output=True, text=True, check=True
    ).stdout
    principals = described.split("Principals:")[1].split("Critical Options:")[0].split()
    assert principals == ["alice"]
    extensions = described.split("Extensions:")[1].strip()
    assert extensions == "(none)"
    valid = re.search(r"Valid: from (\S+) to (\S+)", described)
    start, end = (datetime.fromisoformat(t) for t in valid.groups())
    assert (end - start).total_seconds() <= 120 + 60


async def test_busy_connections_spill_over_and_cap_waits(stack: StackInfo) -> None:
    # 4 channel slots per connection (one is the SFTP slot), at most 2 connections per user:
    # 20 concurrent commands must all finish, over no more than 2 connections.
    pool = _pool(stack, max_channels_per_connection=4, max_connections_per_user=2)
    pool.start()
    peak = 0

    async def one(i: int) -> str:
        nonlocal peak
        result = await _runner(pool, "alice").run(["sh", "-c", "sleep 0.3; echo $0", str(i)])
        peak = max(peak, pool.stats()["connections"])
        return result.stdout_text.strip()

    try:
        outputs = await asyncio.gather(*(one(i) for i in range(20)))
        assert outputs == [str(i) for i in range(20)]
        assert peak == 2
    finally:
        await pool.close()


async def test_a_wait_for_a_channel_is_bounded(stack: StackInfo) -> None:
    # One slot in all (2 per connection, one is SFTP's; one connection): while it is held, a
    # second request of the same user waits at most connect_timeout + command_timeout, then
    # gets a 429 (over their own share; it was a 503, which reads to clients as an outage).
    pool = _pool(
        stack,
        max_channels_per_connection=2,
        max_connections_per_user=1,
        connect_timeout=1,
        command_timeout=1,
    )
    pool.start()
    try:
        async with pool.connection("alice"):
            t0 = asyncio.get_running_loop().time()
            with pytest.raises(ChannelsBusy, match="stayed busy") as excinfo:
                async with pool.connection("alice"):
                    pass
            waited = asyncio.get_running_loop().time() - t0
            assert 1.5 < waited < 10, waited
            assert excinfo.value.status_code == 429
            assert int(excinfo.value.headers["Retry-After"]) >= 1
            # Another user's channels are their own: bob is served at once meanwhile.
            async with pool.connection("bob"):
                pass
        async with pool.connection("alice"):  # free again: served at once
            pass
    finally:
        await pool.close()


async def test_idle_connections_are_closed(stack: StackInfo) -> None:
    pool = _pool(stack, idle_timeout=1)
    pool.start()
    try:
        await _runner(pool, "alice").run(["true"])
        assert pool.stats()["connections"] == 1
        for _ in range(50):
            await asyncio.sleep(0.1)
            if pool.stats()["connections"] == 0:
                break
        assert pool.stats()["connections"] == 0
        # and the next request simply opens a new one
        assert (await _runner(pool, "alice").run(["echo", "again"])).stdout_text == "again\n"
    finally:
        await pool.close()


async def test_a_dropped_connection_is_replaced_and_idempotent_commands_retried(
    stack: StackInfo,
) -> None:
    pool = _pool(stack)
    pool.start()
    try:
        runner = _runner(pool, "alice")
        await runner.run(["true"])
        async with pool.connection("alice") as entry:
            dropped = entry
        dropped.conn.abort()  # the network goes away under the pool
        await asyncio.sleep(0.1)
        result = await runner.run(["echo", "recovered"])
        assert result.stdout_text == "recovered\n"
        assert pool.stats()["connections"] == 1
    finally:
        await pool.close()


async def test_unknown_host_key_is_refused(stack: StackInfo, tmp_path: Path) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[{stack.ssh_host}]:{stack.ssh_port} {other}")
    pool = _pool(stack, known_hosts=known_hosts)
    pool.start()
    try:
        with pytest.raises(ApiError) as excinfo:
            await _runner(pool, "alice").run(["true"])
        assert isinstance(excinfo.value, ConnectionLost)
        assert excinfo.value.status_code == 503
        assert excinfo.value.headers["Retry-After"] == "2"
    finally:
        await pool.close()


async def test_remote_timeout_gives_408_and_output_cap_gives_413(stack: StackInfo) -> None:
    pool = _pool(stack)
    pool.start()
    try:
        runner = RemoteRunner(pool, "alice", None, timeout=1, max_output=1000)
        result = await runner.run(["sleep", "5"])
        assert result.exit_status == 124  # the remote `timeout` ended it
        with pytest.raises(ApiError) as excinfo:
            await runner.run(["head", "-c", "5000", "/dev/zero"])
        assert excinfo.value.status_code == 413
    finally:
        await pool.close()


async def test_max_connections_evicts_the_least_recently_used_idle_connection(
    stack: StackInfo,
) -> None:
    """Against the real sshd: 6 users through a pool capped at 3 connections are all served as
    themselves, the pool never holds more than 3, and each newcomer closes the idle connection
    used longest ago (its sshd session ends)."""
    users = ["alice", "bob", *stack.extra_users[:4]]
    if len(users) < 6:
        pytest.skip("this stack was started without `--users 4` or more")
    pool = _pool(stack, max_connections=3)
    pool.start()
    try:
        for user in users:
            result = await _runner(pool, user).run(["id", "-un"])
            assert result.stdout_text.strip() == user
            assert pool.stats()["connections"] <= 3
        stats = pool.stats()
        assert stats["connections"] == 3
        assert stats["evicted"] == 3
        kept = {name for name, u in pool._users.items() if u.connections}
        assert kept == set(users[-3:])  # the three used last
    finally:
        await pool.close()
