"""Many distinct users at once: what each costs the server and the login node, and how fast
idle connections go away.

    .venv/bin/python benchmarks/users.py [--stack DIR/stack.json] [--users 10,100,1000]
        [--idle-timeout 120] [--capped 1000:250] [--json out.json] [--plot out.png]

The stack must have been started with `dev/stack up DIR --users K` (K at least the largest
step); without --stack this starts one of its own with enough extra users and stops it after.
It runs a one-worker API server of its own on the stack (dev/firecrest_dev/own_server.py), with
``ssh.idle_timeout`` set to ``--idle-timeout``, so that one process holds every connection and
its RSS is the worker's. For each step of K users it:

1. sends one ``GET ops/ls`` of their own home for each of K users, all in flight together
   ("cold": each opens the user's SSH connection, with a freshly minted certificate);
2. samples the worker's RSS, its established TCP connections to sshd, the pool's own count
   (``/metrics``), and the processes sshd runs for them with their proportional memory (PSS);
3. sends the same K requests again ("warm": the connections are reused);
4. waits without requests and samples the connections until they are back at the floor they
   had before the step: the idle reaping, measured against ``ssh.idle_timeout``.

``--capped K:C`` then runs K users once more against a second server with
``ssh.max_connections`` = C, ``--batch`` of them in flight at a time (users arriving over the
day, not all in the same second): every request must still succeed, the worker must never hold
more than C connections, and the pool reports how many idle ones it closed to make room.

It prints per step the P50/P99 latencies and errors of both waves, RSS and connections per
user, sshd's processes and PSS per connection, and the seconds the reaping took; the load
average of the machine at the start and at the end (it is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from firecrest_dev.info import StackInfo
from firecrest_dev.own_server import own_server
from firecrest_dev.running import running_stack

TOKEN_CONCURRENCY = 16
SAMPLE_INTERVAL = 0.25
PAGE = os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------- /proc sampling


def rss_bytes(pid: int) -> int:
    fields = Path(f"/proc/{pid}/statm").read_text().split()
    return int(fields[1]) * PAGE


def established_to_port(pid: int, port: int) -> int:
    """TCP connections of ``pid`` in state ESTABLISHED whose remote port is ``port`` (its SSH
    connections to sshd), from /proc: independent of the server's own bookkeeping."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[3] == "01" and fields[9] in inodes:
                    count += 1
    return count


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    return children


def sshd_sessions(sshd_pid: int) -> dict[str, float]:
    """The processes under the stack's sshd (per connection: the privileged monitor, the
    user's session process, and the SFTP server) and their summed PSS, MiB."""
    children = _children()
    todo, found = list(children.get(sshd_pid, [])), []
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    pss_kib = 0
    for pid in found:
        with contextlib.suppress(OSError):
            match = re.search(
                r"^Pss:\s+(\d+) kB", Path(f"/proc/{pid}/smaps_rollup").read_text(), re.M
            )
            if match:
                pss_kib += int(match.group(1))
    return {"processes": len(found), "pss_mib": pss_kib / 1024}


def pool_metrics(http: httpx.Client, url: str) -> dict[str, float]:
    text = http.get(f"{url}/metrics").text
    found = {}
    for name in ("connections", "users", "evicted_total"):
        match = re.search(rf"^firecrest_ssh_{name}\{{[^}}]*\}} (\S+)$", text, re.M)
        found[name] = float(match.group(1)) if match else 0.0
    return found


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


# --------------------------------------------------------------------------------- requests


async def fetch_tokens(stack: StackInfo, users: list[str]) -> dict[str, str]:
    limit = asyncio.Semaphore(TOKEN_CONCURRENCY)
    async with httpx.AsyncClient(timeout=30) as http:

        async def one(user: str) -> tuple[str, str]:
            async with limit:
                answer = await http.post(stack.token_url, data=stack.token_request(user))
                answer.raise_for_status()
                return user, answer.json()["access_token"]

        return dict(await asyncio.gather(*(one(u) for u in users)))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def wave(url: str, system: str, tokens: dict[str, str], homes: dict[str, str]) -> dict:
    """One ``ops/ls`` of each user's home, all in flight together, each on its own HTTP
    connection (distinct users are distinct clients)."""
    limits = httpx.Limits(max_connections=len(tokens) + 8, max_keepalive_connections=0)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    start = asyncio.Event()
    async with httpx.AsyncClient(timeout=180, limits=limits) as http:

        async def one(user: str) -> None:
            await start.wait()
            t0 = time.perf_counter()
            try:
                answer = await http.get(
                    f"{url}/filesystem/{system}/ops/ls",
                    params={"path": homes[user]},
                    headers={"Authorization": f"Bearer {tokens[user]}"},
                )
                status = str(answer.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            latencies.append((time.perf_counter() - t0) * 1000)
            statuses[status] = statuses.get(status, 0) + 1

        tasks = [asyncio.create_task(one(u)) for u in tokens]
        await asyncio.sleep(0)
        t0 = time.perf_counter()
        start.set()
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - t0
    return {
        "requests": len(latencies),
        "errors": sum(n for s, n in statuses.items() if s != "200"),
        "statuses": statuses,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies),
        "wall_s": wall,
    }


class Sampler:
    """Samples the worker's SSH connections every SAMPLE_INTERVAL in the background."""

    def __init__(self, pid: int, ssh_port: int) -> None:
        self.pid, self.port = pid, ssh_port
        self.peak = 0
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, established_to_port(self.pid, self.port))
            await asyncio.sleep(SAMPLE_INTERVAL)

    def __enter__(self) -> Sampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()


async def settle(pid: int, ssh_port: int, give_up: float) -> int:
    """Wait until the worker holds no SSH connection (the health probe's first one, or the
    previous step's, reaped), so that every connection counted next is this step's."""
    deadline = time.perf_counter() + give_up
    while True:
        count = established_to_port(pid, ssh_port)
        if count == 0 or time.perf_counter() > deadline:
            return count
        await asyncio.sleep(SAMPLE_INTERVAL)


async def wait_for_reaping(
    pid: int, ssh_port: int, floor: int, since: float, give_up: float
) -> dict:
    """Seconds from ``since`` (the last request's end) until the worker's SSH connections are
    back at ``floor``, with the samples (seconds, connections) on the way."""
    samples = []
    while True:
        now = time.perf_counter()
        count = established_to_port(pid, ssh_port)
        samples.append((round(now - since, 2), count))
        if count <= floor:
            return {"seconds": now - since, "samples": samples, "reached_floor": True}
        if now - since > give_up:
            return {"seconds": now - since, "samples": samples, "reached_floor": False}
        await asyncio.sleep(SAMPLE_INTERVAL)


# -------------------------------------------------------------------------------- the steps


async def step(stack: StackInfo, server, users: list[str], idle_timeout: float) -> dict:
    pid, port, sshd = server.pid, stack.ssh_port, stack.pids["sshd"]
    homes = {u: f"/home/{u}" for u in users}
    tokens = await fetch_tokens(stack, users)
    with httpx.Client(timeout=10) as http:
        floor = await settle(pid, port, idle_timeout * 2 + 10)
        before = {"rss": rss_bytes(pid), "sshd": sshd_sessions(sshd), "connections": floor}
        with Sampler(pid, port) as sampler:
            cold = await wave(server.url, stack.system, tokens, homes)
        after_cold = {
            "rss": rss_bytes(pid),
            "sshd": sshd_sessions(sshd),
            "connections": established_to_port(pid, port),
            "pool": pool_metrics(http, server.url),
        }
        warm = await wave(server.url, stack.system, tokens, homes)
        ended = time.perf_counter()
        after_warm_connections = established_to_port(pid, port)
        reaping = await wait_for_reaping(pid, port, floor, ended, idle_timeout * 4 + 30)
        after_reaping = {"rss": rss_bytes(pid), "sshd": sshd_sessions(sshd)}
    k = len(users)
    opened = after_cold["connections"] - floor
    sshd_processes = after_cold["sshd"]["processes"] - before["sshd"]["processes"]
    return {
        "users": k,
        "cold": cold,
        "warm": warm,
        "floor_connections": floor,
        "peak_connections": sampler.peak,
        "connections_after_cold": after_cold["connections"],
        "connections_after_warm": after_warm_connections,
        "pool_after_cold": after_cold["pool"],
        "ssh_connections_per_user": opened / k,
        "rss_before_mib": before["rss"] / 2**20,
        "rss_after_mib": after_cold["rss"] / 2**20,
        "rss_after_reaping_mib": after_reaping["rss"] / 2**20,
        "rss_per_user_kib": (after_cold["rss"] - before["rss"]) / k / 1024,
        "rss_per_connection_kib": (after_cold["rss"] - before["rss"]) / max(opened, 1) / 1024,
        "rss_released_per_connection_kib": (after_cold["rss"] - after_reaping["rss"])
        / max(opened, 1)
        / 1024,
        "sshd_processes_per_connection": sshd_processes / max(opened, 1),
        "sshd_pss_per_connection_mib": (after_cold["sshd"]["pss_mib"] - before["sshd"]["pss_mib"])
        / max(opened, 1),
        "sshd_processes_after_reaping": after_reaping["sshd"]["processes"],
        "reaping": reaping,
    }


async def capped(
    stack: StackInfo, server, users: list[str], cap: int, batch: int, idle_timeout: float
) -> dict:
    """The K users in batches of ``batch`` in flight together, one batch after the other, as
    users arrive over a day: the worker's connections stay at ``cap``, older idle ones are
    closed to make room."""
    pid, port = server.pid, stack.ssh_port
    homes = {u: f"/home/{u}" for u in users}
    tokens = await fetch_tokens(stack, users)
    floor = await settle(pid, port, idle_timeout * 2 + 10)
    rss_before = rss_bytes(pid)
    waves = []
    with Sampler(pid, port) as sampler:
        for i in range(0, len(users), batch):
            group = {u: tokens[u] for u in users[i : i + batch]}
            waves.append(await wave(server.url, stack.system, group, homes))
        # Sample once more at the end: a wave may be shorter than one interval.
        sampler.peak = max(sampler.peak, established_to_port(pid, port))
    with httpx.Client(timeout=10) as http:
        pool = pool_metrics(http, server.url)
    statuses: dict[str, int] = {}
    for w in waves:
        for status, n in w["statuses"].items():
            statuses[status] = statuses.get(status, 0) + n
    result = {
        "requests": sum(w["requests"] for w in waves),
        "errors": sum(w["errors"] for w in waves),
        "statuses": statuses,
        "p50_ms": statistics.median(w["p50_ms"] for w in waves),
        "p99_ms": max(w["p99_ms"] for w in waves),
    }
    return {
        "users": len(users),
        "batch": batch,
        "max_connections": cap,
        "rss_before_mib": rss_before / 2**20,
        "wave": result,
        "floor_connections": floor,
        "peak_connections": sampler.peak,
        "evicted": pool["evicted_total"],
        "rss_mib": rss_bytes(pid) / 2**20,
    }


def server_overrides(idle_timeout: float, max_connections: int | None, users: int) -> tuple:
    ssh = {"idle_timeout": idle_timeout, "max_concurrent_logins": 16}
    if max_connections is not None:
        ssh["max_connections"] = max_connections
    overrides = {
        "server": {"limits": {"max_connections": max(4096, users * 2)}},
        "rate_limit": {"requests_per_second": 100000, "burst": 100000},
    }
    # No health probes: their own connection would move the floor.
    return overrides, {"ssh": ssh, "probe_user": None}


def measure(
    stack: StackInfo, steps: list[int], idle_timeout: float, cap: tuple | None, batch: int
) -> dict:
    biggest = max([*steps, cap[0] if cap else 0])
    if len(stack.extra_users) < biggest:
        raise SystemExit(
            f"the stack has {len(stack.extra_users)} extra users; {biggest} are needed: "
            f"`dev/stack up DIR --users {biggest}`"
        )
    result = {
        "benchmark": "users",
        "idle_timeout": idle_timeout,
        "cpus": os.cpu_count(),
        "load_average": {"start": load_average()},
        "steps": [],
    }
    workdir = Path(tempfile.mkdtemp(prefix="bench-users-"))
    try:
        overrides, system = server_overrides(idle_timeout, None, biggest)
        with own_server(stack, workdir, overrides, system) as server:
            for k in steps:
                print(f"{k} users ...", flush=True)
                row = asyncio.run(step(stack, server, list(stack.extra_users[:k]), idle_timeout))
                result["steps"].append(row)
                print(_step_line(row), flush=True)
        if cap:
            k, c = cap
            print(f"{k} users through max_connections={c} ...", flush=True)
            overrides, system = server_overrides(idle_timeout, c, k)
            capped_dir = workdir / "capped"
            capped_dir.mkdir()
            with own_server(stack, capped_dir, overrides, system) as server:
                result["capped"] = asyncio.run(
                    capped(stack, server, list(stack.extra_users[:k]), c, batch, idle_timeout)
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["load_average"]["end"] = load_average()
    return result


def _step_line(row: dict) -> str:
    return (
        f"{row['users']:6d} {row['cold']['p50_ms']:8.0f} {row['cold']['p99_ms']:8.0f} "
        f"{row['cold']['errors']:5d} {row['warm']['p50_ms']:8.0f} {row['warm']['p99_ms']:8.0f} "
        f"{row['warm']['errors']:5d} {row['peak_connections']:5d} "
        f"{row['ssh_connections_per_user']:6.2f} "
        f"{row['rss_per_user_kib']:8.0f} {row['sshd_pss_per_connection_mib']:8.2f} "
        f"{row['reaping']['seconds']:6.1f}"
    )


HEADER = (
    f"{'users':>6s} {'cold P50':>8s} {'cold P99':>8s} {'err':>5s} {'warm P50':>8s} "
    f"{'warm P99':>8s} {'err':>5s} {'peak':>5s} {'conn/u':>6s} {'RSS KiB/u':>8s} {'sshd MiB':>8s} "
    f"{'reap s':>6s}"
)


def report(result: dict) -> None:
    print(
        f"\nidle_timeout {result['idle_timeout']:g} s; load average "
        f"{result['load_average']['start']} -> {result['load_average']['end']} "
        f"({result['cpus']} CPUs); latencies in ms; sshd MiB = PSS per connection\n{HEADER}"
    )
    for row in result["steps"]:
        print(_step_line(row))
    if "capped" in result:
        c = result["capped"]
        print(
            f"capped: {c['users']} users, {c['batch']} at a time, through "
            f"max_connections={c['max_connections']}: "
            f"errors {c['wave']['errors']}, peak connections {c['peak_connections']}, "
            f"evicted {c['evicted']:.0f}, P50 {c['wave']['p50_ms']:.0f} ms, "
            f"P99 {c['wave']['p99_ms']:.0f} ms"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stack", help="stack.json of a stack up with --users K")
    parser.add_argument("--users", default="10,100,1000", help="steps: distinct users")
    # The server's default: longer than a cold wave of 1,000 logins on a loaded 2-core machine
    # (70 s at load 13), so that no connection is reaped before the warm wave reuses it.
    parser.add_argument("--idle-timeout", type=float, default=120.0, help="ssh.idle_timeout")
    parser.add_argument(
        "--capped", default="1000:250", help="K:C, K users through max_connections C ('' skips)"
    )
    parser.add_argument(
        "--batch", type=int, default=50, help="users in flight together in the capped phase"
    )
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--plot", help="draw the figure here (PNG)")
    args = parser.parse_args()
    steps = [int(k) for k in args.users.split(",")]
    cap = tuple(int(v) for v in args.capped.split(":")) if args.capped else None
    need = max([*steps, cap[0] if cap else 0])
    with running_stack(args.stack, users=need) as stack:
        result = measure(stack, steps, args.idle_timeout, cap, args.batch)
    report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    if args.plot:
        from plots import users_figure

        users_figure(result, Path(args.plot))
    return 0


if __name__ == "__main__":
    sys.exit(main())
