"""ops/stat through the API vs. the same answer straight over SSH, measured side by side.

    .venv/bin/python benchmarks/ops_stat.py [--stack DIR/stack.json] [--seconds 10]
                                            [--clients 1,10,100] [--json out.json]

For each concurrency level it measures, in one run on the same stack:

- **api**: `GET /filesystem/{system}/ops/stat` with `wrk` (a C load generator, so the client
  is not the bottleneck), each connection its own client;
- **raw exec**: `stat -c ...` over ONE already-open asyncssh connection, that many channels at
  once (a process spawned per request, FirecREST v2's way);
- **raw sftp**: an SFTP stat over the same connection (no process; the physical floor).

and prints requests/s with P50/P99 latency, plus the ratio api / raw exec. Without --stack it
starts a stack of its own and stops it afterwards. This machine is shared: absolute numbers
drift, the ratios measured in the same run are what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import asyncssh

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.stack import StackInfo, new_stack_dir, stack_down, stack_up

STAT_ARGV = "stat -c '%f %i %d %h %u %g %s %X %Y %Z' -- /home/alice/.bashrc"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _raw(stack: StackInfo, clients: int, seconds: float, mode: str) -> dict:
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
    ) as conn:
        sftp = await conn.start_sftp_client() if mode == "sftp" else None
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                t0 = time.monotonic()
                try:
                    if sftp is not None:
                        await sftp.stat("/home/alice/.bashrc")
                    else:
                        result = await conn.run(STAT_ARGV, check=True)
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
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "errors": errors,
        "requests": len(latencies),
    }


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _api(stack: StackInfo, token: str, clients: int, seconds: float) -> dict:
    url = f"{stack.url}/filesystem/{stack.system}/ops/stat?path=/home/alice/.bashrc"
    threads = max(1, min(2, clients))
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{clients}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-H",
        f"Authorization: Bearer {token}",
        url,
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50_ms": p50,
        "p99_ms": p99,
        "errors": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def run(stack: StackInfo, levels: list[int], seconds: float) -> list[dict]:
    token = stack.fetch_token("alice")
    rows = []
    for clients in levels:
        # warm the server's pooled connection and the login node's caches
        _api(stack, token, min(clients, 4), 1)
        api = _api(stack, token, clients, seconds)
        raw_exec = asyncio.run(_raw(stack, clients, seconds, "exec"))
        raw_sftp = asyncio.run(_raw(stack, clients, seconds, "sftp"))
        rows.append({"clients": clients, "api": api, "raw_exec": raw_exec, "raw_sftp": raw_sftp})
        print(_format_row(rows[-1]), flush=True)
    return rows


def _format_row(row: dict) -> str:
    a, e, s = row["api"], row["raw_exec"], row["raw_sftp"]
    return (
        f"{row['clients']:>7} | {a['rps']:8.0f} {a['p50_ms']:7.1f} {a['p99_ms']:7.1f}"
        f" {a['errors']:>4}"
        f" | {e['rps']:8.0f} {e['p50_ms']:7.1f} {e['p99_ms']:7.1f}"
        f" | {s['rps']:8.0f} {s['p50_ms']:7.1f} {s['p99_ms']:7.1f}"
        f" | {a['rps'] / e['rps']:6.2f}x {a['p99_ms'] / e['p99_ms']:6.2f}x"
    )


HEADER = (
    "clients |      api req/s  p50ms  p99ms  err | raw exec req/s p50 p99  "
    "| raw sftp req/s p50 p99 | api/exec rps, p99\n" + "-" * 118
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", help="stack.json of a running stack (default: start one)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", default="1,10,100")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is missing: run `dev/stack install`", file=sys.stderr)
        return 1
    levels = [int(c) for c in args.clients.split(",")]
    directory = None
    if args.stack:
        stack = StackInfo.load(Path(args.stack))
    else:
        directory = new_stack_dir()
        stack, _ = stack_up(directory)
    try:
        print(f"ops/stat on {stack.url}, {args.seconds:.0f} s per measurement\n{HEADER}")
        rows = run(stack, levels, args.seconds)
    finally:
        if directory is not None:
            stack_down(directory)
            shutil.rmtree(directory, ignore_errors=True)
    summary = {
        "benchmark": "ops_stat",
        "seconds": args.seconds,
        "rows": rows,
        "median_rps_ratio": statistics.median(r["api"]["rps"] / r["raw_exec"]["rps"] for r in rows),
    }
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
