"""Starting, recording and waiting for the stack's processes: every PID `up` starts is kept in
DIR/pids.json with how it was started, so that `down` stops exactly those and `restart` starts
one again the same way."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .settings import CLEAN_PATH

_T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[stack +{time.monotonic() - _T0:6.2f}s] {message}", flush=True)


class StackError(Exception):
    pass


def run(
    argv: list[str], *, check: bool = True, env: dict | None = None, **kw
) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, env=env, **kw)
    if check and result.returncode != 0:
        raise StackError(
            f"{shlex.join(argv)} failed with exit {result.returncode}:\n{result.stderr.strip()}"
        )
    return result


@dataclass
class Process:
    name: str
    pid: int
    exe: str
    # How it was started, so that `restart` can start it again exactly so.
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    user: str | None = None

    def alive(self) -> bool:
        try:
            return os.readlink(f"/proc/{self.pid}/exe") == self.exe
        except OSError:
            return False  # gone, or a zombie whose exe can no longer be read


@dataclass
class Stack:
    dir: Path
    ports: dict[str, int]
    processes: list[Process] = field(default_factory=list)

    @property
    def pid_file(self) -> Path:
        return self.dir / "pids.json"

    def record(self) -> None:
        self.pid_file.write_text(json.dumps([p.__dict__ for p in self.processes], indent=1))

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        user: str | None = None,
        env: dict | None = None,
        cwd: Path | None = None,
    ) -> Process:
        logfile = open(self.dir / "log" / f"{name}.out", "ab")  # noqa: SIM115 - handed to the child
        base_env = {"PATH": CLEAN_PATH, "LANG": "C.UTF-8"}
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            env={**base_env, **(env or {})},
            cwd=cwd,
            user=user,
            group=user,
            extra_groups=[] if user else None,
            start_new_session=True,  # survives `up` returning; never gets our terminal's signals
        )
        logfile.close()
        exe = ""
        for _ in range(100):
            if popen.poll() is not None:
                raise StackError(
                    f"{name} exited at once with {popen.returncode}; see {logfile.name}"
                )
            with contextlib.suppress(OSError):
                exe = os.readlink(f"/proc/{popen.pid}/exe")
            if exe:
                break
            time.sleep(0.01)
        process = Process(
            name, popen.pid, exe, list(argv), dict(env or {}), str(cwd) if cwd else None, user
        )
        self.processes.append(process)
        self.record()
        log(f"started {name} pid={popen.pid}")
        # Popen objects would reap their child on garbage collection; keep that from mattering.
        popen.returncode = 0
        return process


def wait_for(what: str, probe, timeout: float = 60.0, stack: Stack | None = None) -> None:
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except Exception as exc:  # any failure of a probe means "not ready yet"
            last_error = str(exc)
        if stack:
            dead = [p.name for p in stack.processes if not p.alive()]
            if dead:
                raise StackError(
                    f"{', '.join(dead)} died while waiting for {what}; see {stack.dir}/log"
                )
        time.sleep(0.1)
    raise StackError(f"timed out after {timeout:.0f} s waiting for {what} {last_error}".strip())


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def require_root() -> None:
    if os.geteuid() != 0:
        raise StackError("must run as root (it creates users and starts system daemons)")


def process_group(pid: int) -> list[int]:
    """Every process in the process group led by ``pid`` (the server and its uvicorn workers:
    `Stack.start` gives each process a session of its own)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError):
            if os.getpgid(int(entry.name)) == pid:
                members.append(int(entry.name))
    return members


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` in the process tree (sshd's per-connection processes and
    the commands they run call setsid, so the process group alone does not find them)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            # the command name in field 2 may hold spaces and parentheses: split after it
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def process_running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie has ended: only its exit status is left)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def load_processes(d: Path) -> list[Process]:
    pid_file = d / "pids.json"
    if not pid_file.exists():
        return []
    return [Process(**p) for p in json.loads(pid_file.read_text())]
