"""`dev/stack restart DIR PART`: stop one part with everything it started, start it again."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import time
import urllib.parse
from pathlib import Path

from .api_servers import haproxy_status
from .processes import (
    Stack,
    StackError,
    descendants,
    load_processes,
    log,
    port_in_use,
    process_group,
    process_running,
    require_root,
    run,
    wait_for,
)
from .redis_server import redis_ping
from .render import write_file
from .settings import CLEAN_PATH, CRASHABLE_PARTS, PART_PORTS
from .slurm import restd_answers
from .web import http_get


def _ready_probe(name: str, info: dict, d: Path):
    """A probe that answers True once the restarted part serves again."""
    ports = info["ports"]
    replica = replica_entry(info, name)
    if replica is not None:
        # Serving again is not enough for a rolling restart: the balancer must send to it
        # again before the next replica may stop.
        url = f"{replica['url']}/status/liveness"
        return lambda: http_get(url)[0] == 200 and haproxy_status(d, name) == "UP"
    if name == "redis":
        return lambda: redis_ping(ports["redis"])
    if name == "haproxy":
        url = f"http://127.0.0.1:{ports['api']}/status/liveness"
        return lambda: http_get(url)[0] == 200
    if name == "server":
        url = f"http://127.0.0.1:{ports['api']}/status/liveness"
        return lambda: http_get(url)[0] == 200
    if name == "oidc":
        url = f"{info['token_url'].rsplit('/', 1)[0]}/.well-known/openid-configuration"
        return lambda: http_get(url)[0] == 200
    if name == "sshd":

        def banner() -> bool:
            with socket.create_connection(("127.0.0.1", ports["ssh"]), timeout=2) as sock:
                return sock.recv(4).startswith(b"SSH-")

        return banner
    if name == "slurmrestd":
        return lambda: restd_answers(ports["slurmrestd"])
    if name == "slurmctld":
        env = {"PATH": CLEAN_PATH, "SLURM_CONF": str(d / "etc" / "slurm.conf")}
        return lambda: "is UP" in run(["scontrol", "ping"], env=env, check=False).stdout
    return lambda: True


def replica_entry(info: dict, name: str) -> dict | None:
    """The replica ``name`` (server-1, server-2, ...) of a stack up with --replicas N > 1."""
    return next(
        (r for r in info.get("replicas", []) if r["name"] == name and name != "server"), None
    )


def _part_port(info: dict, name: str) -> int | None:
    replica = replica_entry(info, name)
    if replica is not None:
        return urllib.parse.urlsplit(replica["url"]).port
    port_name = PART_PORTS.get(name)
    return info["ports"].get(port_name) if port_name else None


def cmd_restart(args: argparse.Namespace) -> None:
    """Stop one part (SIGKILL by default: a crash) together with every process it started,
    wait ``--down`` seconds, start it again exactly as `up` did, and record its new PID."""
    require_root()
    d = Path(args.dir).resolve()
    info = json.loads((d / "stack.json").read_text())
    processes = load_processes(d)
    index = next((i for i, p in enumerate(processes) if p.name == args.part), None)
    if index is None:
        names = ", ".join(p.name for p in processes) or "none"
        raise StackError(f"no part {args.part!r} recorded in {d}/pids.json (recorded: {names})")
    old = processes[index]
    if not old.argv:
        raise StackError(f"{d}/pids.json does not say how {old.name} was started: `up` again")
    crashable = old.name in CRASHABLE_PARTS or replica_entry(info, old.name) is not None
    name = args.signal or ("KILL" if crashable else "TERM")
    signum = signal.Signals[f"SIG{name.upper().removeprefix('SIG')}"]
    if old.alive():
        group = process_group(old.pid) if os.getpgid(old.pid) == old.pid else [old.pid]
        victims = list(dict.fromkeys([old.pid, *group, *descendants(old.pid)]))
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        log(f"{signum.name} {old.name} ({old.pid}) and {len(victims) - 1} process(es) it started")
        wait_for(f"the old {old.name} to end", lambda: not old.alive(), timeout=30)
        wait_for(
            "what it started to end",
            lambda: not any(process_running(pid) for pid in victims),
            timeout=30,
        )
    port = _part_port(info, old.name)
    if port:
        wait_for(f"port {port} to be free", lambda: not port_in_use(port), timeout=30)
    if args.down > 0:
        log(f"{old.name} down for {args.down:g} s")
        time.sleep(args.down)
    stack = Stack(d, info["ports"], processes=processes[:index])
    stack.start(
        old.name,
        old.argv,
        user=old.user,
        env=old.env,
        cwd=Path(old.cwd) if old.cwd else None,
    )
    wait_for(f"{old.name} to serve again", _ready_probe(old.name, info, d), stack=stack)
    # Back where it was in the list, so that `down` stops it before what it depends on.
    stack.processes += processes[index + 1 :]
    stack.record()
    info["pids"] = {p.name: p.pid for p in stack.processes}
    for replica in info.get("replicas", []):
        replica["pid"] = info["pids"].get(replica["name"], replica["pid"])
    write_file(d / "stack.json", json.dumps(info, indent=2) + "\n", 0o600)
    log(f"{old.name} restarted: pid {info['pids'][old.name]}")


def cmd_restart_server(args: argparse.Namespace) -> None:
    args.part = "server"
    cmd_restart(args)
