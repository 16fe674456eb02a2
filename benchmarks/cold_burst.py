"""A cold burst: N new clients arrive at once at a server that has just started.

    .venv/bin/python benchmarks/cold_burst.py [--stack DIR/stack.json] [--clients 500]
        [--runs 10] [--users 1] [--endpoint stat|ls|systems] [--workers 2]
        [--server-src DIR] [--json out.json] [--plot out.png]

Each run starts a server of its own on the stack (the stack server's configuration, ``--workers``
uvicorn workers, ``server.timing_header`` on: fresh processes, with no JWKS fetched and no SSH
connection open), waits until it answers ``/status/liveness``, then sends ``--clients``
requests at once, each on a new TCP connection of its own (``Connection: close``): one first
request per client, as users arriving together after a restart. With ``--users 1`` every client
is alice (one user's 500 workflow processes); with ``--users K`` the clients are spread over the
stack's extra users user0001..userK (a stack up with ``--users K``), so that K SSH logins
happen in the burst.

Per run it prints the P50, P99 and maximum latency, errors, and where the slowest requests'
time went:

- ``queue``: the client's time minus the server's own (``conn`` + ``app``): waiting in the
  kernel's accept queue (and for the client's own event loop, and the wire);
- ``conn``: from the worker taking the connection to the request reaching the app;
- ``auth``: token validation (the JWKS fetch, when one is needed);
- ``ssh``: waiting for an SSH channel (the login, when one is opened);
- ``handler``: the rest of the app's time;

from the ``Server-Timing`` header (server/firecrest_server/server_timing.py); and the accept
queue's peak length (sampled from /proc/net/tcp) and the kernel's listen overflow and drop
counters over the run (``nstat``-style, /proc/net/netstat: machine-wide). At the end: how many
runs had P99 < 1 s with no error, and the machine's load average at the start and the end.

``--server-src DIR`` runs the server from another checkout's ``server/`` (for before/after
comparisons in one session; such a server need not know ``timing_header``: ``--no-timing``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from firecrest_dev.info import StackInfo
from firecrest_dev.own_server import NotAnswering, served
from firecrest_dev.running import free_ports, running_stack

GOAL_P99_MS = 1000.0
# How long a fresh server may take to answer /status/liveness (a loaded machine: ~15 s).
START_TIMEOUT = 60.0
PHASES = ("queue", "conn", "auth", "ssh", "handler")
SAMPLE_INTERVAL = 0.01
# The slowest share of requests whose phases are averaged: where a bad P99 comes from.
TAIL_SHARE = 0.05


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


# ------------------------------------------------------------------------- kernel counters


def listen_counters() -> dict[str, int]:
    """TcpExt ListenOverflows and ListenDrops (SYNs dropped for a full accept queue)."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=True))
            return {k: int(table.get(k, 0)) for k in ("ListenOverflows", "ListenDrops")}
    return {"ListenOverflows": 0, "ListenDrops": 0}


def accept_queue(port: int) -> int:
    """Connections waiting in the accept queue of the listening socket on ``port``: for a
    socket in LISTEN (state 0A), /proc/net/tcp's rx_queue is that queue's length."""
    needle = f":{port:04X} "
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and (fields[1] + " ").endswith(needle):
            return int(fields[4].split(":")[1], 16)
    return 0


class QueueSampler(threading.Thread):
    """The accept queue's peak length, sampled every SAMPLE_INTERVAL while a burst runs."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.peak = port, 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(SAMPLE_INTERVAL):
            self.peak = max(self.peak, accept_queue(self.port))

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


# ------------------------------------------------------------------------------ the server


@contextlib.contextmanager
def fresh_server(
    stack: StackInfo, workdir: Path, workers: int, timing: bool, server_src: str | None
):
    """A server of its own with the stack server's configuration; yields (url, pid)."""
    config = json.loads((stack.dir / "server" / "config.yaml").read_text())
    port = free_ports(1)[0]
    config["server"].update(port=port, workers=workers)
    if timing:
        config["server"]["timing_header"] = True
    config_file = workdir / "config.yaml"
    config_file.write_text(json.dumps(config))
    env = dict(os.environ)
    if server_src:
        env["PYTHONPATH"] = str(Path(server_src) / "server")
    log_file = workdir / "server.log"
    try:
        with served(
            config_file, log_file, port, start_timeout=START_TIMEOUT, env=env, new_session=True
        ) as process:
            yield f"http://127.0.0.1:{port}", process.pid
    except NotAnswering as exc:
        raise ServerDidNotStart(
            f"server did not answer within {START_TIMEOUT:.0f} s", worker_restarts(log_file)
        ) from exc


# ---------------------------------------------------------------------------------- clients


def _request(path: str, token: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()


def _server_timing(head: bytes) -> dict[str, float]:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"server-timing":
            phases = {}
            for item in value.decode().split(","):
                metric, _, duration = item.strip().partition(";dur=")
                phases[metric] = float(duration)
            return phases
    return {}


async def one_client(port: int, request: bytes, start: asyncio.Event) -> dict:
    """One new TCP connection, one request, the whole answer read; plain sockets, so that 500
    of them cost the measuring process little."""
    await start.wait()
    t0 = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        connected = time.perf_counter()
        writer.write(request)
        answer = await asyncio.wait_for(reader.read(-1), 120)
        writer.close()
        head, _, _body = answer.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1].decode() if head else "empty"
    except (OSError, TimeoutError, IndexError) as exc:
        return {"status": type(exc).__name__, "ms": (time.perf_counter() - t0) * 1000}
    total = (time.perf_counter() - t0) * 1000
    row = {"status": status, "ms": total, "connect_ms": (connected - t0) * 1000}
    phases = _server_timing(head)
    if phases:
        server = phases.get("conn", 0.0) + phases.get("app", 0.0)
        row["phases"] = {
            "queue": max(0.0, total - server),
            "conn": phases.get("conn", 0.0),
            "auth": phases.get("auth", 0.0),
            "ssh": phases.get("ssh", 0.0),
            "handler": max(
                0.0, phases.get("app", 0.0) - phases.get("auth", 0.0) - phases.get("ssh", 0.0)
            ),
        }
    return row


async def burst(port: int, requests: list[bytes]) -> tuple[list[dict], float]:
    start = asyncio.Event()
    tasks = [asyncio.create_task(one_client(port, r, start)) for r in requests]
    await asyncio.sleep(0)  # every client waiting at the start line
    t0 = time.perf_counter()
    start.set()
    rows = await asyncio.gather(*tasks)
    return rows, time.perf_counter() - t0


def summarize(rows: list[dict], wall: float, queue_peak: int, counters: dict) -> dict:
    latencies = [r["ms"] for r in rows]
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    timed = sorted((r for r in rows if "phases" in r), key=lambda r: r["ms"])
    tail = timed[-max(1, round(len(timed) * TAIL_SHARE)) :] if timed else []
    result = {
        "requests": len(rows),
        "errors": sum(n for s, n in statuses.items() if s != "200"),
        "statuses": statuses,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies),
        "wall_s": wall,
        "connect_p99_ms": percentile([r.get("connect_ms", r["ms"]) for r in rows], 99),
        "accept_queue_peak": queue_peak,
        **counters,
    }
    if timed:
        result["phases_p50_ms"] = {
            p: statistics.median(r["phases"][p] for r in timed) for p in PHASES
        }
        result["phases_tail_ms"] = {
            p: statistics.mean(r["phases"][p] for r in tail) for p in PHASES
        }
    result["met"] = result["errors"] == 0 and result["p99_ms"] < GOAL_P99_MS
    result["latencies_ms"] = sorted(round(v, 2) for v in latencies)
    return result


# ------------------------------------------------------------------------------------ runs


def paths_for(stack: StackInfo, endpoint: str, users: list[str], homes: dict[str, str]) -> dict:
    if endpoint == "systems":
        return {u: "/status/systems" for u in users}
    return {u: f"/filesystem/{stack.system}/ops/{endpoint}?path={homes[u]}" for u in users}


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its children (the server's workers)."""
    total = 0
    for proc in [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{proc}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class ServerDidNotStart(RuntimeError):
    def __init__(self, message: str, restarts: int) -> None:
        super().__init__(message)
        self.restarts = restarts


def worker_restarts(log_file: Path) -> int:
    """Workers the supervisor killed and replaced (uvicorn: "Child process [N] died")."""
    return log_file.read_text(errors="replace").count("died")


def workers_ready(log_file: Path) -> int:
    """Workers that had finished starting (uvicorn's "Application startup complete" line)."""
    return log_file.read_text(errors="replace").count("Application startup complete")


def workers_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    # uvicorn's multiprocessing may leave a resource tracker: only the serving workers.
    return [
        int(c)
        for c in children
        if b"firecrest" in Path(f"/proc/{c}/cmdline").read_bytes()
        or b"multiprocessing.spawn" in Path(f"/proc/{c}/cmdline").read_bytes()
    ]


@contextlib.contextmanager
def profiled(pid: int, prefix: str | None, run_number: int):
    """With ``--profile PREFIX``: py-spy records each worker (PREFIX-RUN-PID.txt, collapsed
    stacks) from before the burst to its end. Attaching takes a moment, so the burst starts a
    second later: the workers are as cold, having served nothing yet."""
    if not prefix:
        yield
        return
    spies = [
        subprocess.Popen(
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(w),
                "--rate",
                "200",
                "--format",
                "raw",
                "--nonblocking",
                "-o",
                f"{prefix}-{run_number}-{w}.txt",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for w in workers_of(pid)
    ]
    time.sleep(1.5)
    try:
        yield
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            spy.wait(timeout=30)


def one_run(
    stack: StackInfo,
    args: argparse.Namespace,
    tokens: dict[str, str],
    paths: dict[str, str],
    run_number: int,
) -> dict:
    users = list(tokens)
    requests = [
        _request(paths[users[i % len(users)]], tokens[users[i % len(users)]])
        for i in range(args.clients)
    ]
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as workdir:
        try:
            return _burst_on_fresh_server(args, Path(workdir), requests, run_number, stack)
        except ServerDidNotStart as exc:
            # A result, not a crash: with uvicorn's 5 s health-check timeout a loaded machine
            # kept killing the workers before they served (docs/benchmarks.md).
            return {
                "started": False,
                "worker_restarts": exc.restarts,
                "requests": len(requests),
                "errors": len(requests),
                "met": False,
            }


def _burst_on_fresh_server(
    args: argparse.Namespace, workdir: Path, requests: list[bytes], run_number: int, stack
) -> dict:
    with (
        fresh_server(stack, workdir, args.workers, args.timing, args.server_src) as (url, pid),
        profiled(pid, args.profile, run_number),
    ):
        port = int(url.rsplit(":", 1)[1])
        time.sleep(args.settle)
        ready = workers_ready(workdir / "server.log")
        before = listen_counters()
        cpu_before = tree_cpu_seconds(pid)
        sampler = QueueSampler(port)
        sampler.start()
        try:
            rows, wall = asyncio.run(burst(port, requests))
        finally:
            peak = sampler.stop()
        after = listen_counters()
        cold_cpu = tree_cpu_seconds(pid) - cpu_before
        # The same burst again on the now warm server (new TCP connections again; the JWKS,
        # the SSH connections and every code path warm): the reference for the cold one.
        cpu_before = tree_cpu_seconds(pid)
        warm_rows, warm_wall = asyncio.run(burst(port, requests))
        warm_cpu = tree_cpu_seconds(pid) - cpu_before
        restarts = worker_restarts(workdir / "server.log")
    counters = {f"{k[0].lower()}{k[1:]}": after[k] - before[k] for k in before}
    warm = summarize(warm_rows, warm_wall, 0, {})
    return {
        "started": True,
        "worker_restarts": restarts,
        "workers_ready": ready,
        **summarize(rows, wall, peak, counters),
        "cpu_ms_per_request": cold_cpu * 1000 / len(rows),
        "warm": {
            "p50_ms": warm["p50_ms"],
            "p99_ms": warm["p99_ms"],
            "errors": warm["errors"],
            "cpu_ms_per_request": warm_cpu * 1000 / len(warm_rows),
        },
    }


def _run_line(i: int, row: dict) -> str:
    if not row["started"]:
        return f"{i:3d} the server did not start: {row['worker_restarts']} workers killed"
    tail = row.get("phases_tail_ms", {})
    phases = " ".join(f"{tail.get(p, float('nan')):7.0f}" for p in PHASES)
    columns = (
        f"{i:3d} {row['p50_ms']:7.0f} {row['p99_ms']:7.0f} {row['max_ms']:7.0f}",
        f"{row['errors']:4d} {row['worker_restarts']:4d} {row['workers_ready']:5d}",
        f"{row['accept_queue_peak']:5d} {row['listenOverflows']:5d}",
        f"{'yes' if row['met'] else 'NO':>4s} {row['cpu_ms_per_request']:5.1f}",
        f"{row['warm']['p99_ms']:6.0f} {row['warm']['cpu_ms_per_request']:5.1f} | {phases}",
    )
    return " ".join(columns)


HEADER = " ".join(
    (
        f"{'run':>3s} {'P50':>7s} {'P99':>7s} {'max':>7s} {'err':>4s} {'kill':>4s}",
        f"{'ready':>5s} {'queue':>5s} {'ovfl':>5s} {'met':>4s} {'cpu':>5s} {'wP99':>6s}",
        f"{'wcpu':>5s} |",
        *(f"{p:>7s}" for p in PHASES),
    )
)


def measure(stack: StackInfo, args: argparse.Namespace) -> dict:
    if args.users == 1:
        users = ["alice"]
        homes = {"alice": stack.users["alice"].home}
    else:
        if len(stack.extra_users) < args.users:
            raise SystemExit(
                f"the stack has {len(stack.extra_users)} extra users; {args.users} are needed: "
                f"`dev/stack up DIR --users {args.users}`"
            )
        users = list(stack.extra_users[: args.users])
        homes = {u: f"/home/{u}" for u in users}
    tokens = {u: stack.fetch_token(u) for u in users}
    paths = paths_for(stack, args.endpoint, users, homes)
    result = {
        "benchmark": "cold_burst",
        "clients": args.clients,
        "users": args.users,
        "endpoint": args.endpoint,
        "workers": args.workers,
        "server_src": args.server_src,
        "cpus": os.cpu_count(),
        "goal_p99_ms": GOAL_P99_MS,
        "load_average": {"start": load_average()},
        "runs": [],
    }
    print(f"latencies in ms; phases: mean over the slowest {TAIL_SHARE:.0%}\n{HEADER}", flush=True)
    for i in range(args.runs):
        row = one_run(stack, args, tokens, paths, i + 1)
        result["runs"].append(row)
        print(_run_line(i + 1, row), flush=True)
    result["load_average"]["end"] = load_average()
    runs = result["runs"]
    result["runs_met"] = sum(r["met"] for r in runs)
    result["errors"] = sum(r["errors"] for r in runs)
    result["runs_started"] = sum(r["started"] for r in runs)
    started = [r["p99_ms"] for r in runs if r["started"]]
    result["median_p99_ms"] = statistics.median(started) if started else None
    return result


def report(result: dict) -> None:
    median = result["median_p99_ms"]
    print(
        f"\n{result['clients']} clients ({result['users']} user(s), {result['endpoint']}), "
        f"{result['workers']} workers: P99 < {result['goal_p99_ms']:.0f} ms with no error in "
        f"{result['runs_met']} of {len(result['runs'])} runs ({result['runs_started']} started); "
        f"median P99 {'-' if median is None else f'{median:.0f} ms'}; "
        f"errors {result['errors']}; load average "
        f"{result['load_average']['start']} -> {result['load_average']['end']} "
        f"({result['cpus']} CPUs)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stack", help="stack.json of a running stack")
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--users", type=int, default=1, help="1: alice; K: user0001..userK")
    parser.add_argument("--endpoint", choices=("stat", "ls", "systems"), default="stat")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--server-src", help="a checkout whose server/ to run instead")
    parser.add_argument(
        "--no-timing", dest="timing", action="store_false", help="no Server-Timing header"
    )
    parser.add_argument(
        "--profile", metavar="PREFIX", help="py-spy each worker during the burst (PREFIX-*.txt)"
    )
    parser.add_argument(
        "--settle", type=float, default=0.0, help="seconds between ready and the burst"
    )
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--plot", help="draw the figure here (PNG)")
    args = parser.parse_args()
    # Stopped with SIGTERM: still stop the server of the run (the context managers' exits).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with running_stack(args.stack, users=args.users if args.users > 1 else 0) as stack:
        result = measure(stack, args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    report(result)
    if args.plot:
        from plots import cold_burst_figure

        cold_burst_figure(result, Path(args.plot))
    return 0


if __name__ == "__main__":
    sys.exit(main())
