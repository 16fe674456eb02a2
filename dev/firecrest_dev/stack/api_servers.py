"""Our API server: one directly on the API port, or N replicas behind HAProxy."""

from __future__ import annotations

import json
import secrets
import socket
from pathlib import Path

from .processes import Stack, StackError, run, wait_for
from .render import render, write_file
from .settings import (
    HAPROXY_CHECK_MS,
    HAPROXY_FALL,
    HAPROXY_RISE,
    PROBE_USER,
    REPLICA_DRAIN_SECONDS,
    REPLICA_GRACE_SECONDS,
    RESTD_API_VERSION,
    SYSTEM_NAME,
    VENV,
)
from .web import http_get


def start_server(
    stack: Stack,
    issuer: str,
    redis_url: str,
    replica_ports: list[int],
    slurm_mode: str = "ssh",
    restd_url: str = "",
) -> tuple[str, list[dict]]:
    """The API server directly on the API port, or with ``replica_ports`` one replica on each
    behind HAProxy on the API port. Returns the entry URL and the replicas."""
    d, p = stack.dir, stack.ports
    config = {
        "server": {"host": "127.0.0.1", "port": p["api"], "workers": 2, "log_level": "info"},
        "auth": {
            "jwks_url": f"{issuer}/jwks",
            "issuer": issuer,
            "audience": ["firecrest"],
            "username_claim": "preferred_username",
            "algorithms": ["RS256"],
            "token_url": f"{issuer}/token",
        },
        # Far above the defaults: benchmarks drive one user at thousands of requests per second
        # through this server. Tests of the limits start a server of their own with low ones.
        "rate_limit": {
            "requests_per_second": 100000,
            "burst": 100000,
            "max_concurrent_requests": 4096,
        },
        "systems": [
            {
                "name": SYSTEM_NAME,
                "ssh": {
                    "host": "127.0.0.1",
                    "port": p["ssh"],
                    "known_hosts": str(d / "ssh" / "known_hosts"),
                    "credentials": {
                        "type": "ca",
                        "ca_key": {"file": str(d / "ssh" / "user_ca")},
                        "validity": 600,
                    },
                    # this sshd allows MaxSessions 256
                    "max_channels_per_connection": 64,
                    # and MaxStartups 256:30:512: 2 workers x 16 logins at once stay far below
                    "max_concurrent_logins": 16,
                },
                "scheduler": {
                    "type": "slurm",
                    "version": "22.05",
                    "connection_mode": slurm_mode,
                    # 30 s as for commands: under 100 concurrent submits and polls on
                    # 2 cores slurmrestd's job listing took over the default 10 s.
                    **(
                        {"api_url": restd_url, "api_version": RESTD_API_VERSION, "timeout": 30}
                        if slurm_mode == "rest"
                        else {}
                    ),
                },
                "file_systems": [
                    {"path": "/home", "data_type": "users", "default_work_dir": True},
                    {"path": "/tmp", "data_type": "scratch"},
                ],
                # Small parts, so that tests with tens of MiB exercise multi-part uploads.
                "data_operation": {"staging_part_size": 16 * 1024 * 1024},
                "probe_user": PROBE_USER,
            }
        ],
    }
    if replica_ports:
        # Several replicas must share limits, serials and keys. One replica keeps them per
        # worker: a Redis round trip per request costs ~100-250 us of a worker's CPU (see
        # benchmarks/shared_limits.py), which the single-replica benchmarks should not carry.
        config["state"] = {"redis_url": redis_url}
        return _start_balanced_servers(stack, config, replica_ports)
    # JSON is YAML: the server reads this with its normal YAML loader.
    write_file(d / "server" / "config.yaml", json.dumps(config, indent=2) + "\n", 0o600)
    url = launch_server(stack)
    return url, [{"name": "server", "url": url, "pid": stack.processes[-1].pid}]


def launch_server(stack: Stack) -> str:
    """Start the API server on DIR/server/config.yaml (as `up` and `restart-server` do)."""
    server_bin = VENV / "bin" / "firecrest-server"
    if not server_bin.exists():
        raise StackError(f"{server_bin} is missing: run `dev/stack install` first")
    config_file = stack.dir / "server" / "config.yaml"
    stack.start("server", [str(server_bin), "--config", str(config_file)])
    url = f"http://127.0.0.1:{stack.ports['api']}"
    wait_for("the API server", lambda: http_get(f"{url}/status/liveness")[0] == 200, stack=stack)
    return url


def _start_replicas(stack: Stack, config: dict, ports: list[int]) -> list[dict]:
    """One firecrest-server (with its workers) per port, sharing the staging URL signing key
    and Redis; each drains on SIGTERM for longer than HAProxy takes to notice."""
    d = stack.dir
    key_file = d / "server" / "url_signing_key"
    if not key_file.exists():
        write_file(key_file, secrets.token_urlsafe(32), 0o600)
    server_bin = VENV / "bin" / "firecrest-server"
    if not server_bin.exists():
        raise StackError(f"{server_bin} is missing: run `dev/stack install` first")
    replicas = []
    for index, port in enumerate(ports, start=1):
        name = f"server-{index}"
        server = {
            **config["server"],
            "port": port,
            "url_signing_key": {"file": str(key_file)},
            "drain_seconds": REPLICA_DRAIN_SECONDS,
            "shutdown_grace_seconds": REPLICA_GRACE_SECONDS,
        }
        config_file = write_file(
            d / "server" / f"{name}.yaml", json.dumps({**config, "server": server}, indent=2), 0o600
        )
        process = stack.start(name, [str(server_bin), "--config", str(config_file)])
        replicas.append({"name": name, "url": f"http://127.0.0.1:{port}", "pid": process.pid})
    for replica in replicas:
        url = f"{replica['url']}/status/liveness"
        wait_for(replica["name"], lambda url=url: http_get(url)[0] == 200, stack=stack)
    return replicas


def _haproxy_config(d: Path, api_port: int, replicas: list[dict]) -> str:
    checks = (
        f"inter {HAPROXY_CHECK_MS}ms fastinter {HAPROXY_CHECK_MS // 2}ms downinter 1s "
        f"fall {HAPROXY_FALL} rise {HAPROXY_RISE}"
    )
    servers = "\n".join(
        f"    server {r['name']} {r['url'].removeprefix('http://')} check" for r in replicas
    )
    return render(
        "haproxy.cfg",
        replica_count=len(replicas),
        dir=d,
        api_port=api_port,
        checks=checks,
        servers=servers,
    )


def _start_haproxy(stack: Stack, replicas: list[dict]) -> str:
    d = stack.dir
    (d / "haproxy").mkdir(exist_ok=True)
    (d / "haproxy").chmod(0o700)
    config = write_file(
        d / "haproxy" / "haproxy.cfg", _haproxy_config(d, stack.ports["api"], replicas), 0o600
    )
    run(["/usr/sbin/haproxy", "-c", "-q", "-f", str(config)])
    stack.start("haproxy", ["/usr/sbin/haproxy", "-db", "-f", str(config)])
    url = f"http://127.0.0.1:{stack.ports['api']}"
    for replica in replicas:
        wait_for(
            f"HAProxy to see {replica['name']} up",
            lambda name=replica["name"]: haproxy_status(d, name) == "UP",
            stack=stack,
        )
    return url


def haproxy_status(d: Path, server: str) -> str | None:
    """The balancer's view of one replica (UP, DOWN, ...), from its stats socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        sock.connect(str(d / "haproxy" / "admin.sock"))
        sock.sendall(b"show stat\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    lines = b"".join(chunks).decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("pxname") == "replicas" and row.get("svname") == server:
            return row.get("status")
    return None


def _start_balanced_servers(stack: Stack, config: dict, ports: list[int]) -> tuple[str, list]:
    replicas = _start_replicas(stack, config, ports)
    return _start_haproxy(stack, replicas), replicas
