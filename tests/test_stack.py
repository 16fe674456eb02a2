"""The local stack itself: what every other integration test stands on."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncssh
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from firecrest_dev.info import StackInfo
from firecrest_dev.running import PORT_NAMES, free_ports, new_stack_dir, stack_down, stack_up
from firecrest_dev.stack.settings import STACK_SCRIPT

pytestmark = pytest.mark.stack


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie waiting for PID 1 to reap it has no exe any more: it is not running
    return os.path.exists(f"/proc/{pid}/exe") and bool(os.readlink(f"/proc/{pid}/exe"))


def test_stack_json_describes_every_part(stack: StackInfo) -> None:
    assert stack.url.startswith("http://127.0.0.1:")
    assert set(stack.users) == {"alice", "bob", "mallory"}
    assert stack.users["alice"].home == "/home/alice"
    assert stack.users["mallory"].home == "/home/mallory"
    assert stack.ca_key.is_file()
    assert stack.known_hosts.is_file()
    assert stack.slurm_conf.is_file()
    assert "PRIVATE KEY" in stack.signing_key
    assert set(stack.pids) >= {
        "munged",
        "sshd",
        "mariadbd",
        "slurmdbd",
        "slurmctld",
        "slurmd",
        "oidc",
        "redis",
        "server",
        "slurmrestd",
    }
    assert stack.slurm_mode in ("ssh", "rest")
    assert (stack.slurmrestd_url or "").startswith("http://127.0.0.1:")
    assert stack.slurmrestd_api_version == "0.0.38"
    # One replica: the server itself on the entry URL, no balancer in front of it.
    assert [(r["name"], r["url"]) for r in stack.replicas] == [("server", stack.url)]
    assert (stack.redis_url or "").startswith("redis://127.0.0.1:")
    # stack.json is the record (tests that restart the server update it)
    recorded = StackInfo.load(stack.dir / "stack.json").pids
    assert all(_alive(pid) for pid in recorded.values())


def test_the_probe_account_is_the_servers_own_and_mallory_a_full_user(stack: StackInfo) -> None:
    config = json.loads((stack.dir / "server" / "config.yaml").read_text())
    assert stack.probe_user == "firecrest-probe"
    assert config["systems"][0]["probe_user"] == stack.probe_user
    assert pwd.getpwnam(stack.probe_user).pw_uid >= 1000
    assert stack.probe_user not in stack.users  # no OIDC client: no token names it
    claims = jwt.decode(stack.fetch_token("mallory"), options={"verify_signature": False})
    assert claims["preferred_username"] == "mallory"
    associations = subprocess.run(
        ["sacctmgr", "-n", "-P", "show", "assoc", "user=mallory", "format=account"],
        env={"PATH": os.environ["PATH"], "SLURM_CONF": str(stack.slurm_conf)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert stack.account in associations


def test_token_command_token_is_accepted(stack: StackInfo) -> None:
    token = subprocess.run(  # noqa: S602 - token_command is a shell command by contract
        stack.users["alice"].token_command, shell=True, capture_output=True, text=True, check=True
    ).stdout.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["preferred_username"] == "alice"
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    response = httpx.get(
        f"{stack.url}/status/systems", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    assert stack.system in [s["name"] for s in response.json()["systems"]]
    assert response.headers["f7t-appversion"].startswith("2.")


def _forged(stack: StackInfo, key, username: str = "alice", **overrides) -> str:
    genuine = stack.fetch_token(username)
    header = jwt.get_unverified_header(genuine)
    claims = jwt.decode(genuine, options={"verify_signature": False}) | overrides
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": header["kid"]})


def test_token_signed_with_the_stack_key_is_accepted(stack: StackInfo) -> None:
    # The signing key in stack.json is what tests use to forge tokens with chosen claims.
    token = _forged(stack, stack.signing_key, preferred_username="bob")
    response = httpx.get(
        f"{stack.url}/status/systems", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text


def test_token_with_bad_signature_is_rejected(stack: StackInfo) -> None:
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = _forged(stack, other_key)
    response = httpx.get(
        f"{stack.url}/status/systems", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["errorType"] == "error"
    assert body["message"]
    assert token not in response.text


def test_missing_token_is_rejected(stack: StackInfo) -> None:
    response = httpx.get(f"{stack.url}/status/systems")
    assert response.status_code == 401
    assert "www-authenticate" in response.headers


def _certificate(stack: StackInfo, principal: str):
    ca = asyncssh.read_private_key(str(stack.ca_key))
    key = asyncssh.generate_private_key("ssh-ed25519")
    now = int(time.time())
    cert = ca.generate_user_certificate(
        key, "test", principals=[principal], valid_after=now - 60, valid_before=now + 300
    )
    return key, cert


async def _ssh_run(
    stack: StackInfo, user: str, key, cert, command: str
) -> asyncssh.SSHCompletedProcess:
    async with asyncssh.connect(
        stack.ssh_host,
        stack.ssh_port,
        username=user,
        client_keys=[(key, cert)] if cert else [key],
        known_hosts=str(stack.known_hosts),
        agent_path=None,
    ) as conn:
        return await conn.run(command, check=False)


async def test_ssh_with_ca_signed_certificate(stack: StackInfo) -> None:
    key, cert = _certificate(stack, "alice")
    result = await _ssh_run(stack, "alice", key, cert, "id -un")
    assert result.stdout.strip() == "alice"


async def test_ssh_with_plain_key_is_refused(stack: StackInfo) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    with pytest.raises(asyncssh.PermissionDenied):
        await _ssh_run(stack, "alice", key, None, "true")


async def test_ssh_certificate_for_alice_does_not_log_in_bob(stack: StackInfo) -> None:
    key, cert = _certificate(stack, "alice")
    with pytest.raises(asyncssh.PermissionDenied):
        await _ssh_run(stack, "bob", key, cert, "true")


async def test_sbatch_runs_and_sacct_shows_the_job(stack: StackInfo) -> None:
    key, cert = _certificate(stack, "alice")
    submitted = await _ssh_run(
        stack, "alice", key, cert, "cd ~ && sbatch --parsable -o /dev/null --wrap 'echo hi'"
    )
    assert submitted.exit_status == 0, submitted.stderr
    job_id = submitted.stdout.strip().split(";")[0]
    assert job_id.isdigit()
    state = ""
    for _ in range(150):  # the scheduler ticks once a second; accounting follows
        result = await _ssh_run(
            stack, "alice", key, cert, f"sacct -n -X -P -j {job_id} -o JobID,User,Account,State"
        )
        state = result.stdout.strip()
        if state.endswith("|COMPLETED"):
            break
        await asyncio.sleep(0.2)
    assert state == f"{job_id}|alice|{stack.account}|COMPLETED"


@pytest.mark.slow
def test_up_down_up_on_the_same_directory_leaves_nothing_running() -> None:
    directory = new_stack_dir()
    try:
        info, first = stack_up(directory)
        pids = dict(info.pids)
        assert all(_alive(pid) for pid in pids.values())
        status = _status(directory)
        assert status.returncode == 0, status.stderr
        assert {tuple(line.split()) for line in status.stdout.splitlines()} == {
            (name, str(pid), "running") for name, pid in pids.items()
        }
        assert stack_down(directory).returncode == 0
        _wait_dead(pids.values())
        status = _status(directory)
        assert status.returncode == 1
        assert "no stack is up there" in status.stderr
        info, again = stack_up(directory)  # state (keys, accounting DB) is reused
        assert set(info.pids) == set(pids)
        token = info.fetch_token("bob")
        response = httpx.get(
            f"{info.url}/status/systems", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200
        assert stack_down(directory).returncode == 0
        _wait_dead(info.pids.values())
        print(f"up {first:.1f} s, up again {again:.1f} s")
    finally:
        stack_down(directory)
        subprocess.run(["rm", "-rf", str(directory)], check=False)


def _status(directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(STACK_SCRIPT), "status", str(directory)],
        capture_output=True,
        text=True,
    )


def _wait_dead(pids) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)]


def test_a_taken_port_gives_a_clear_error() -> None:
    directory = new_stack_dir()
    ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", ports["ssh"]))
        blocker.listen()
        with pytest.raises(RuntimeError, match=rf"ssh port {ports['ssh']}"):
            stack_up(directory, ports)
    assert not (directory / "stack.json").exists()
    subprocess.run(["rm", "-rf", str(directory)], check=False)


def test_stack_json_is_private(stack: StackInfo) -> None:
    # It holds client secrets and the OIDC signing key.
    assert (stack.dir / "stack.json").stat().st_mode & 0o077 == 0
    assert json.loads((stack.dir / "stack.json").read_text())["system"] == stack.system
    assert STACK_SCRIPT.exists()


def _needs_extra_users(stack: StackInfo, count: int) -> None:
    if len(stack.extra_users) < count:
        pytest.skip(f"this stack was started without `--users {count}` or more")


def test_extra_users_are_real_accounts_with_tokens_slurm_and_private_homes(
    stack: StackInfo,
) -> None:
    """`up --users K`: each extra user is a login the principal policy admits (uid >= 1000),
    with a private home, a Slurm association, and a token signed by the provider that names
    them, with which the API lists their own home over SSH."""
    _needs_extra_users(stack, 2)
    env = {"PATH": os.environ["PATH"], "SLURM_CONF": str(stack.slurm_conf)}
    associations = subprocess.run(
        ["sacctmgr", "-n", "-P", "list", "associations", "format=user,account"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.split()
    public_key = jwt.PyJWKClient(f"{stack.issuer}/jwks").get_signing_key_from_jwt
    for name in stack.extra_users[:2]:
        entry = pwd.getpwnam(name)
        assert entry.pw_uid >= 1000
        home = os.stat(entry.pw_dir)
        assert (home.st_uid, home.st_mode & 0o777) == (entry.pw_uid, 0o700)
        assert f"{name}|{stack.account}" in associations
        token = stack.fetch_token(name)
        claims = jwt.decode(
            token, public_key(token).key, algorithms=["RS256"], audience=stack.audience
        )
        assert claims["preferred_username"] == name
        assert claims["iss"] == stack.issuer
        response = httpx.get(
            f"{stack.url}/filesystem/{stack.system}/ops/ls",
            params={"path": entry.pw_dir},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "scope",
    ["stack-user:alice", "stack-user:root", "", "stack-user:user0001 stack-user:user0002"],
)
def test_the_extra_users_client_names_only_one_extra_user(stack: StackInfo, scope: str) -> None:
    """The one client that may name a user in its scope names exactly one of the extra users:
    never a test user (their tokens come from their own clients), never anyone else."""
    _needs_extra_users(stack, 2)
    form = {**stack.token_request(stack.extra_users[0]), "scope": scope}
    if not scope:
        del form["scope"]
    response = httpx.post(stack.token_url, data=form, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
