"""`dev/stack up DIR`: start every part in dependency order and write DIR/stack.json."""

from __future__ import annotations

import argparse
import json
import pwd
import shlex
import shutil
import socket
import sys
from pathlib import Path

from .api_servers import start_server
from .down import stop_stack
from .oidc import extra_users_client, start_oidc, write_jwks
from .processes import (
    Stack,
    StackError,
    load_processes,
    log,
    port_in_use,
    require_root,
    wait_for,
)
from .redis_server import start_redis
from .render import write_file
from .settings import (
    ACCOUNT,
    CLEAN_PATH,
    DEFAULT_PORTS,
    MAX_EXTRA_USERS,
    NODE,
    PROBE_USER,
    RESTD_API_VERSION,
    STACK_SCRIPT,
    SYSTEM_NAME,
    TEST_USERS,
)
from .slurm import start_accounting, start_munge, start_slurm, start_slurmrestd, write_slurm_conf
from .sshd import ssh_probe, start_sshd
from .users import ensure_extra_users, ensure_restd_user, ensure_users, extra_user_names
from .web import fetch_token, http_get


def _check_traversable(path: Path) -> None:
    for parent in [path, *path.parents]:
        if not parent.stat().st_mode & 0o001:
            raise StackError(
                f"{parent} is not world-executable (o+x): the test users could not reach {path}. "
                "Use a directory under /tmp, e.g. `mktemp -d /tmp/stack.XXXX`."
            )


def _prepare_dirs(d: Path) -> None:
    for sub in (
        "etc",
        "ssh",
        "munge",
        "log",
        "slurm/state",
        f"slurm/spool/{NODE}",
        "slurm/run",
        "oidc",
        "server",
    ):
        (d / sub).mkdir(parents=True, exist_ok=True)
    d.chmod(0o755)
    for sub in ("etc", "log", "slurm", "slurm/spool", "oidc", "server"):
        (d / sub).chmod(0o755)
    (d / "ssh").chmod(0o711)
    shutil.chown(d / "munge", "munge", "munge")
    (d / "munge").chmod(0o755)
    for sub in ("slurm/state", "slurm/run", "log"):
        shutil.chown(d / sub, "slurm", "slurm")


def _parse_ports(args: argparse.Namespace) -> dict[str, int]:
    ports = dict(DEFAULT_PORTS)
    for name in ports:
        value = getattr(args, f"{name}_port", None)
        if value is not None:
            ports[name] = value
    return ports


def cmd_up(args: argparse.Namespace) -> None:
    require_root()
    d = Path(args.dir).resolve()
    d.mkdir(parents=True, exist_ok=True)
    _check_traversable(d.parent)
    old = load_processes(d)
    alive = [p for p in old if p.alive()]
    if alive:
        raise StackError(
            f"{', '.join(p.name for p in alive)} from an earlier `up` still run: "
            f"`dev/stack down {d}` first"
        )
    ports = _parse_ports(args)
    if args.replicas < 1:
        raise StackError("--replicas must be at least 1")
    # One replica: the server directly on the API port, as before (see docs/development.md).
    replica_ports = _replica_ports(args, args.replicas) if args.replicas > 1 else []
    checked = {**ports, **{f"replica {i}": p for i, p in enumerate(replica_ports, start=1)}}
    busy = [f"{name} port {port}" for name, port in checked.items() if port_in_use(port)]
    if busy:
        raise StackError(
            f"already in use on 127.0.0.1: {', '.join(busy)} "
            "(choose other ports with --<name>-port)"
        )
    if not 0 <= args.users <= MAX_EXTRA_USERS:
        raise StackError(f"--users must be between 0 and {MAX_EXTRA_USERS}")
    extra_users = extra_user_names(args.users)
    stack = Stack(d, ports)
    stack.record()
    try:
        ensure_users()
        ensure_extra_users(extra_users)
        ensure_restd_user()
        _prepare_dirs(d)
        munge_sock = start_munge(stack)
        start_sshd(stack)
        # Before Slurm: slurmctld and slurmdbd load the provider's keys (jwks) when they start.
        issuer, clients = start_oidc(stack, extra_users)
        write_jwks(stack, issuer)
        slurm_conf = write_slurm_conf(stack, munge_sock)
        slurm_env = {"PATH": CLEAN_PATH, "SLURM_CONF": str(slurm_conf)}
        start_accounting(stack, munge_sock, slurm_env)
        start_slurm(stack, slurm_env, extra_users)
        restd_url = start_slurmrestd(stack, slurm_env)
        wait_for("ssh certificate login", lambda: ssh_probe(stack, TEST_USERS[0]), stack=stack)
        redis_url = start_redis(stack)
        url, replicas = start_server(
            stack, issuer, redis_url, replica_ports, args.slurm_mode, restd_url
        )
        token_url = f"{issuer}/token"
        token = fetch_token(token_url, **clients[TEST_USERS[0]])
        wait_for(
            "the API server to accept a token",
            lambda: (
                http_get(f"{url}/status/systems", {"Authorization": f"Bearer {token}"})[0] == 200
            ),
            stack=stack,
        )
    except BaseException:
        log("start failed: stopping what was started")
        stop_stack(d, cancel_jobs=False)
        raise
    stack_json = {
        "url": url,
        "system": SYSTEM_NAME,
        "token_url": token_url,
        "users": {
            user: {
                "home": pwd.getpwnam(user).pw_dir,
                "client_id": c["client_id"],
                "client_secret": c["client_secret"],
                "token_command": shlex.join(
                    [sys.executable, str(STACK_SCRIPT), "token", str(d), user]
                ),
            }
            for user, c in clients.items()
        },
        # The server's own login for health probes: not a caller, so not in "users".
        "probe_user": PROBE_USER,
        "ssh": {
            "host": "127.0.0.1",
            "port": ports["ssh"],
            "ca_key": str(d / "ssh" / "user_ca"),
            "known_hosts": str(d / "ssh" / "known_hosts"),
        },
        "slurm_conf": str(slurm_conf),
        "account": ACCOUNT,
        "partition": "debug",
        "signing_key": (d / "oidc" / "signing-key.pem").read_text(),
        "issuer": issuer,
        "audience": "firecrest",
        "ports": ports,
        "pids": {p.name: p.pid for p in stack.processes},
        "replicas": replicas,
        "redis_url": redis_url,
        "slurm_mode": args.slurm_mode,
        "slurmrestd": {"url": restd_url, "api_version": RESTD_API_VERSION},
    }
    if extra_users:
        # Not in "users": tests that visit every user's home visit only the test users'.
        stack_json["extra_users"] = {
            **extra_users_client(d),
            "scope_prefix": "stack-user:",
            "usernames": extra_users,
        }
    # It holds client secrets and the signing key: root only.
    write_file(d / "stack.json", json.dumps(stack_json, indent=2) + "\n", 0o600)
    log(f"stack up: API {url}, system {SYSTEM_NAME!r}; details in {d}/stack.json")


def _replica_ports(args: argparse.Namespace, replicas: int) -> list[int]:
    """--replica-ports P1,P2,... or free ports chosen now (the balancer takes --api-port)."""
    if args.replica_ports:
        ports = [int(p) for p in args.replica_ports.split(",")]
        if len(ports) != replicas:
            raise StackError(f"--replica-ports names {len(ports)} port(s) for {replicas} replicas")
        return ports
    sockets = []
    try:
        for _ in range(replicas):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
