"""Start, restart and stop a stack (`dev/stack`) from tests, benchmarks and dev tools."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .homes import home_entries, remove_new_artefacts
from .info import StackInfo
from .stack.settings import DEFAULT_PORTS, STACK_SCRIPT

PORT_NAMES = tuple(DEFAULT_PORTS)
# How the session's own stack reaches Slurm (`dev/stack up --slurm-mode`): ssh, or rest to run
# the same tests over slurmrestd.
SLURM_MODE_ENV = "FIRECREST_SLURM_MODE"


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
    argv = [sys.executable, str(STACK_SCRIPT), "up", str(directory), *port_arguments(ports)]
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
        [sys.executable, str(STACK_SCRIPT), "down", str(directory)], capture_output=True, text=True
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


def restart_part(
    stack: StackInfo, part: str, *, down: float = 0.0, signal: str | None = None
) -> int:
    """`dev/stack restart DIR PART`: stop one part of the stack with every process it started
    (by default SIGKILL, a crash, for the server, sshd and the identity provider; SIGTERM for
    the Slurm daemons and the databases), stay down ``down`` seconds, start it again as `up`
    did. Returns its new PID, which is also recorded in DIR/pids.json (so `dev/stack down`
    stops it) and in ``stack.pids`` (updated in place: the session's StackInfo stays right for
    later tests)."""
    argv = [sys.executable, str(STACK_SCRIPT), "restart", str(stack.dir), part, "--down", str(down)]
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
