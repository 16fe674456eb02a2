"""API requests vs. the same answers straight over SSH, measured side by side in one run.

    .venv/bin/python benchmarks/api.py [--stack DIR/stack.json] [--seconds 10]
        [--clients 1,10,100,500] [--endpoints stat,ls,systems] [--json out.json]
        [--plot out.png]

For each endpoint and concurrency level it measures, on the same stack:

- **api**: the HTTP request with `wrk` (a C load generator, so the client is not the
  bottleneck), each connection its own client: `ops/stat`, `ops/ls` of a directory of 20
  entries, `status/systems` (no SSH at all: the cost of auth and the framework);
- **raw exec**: the program FirecREST v2 would spawn (`stat -c ...`, `ls -l ...`) over ONE
  already-open asyncssh connection, that many channels at once;
- **raw sftp**: the SFTP request over the same connection (no process; the physical floor).

and prints requests/s with P50/P95/P99 latency and errors, plus api / raw exec ratios; with
--plot it draws them (benchmarks/plots.py, matplotlib). Without
--stack it starts a stack of its own and stops it afterwards. This machine is shared: absolute
numbers drift; the ratios measured in the same run are what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncssh

from firecrest_dev.info import StackInfo
from firecrest_dev.running import running_stack
from firecrest_server.ssh.pool import PREFERRED_CIPHERS

BENCH_DIR = "/home/alice/.bench-ls"

# The raw side uses the server's SSH pool's cipher preference: the same encryption cost per byte.
SERVER_CIPHERS = PREFERRED_CIPHERS
RAW_COMMANDS = {
    "stat": "stat -c '%f %i %d %h %u %g %s %X %Y %Z' -- /home/alice/.bashrc",
    "ls": f"ls -l --quoting-style=c --time-style=+%Y-%m-%dT%H:%M:%S -- {BENCH_DIR}",
}
API_PATHS = {
    "stat": "/filesystem/{system}/ops/stat?path=/home/alice/.bashrc",
    "ls": "/filesystem/{system}/ops/ls?path=" + BENCH_DIR,
    "systems": "/status/systems",
}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _raw(stack: StackInfo, clients: int, seconds: float, endpoint: str, mode: str) -> dict:
    ca = asyncssh.read_private_key(str(stack.ca_key))
    key = asyncssh.generate_private_key("ssh-ed25519")
    now = int(time.time())
    cert = ca.generate_user_certificate(
        key, "bench", principals=["alice"], valid_after=now - 60, valid_before=now + 3600
    )
    latencies: list[float] = []
    errors = 0
    async with asyncssh.connect(
        stack.ssh_host,
        stack.ssh_port,
        username="alice",
        client_keys=[(key, cert)],
        known_hosts=str(stack.known_hosts),
        agent_path=None,
        encryption_algs=SERVER_CIPHERS,
    ) as conn:
        sftp = await conn.start_sftp_client() if mode == "sftp" else None
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                t0 = time.monotonic()
                try:
                    if sftp is not None and endpoint == "stat":
                        await sftp.stat("/home/alice/.bashrc")
                    elif sftp is not None:
                        await sftp.readdir(BENCH_DIR)
                    else:
                        result = await conn.run(RAW_COMMANDS[endpoint], check=True)
                        assert result.stdout
                except (asyncssh.Error, OSError):
                    errors += 1
                    continue
                latencies.append(time.monotonic() - t0)

        t0 = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.monotonic() - t0
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "errors": errors,
        "requests": len(latencies),
    }


# wrk's own summary rounds percentiles and has no P95; this script prints exact numbers.
WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("FCBENCH %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.1f %.1f %.1f\\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def _api(stack: StackInfo, token: str, endpoint: str, clients: int, seconds: float) -> dict:
    url = stack.url + API_PATHS[endpoint].format(system=stack.system)
    threads = max(1, min(2, clients))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_REPORT)
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{clients}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        script.name,
        "-H",
        f"Authorization: Bearer {token}",
        url,
    ]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    line = next(x for x in out.splitlines() if x.startswith("FCBENCH "))
    requests, duration_us, status, connect, read, write, timeout, p50, p95, p99 = map(
        float, line.split()[1:]
    )
    socket_errors = {"connect": connect, "read": read, "write": write, "timeout": timeout}
    return {
        "rps": requests / (duration_us / 1e6),
        "p50_ms": p50 / 1000,
        "p95_ms": p95 / 1000,
        "p99_ms": p99 / 1000,
        # Any answer but 2xx/3xx (429 included: the stack's rate limits are set far above
        # what this benchmark sends) and any socket error or timeout.
        "errors": int(status + sum(socket_errors.values())),
        "non_2xx": int(status),
        "socket_errors": {k: int(v) for k, v in socket_errors.items() if v},
        "requests": int(requests),
    }


def _prepare(stack: StackInfo) -> None:
    """A directory of 20 entries for the ls measurements, owned by alice."""
    import os
    import pwd

    user = pwd.getpwnam("alice")
    os.makedirs(BENCH_DIR, exist_ok=True)
    os.chown(BENCH_DIR, user.pw_uid, user.pw_gid)
    for i in range(20):
        path = f"{BENCH_DIR}/file-{i:02d}.txt"
        with open(path, "w") as fh:
            fh.write("x" * i)
        os.chown(path, user.pw_uid, user.pw_gid)


def run(stack: StackInfo, endpoints: list[str], levels: list[int], seconds: float) -> list[dict]:
    try:
        _prepare(stack)
        token = stack.fetch_token("alice")
        rows = []
        for endpoint in endpoints:
            for clients in levels:
                # Warm, at the same concurrency: the server's pool opens the SSH connections
                # this load needs (a server in service has them), the login node fills its
                # caches. Each measurement still opens its own client connections.
                _api(stack, token, endpoint, clients, 2)
                row = {"endpoint": endpoint, "clients": clients}
                row["api"] = _api(stack, token, endpoint, clients, seconds)
                if endpoint in RAW_COMMANDS:
                    for mode in ("exec", "sftp"):
                        row[f"raw_{mode}"] = asyncio.run(
                            _raw(stack, clients, seconds, endpoint, mode)
                        )
                rows.append(row)
                print(_format_row(row), flush=True)
        return rows
    finally:
        shutil.rmtree(BENCH_DIR, ignore_errors=True)  # alice's home is not ours to fill


def _format_row(row: dict) -> str:
    a = row["api"]
    line = (
        f"{row['endpoint']:>8} {row['clients']:>7} | {a['rps']:7.0f} {a['p50_ms']:7.1f}"
        f" {a['p95_ms']:7.1f} {a['p99_ms']:7.1f} {a['errors']:>5}"
    )
    if "raw_exec" not in row:
        return line
    e, s = row["raw_exec"], row["raw_sftp"]
    return line + (
        f" | {e['rps']:7.0f} {e['p50_ms']:7.1f} {e['p99_ms']:7.1f}"
        f" | {s['rps']:7.0f} {s['p50_ms']:7.1f} {s['p99_ms']:7.1f}"
        f" | {_ratio(a['rps'], e['rps'])} {_ratio(a['p99_ms'], e['p99_ms'])}"
    )


def _ratio(ours: float, theirs: float) -> str:
    # On a loaded machine a tiny run can see no raw answer within its second at all.
    return f"{ours / theirs:5.2f}x" if theirs else "   n/a"


HEADER = (
    "endpoint clients | api req/s    p50ms   p95ms   p99ms  errs "
    "| raw exec req/s p50 p99 | raw sftp req/s p50 p99 | api/exec rps, p99\n" + "-" * 130
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", help="stack.json of a running stack (default: start one)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", default="1,10,100,500")
    parser.add_argument("--endpoints", default="stat,ls,systems")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--plot", help="also draw them into this PNG file (needs matplotlib)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is missing: run `dev/stack install`", file=sys.stderr)
        return 1
    levels = [int(c) for c in args.clients.split(",")]
    with running_stack(args.stack) as stack:
        print(f"API on {stack.url}, {args.seconds:.0f} s per measurement\n{HEADER}")
        rows = run(stack, args.endpoints.split(","), levels, args.seconds)
    ratios = [r["api"]["rps"] / r["raw_exec"]["rps"] for r in rows if "raw_exec" in r]
    summary = {
        "benchmark": "api",
        "seconds": args.seconds,
        "cpus": os.cpu_count(),
        "load_average": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "rows": rows,
        "errors": sum(r["api"]["errors"] for r in rows),
        "median_rps_ratio": statistics.median(ratios) if ratios else None,
    }
    print(f"api errors in total: {summary['errors']}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    if args.plot:
        from plots import api_figure

        api_figure(summary, Path(args.plot))
    return 0


if __name__ == "__main__":
    sys.exit(main())
