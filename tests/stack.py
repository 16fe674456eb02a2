"""Start, describe and stop the local HPC stack (`dev/stack`) from tests and benchmarks."""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
STACK = REPO / "dev" / "stack"
PORT_NAMES = (
    "ssh",
    "slurmctld",
    "slurmd",
    "slurmdbd",
    "mysql",
    "oidc",
    "api",
    "redis",
    "slurmrestd",
)
# How the session's own stack reaches Slurm (`dev/stack up --slurm-mode`): ssh, or rest to run
# the same tests over slurmrestd.
SLURM_MODE_ENV = "FIRECREST_SLURM_MODE"


@dataclass(frozen=True)
class StackUser:
    name: str
    home: str
    client_id: str
    client_secret: str
    token_command: str


@dataclass(frozen=True)
class StackInfo:
    dir: Path
    url: str
    system: str
    token_url: str
    users: dict[str, StackUser]  # alice and bob; mallory for hostile-shell tests only
    probe_user: str | None  # the server's own login for health probes (no OIDC client)
    ssh_host: str
    ssh_port: int
    ca_key: Path
    known_hosts: Path
    slurm_conf: Path
    signing_key: str
    issuer: str
    audience: str
    account: str
    pids: dict[str, int]
    # The API servers behind ``url``: one named "server" directly on it, or with
    # `up --replicas N` server-1..N behind HAProxy, each with its own direct URL.
    replicas: tuple[dict[str, Any], ...] = ()
    redis_url: str | None = None
    # `up --users K`: user0001..userK, whose tokens come from one client of the provider that
    # names the user in its scope (dev/oidc/README.md "Extra users"); not in ``users``.
    extra_users: tuple[str, ...] = ()
    extra_users_client: dict[str, str] | None = None
    slurm_mode: str = "ssh"  # how the stack's server reaches Slurm: ssh or rest (slurmrestd)
    slurmrestd_url: str | None = None
    slurmrestd_api_version: str | None = None

    @classmethod
    def load(cls, stack_json: Path) -> StackInfo:
        raw = json.loads(stack_json.read_text())
        return cls(
            dir=stack_json.parent,
            url=raw["url"],
            system=raw["system"],
            token_url=raw["token_url"],
            users={name: StackUser(name=name, **u) for name, u in raw["users"].items()},
            probe_user=raw.get("probe_user"),
            ssh_host=raw["ssh"]["host"],
            ssh_port=raw["ssh"]["port"],
            ca_key=Path(raw["ssh"]["ca_key"]),
            known_hosts=Path(raw["ssh"]["known_hosts"]),
            slurm_conf=Path(raw["slurm_conf"]),
            signing_key=raw["signing_key"],
            issuer=raw["issuer"],
            audience=raw["audience"],
            account=raw["account"],
            pids=raw["pids"],
            replicas=tuple(raw.get("replicas", ())),
            redis_url=raw.get("redis_url"),
            extra_users=tuple(raw.get("extra_users", {}).get("usernames", ())),
            extra_users_client=raw.get("extra_users"),
            slurm_mode=raw.get("slurm_mode", "ssh"),
            slurmrestd_url=raw.get("slurmrestd", {}).get("url"),
            slurmrestd_api_version=raw.get("slurmrestd", {}).get("api_version"),
        )

    def fetch_token(self, user: str) -> str:
        """A fresh access token from the OIDC provider, through the client-credentials grant."""
        response = httpx.post(self.token_url, data=self.token_request(user), timeout=10)
        response.raise_for_status()
        return response.json()["access_token"]

    def token_request(self, user: str) -> dict[str, str]:
        """The form of a client-credentials token request for ``user`` (a test user or, with
        `up --users K`, an extra user)."""
        if user in self.users:
            u = self.users[user]
            return {
                "grant_type": "client_credentials",
                "client_id": u.client_id,
                "client_secret": u.client_secret,
            }
        if user not in self.extra_users or self.extra_users_client is None:
            raise KeyError(f"{user!r} is neither a test user nor an extra user of the stack")
        client = self.extra_users_client
        return {
            "grant_type": "client_credentials",
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
            "scope": f"{client['scope_prefix']}{user}",
        }


# What the server, the plugin and the tools leave in a user's home as they work: transfer-job
# logs (FirecREST's names), job markers, staging, the plugin's temporary directory, the demo's
# and the API benchmark's directories. Tests remove their own directories themselves.
HOME_ARTEFACTS = (
    ".f7t_file_handling_job_*",
    ".firecrest-server",
    ".firecrest-staging",
    ".aiida-firecrest-tmp",
    ".bench-ls",
    "aiida_run",
)


def home_entries(home: str | Path) -> set[str]:
    return {entry.name for entry in Path(home).iterdir()}


def remove_new_artefacts(home: str | Path, before: set[str]) -> None:
    """The test users' homes outlive every stack (each CI run used to leave ~140 transfer-job
    logs there): remove the artefacts made since ``before`` was taken, only those (names in
    ``HOME_ARTEFACTS`` that were not there then: another stack's state, made earlier, stays)."""
    for entry in home_entries(home) - before:
        if not any(fnmatch.fnmatchcase(entry, pattern) for pattern in HOME_ARTEFACTS):
            continue
        path = Path(home, entry)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def free_ports(count: int) -> list[int]:
    sockets, ports = [], []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
            ports.append(sock.getsockname()[1])
    finally:
        for sock in sockets:
            sock.close()
    return ports


def new_stack_dir() -> Path:
    # Not pytest's tmp_path: /tmp/pytest-of-root is 0700, and the test users must be able to
    # reach the munge socket and slurm.conf under the stack directory.
    return Path(tempfile.mkdtemp(prefix="fcstack-", dir="/tmp"))


def port_arguments(ports: dict[str, int]) -> list[str]:
    return [arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))]


def stack_up(
    directory: Path,
    ports: dict[str, int] | None = None,
    replicas: int = 1,
    users: int = 0,
    slurm_mode: str | None = None,
) -> tuple[StackInfo, float]:
    ports = ports or dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
    argv = [sys.executable, str(STACK), "up", str(directory), *port_arguments(ports)]
    if replicas != 1:
        argv += ["--replicas", str(replicas)]
    if users:
        argv += ["--users", str(users)]
    slurm_mode = slurm_mode or os.environ.get(SLURM_MODE_ENV) or "ssh"
    argv += ["--slurm-mode", slurm_mode]
    t0 = time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    if result.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return StackInfo.load(directory / "stack.json"), elapsed


def stack_down(directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(STACK), "down", str(directory)], capture_output=True, text=True
    )


@contextlib.contextmanager
def running_stack(stack_json: str | None, replicas: int = 1, users: int = 0) -> Iterator[StackInfo]:
    """The stack that ``stack_json`` describes, or, without one, a stack of our own on free
    ports, stopped and removed afterwards (the test session's stack, and what the benchmarks'
    ``--stack`` option means). An own stack also takes away the artefacts it left in the test
    users' homes, unless FIRECREST_KEEP_HOMES is set; if it cannot be stopped cleanly, its
    directory is kept for a look."""
    if stack_json:
        yield StackInfo.load(Path(stack_json))
        return
    directory = new_stack_dir()
    homes_before: dict[str, set[str]] = {}
    try:
        stack, elapsed = stack_up(directory, replicas=replicas, users=users)
        print(f"\nstack up in {elapsed:.1f} s at {directory}")
        homes_before = {name: home_entries(user.home) for name, user in stack.users.items()}
        yield stack
    finally:
        result = stack_down(directory)
        if result.returncode == 0:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            print(f"dev/stack down failed; state kept in {directory}:\n{result.stderr}")
        if not os.environ.get("FIRECREST_KEEP_HOMES"):
            for name, before in homes_before.items():
                remove_new_artefacts(stack.users[name].home, before)


def computer_settings(stack: StackInfo, user: str = "alice", **overrides: Any) -> dict[str, Any]:
    """``verdi computer configure firecrest`` values for ``user`` on the stack (what the
    transport's constructor takes, apart from ``machine``)."""
    credentials = stack.users[user]
    settings: dict[str, Any] = {
        "url": stack.url,
        "token_uri": stack.token_url,
        "client_id": credentials.client_id,
        "client_secret": credentials.client_secret,
        "compute_resource": stack.system,
        "billing_account": stack.account,
        "temp_directory": f"{credentials.home}/.aiida-firecrest-tmp",
        "max_io_allowed": 8,
        "checksum_check": False,
    }
    settings.update(overrides)
    return settings


def restart_part(
    stack: StackInfo, part: str, *, down: float = 0.0, signal: str | None = None
) -> int:
    """`dev/stack restart DIR PART`: stop one part of the stack with every process it started
    (by default SIGKILL, a crash, for the server, sshd and the identity provider; SIGTERM for
    the Slurm daemons and the databases), stay down ``down`` seconds, start it again as `up`
    did. Returns its new PID, which is also recorded in DIR/pids.json (so `dev/stack down`
    stops it) and in ``stack.pids`` (updated in place: the session's StackInfo stays right for
    later tests)."""
    argv = [sys.executable, str(STACK), "restart", str(stack.dir), part, "--down", str(down)]
    if signal:
        argv += ["--signal", signal]
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    stack.pids.update(StackInfo.load(stack.dir / "stack.json").pids)
    return stack.pids[part]


def restart_server(stack: StackInfo, *, down: float = 0.0, signal: str = "KILL") -> int:
    """Crash the API server and its workers and start it again (see `restart_part`)."""
    return restart_part(stack, "server", down=down, signal=signal)
