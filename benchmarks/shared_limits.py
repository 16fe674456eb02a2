"""What shared per-user limits cost: the per-worker limiter vs. the Redis one, side by side.

    .venv/bin/python benchmarks/shared_limits.py [--stack DIR/stack.json] [--seconds 5]
        [--admissions 5000] [--clients 4] [--json out.json]

Two measurements, each alternating the two ways in rounds (this machine is shared and noisy;
compare the ratios):

- **limiter**: admitting and releasing one request in this process, with ``RateLimiter``
  (a dict and some arithmetic) and with ``SharedRateLimiter`` on a loopback ``redis-server``
  (one EVALSHA to admit; releases batched by a background task), one at a time and 32 at
  once: wall time, and the CPU time of this process and of redis-server per request (CPU
  holds up under load);
- **http**: ``GET /status/systems`` (auth, limiter, no SSH) with ``wrk`` (``--clients``
  connections, default 4) against two one-worker servers on the stack that differ only in
  ``state.redis_url``.

Without --stack only the limiter part runs. A redis-server of its own is started on a free port
(nothing saved) and stopped at the end.
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

from redis.asyncio import Redis

from firecrest_dev.redis_process import RedisProcess
from firecrest_server.config import RateLimit, StateConfig
from firecrest_server.ratelimit import RateLimiter
from firecrest_server.state.limiter import SharedRateLimiter
from firecrest_server.state.redis_client import open_redis

# Far above what is sent: every request is admitted, so only the bookkeeping is measured.
HIGH = RateLimit(requests_per_second=1e9, burst=10**9, max_concurrent_requests=10**6)
ROUNDS = 3


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _admissions(limiter, count: int, at_once: int, redis_pid: int) -> dict:
    """Per admitted-and-released request: wall time, this process's CPU, redis-server's CPU
    (microseconds). CPU times hold up on a loaded machine where wall times do not."""

    async def one(i: int) -> None:
        async with limiter.admitted(f"user{i % 50}"):
            pass

    wall, cpu, server_cpu = time.perf_counter(), time.process_time(), _cpu_seconds(redis_pid)
    for start in range(0, count, at_once):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + at_once))))
    return {
        "wall_us": (time.perf_counter() - wall) / count * 1e6,
        "cpu_us": (time.process_time() - cpu) / count * 1e6,
        "redis_cpu_us": (_cpu_seconds(redis_pid) - server_cpu) / count * 1e6,
    }


def _median(rows: list[dict]) -> dict:
    return {key: statistics.median(row[key] for row in rows) for key in rows[0]}


async def measure_limiters(redis_url: str, redis_pid: int, count: int) -> dict:
    state = StateConfig(redis_url=redis_url)
    redis: Redis = open_redis(state)
    local = RateLimiter(HIGH)
    shared = SharedRateLimiter(redis, HIGH, state, fallback=RateLimiter(HIGH))
    results: dict = {}
    try:
        await _admissions(shared, 200, 1, redis_pid)  # scripts loaded, connections open
        for at_once in (1, 32):
            rows: dict[str, list[dict]] = {"local": [], "redis": []}
            for _ in range(ROUNDS):
                rows["local"].append(await _admissions(local, count, at_once, redis_pid))
                rows["redis"].append(await _admissions(shared, count, at_once, redis_pid))
            assert shared.shared, "Redis failed during the measurement"
            results[f"at_once_{at_once}"] = {way: _median(r) for way, r in rows.items()}
    finally:
        await redis.aclose()
    return results


WRK_REPORT = """
done = function(summary, latency, requests)
  io.write(string.format("FCBENCH %d %d %d %.1f\\n", summary.requests, summary.duration,
    summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.timeout, latency:percentile(50)))
end
"""


def _wrk(url: str, token: str, seconds: float, clients: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_REPORT)
        script.flush()
        out = subprocess.run(
            ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "-s", script.name,
             "-H", f"Authorization: Bearer {token}", f"{url}/status/systems"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    line = next(x for x in out.splitlines() if x.startswith("FCBENCH "))
    requests, duration_us, errors, p50_us = line.split()[1:]
    return {
        "rps": int(requests) / (int(duration_us) / 1e6),
        "p50_ms": float(p50_us) / 1000,
        "errors": int(errors),
    }


def measure_http(stack_json: str, redis_url: str, seconds: float, clients: int, work: Path) -> dict:
    from firecrest_dev.info import StackInfo
    from firecrest_dev.own_server import own_server

    stack = StackInfo.load(Path(stack_json))
    token = stack.fetch_token("alice")
    limits = {"rate_limit": HIGH.model_dump()}
    (work / "local").mkdir()
    (work / "redis").mkdir()
    with (
        own_server(stack, work / "local", overrides=limits | {"state": {"redis_url": None}}) as a,
        own_server(
            stack, work / "redis", overrides=limits | {"state": {"redis_url": redis_url}}
        ) as b,
    ):
        rows: dict[str, list[dict]] = {"local": [], "redis": []}
        for url in (a, b):
            _wrk(url, token, 1, 4)  # warm
        for _ in range(ROUNDS):
            rows["local"].append(_wrk(a, token, seconds, clients))
            rows["redis"].append(_wrk(b, token, seconds, clients))
    return {
        way: {
            "rps": statistics.median(r["rps"] for r in measured),
            "p50_ms": statistics.median(r["p50_ms"] for r in measured),
            "errors": sum(r["errors"] for r in measured),
        }
        for way, measured in rows.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", help="stack.json of a running stack (for the http part)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--admissions", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=4, help="wrk connections (http part)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fc-shared-limits-"))
    redis = RedisProcess(work)
    redis.start()
    try:
        summary: dict = {"benchmark": "shared_limits"}
        assert redis.pid is not None
        summary["limiter"] = asyncio.run(measure_limiters(redis.url, redis.pid, args.admissions))
        print("limiter, per request (us):  wall   this process CPU   redis-server CPU")
        for name, row in summary["limiter"].items():
            for way in ("local", "redis"):
                m = row[way]
                print(
                    f"  {name:>11} {way:>5}: {m['wall_us']:8.1f} {m['cpu_us']:12.1f}"
                    f" {m['redis_cpu_us']:16.1f}"
                )
        if args.stack:
            if not shutil.which("wrk"):
                print("wrk is missing: run `dev/stack install`", file=sys.stderr)
                return 2
            summary["http"] = http = measure_http(
                args.stack, redis.url, args.seconds, args.clients, work
            )
            for way, row in http.items():
                print(
                    f"http status/systems, {args.clients} connections, {way:>5}: "
                    f"{row['rps']:7.0f} req/s, "
                    f"p50 {row['p50_ms']:.2f} ms, {row['errors']} errors"
                )
            print(f"http req/s redis/local: {http['redis']['rps'] / http['local']['rps']:.2f}")
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2))
    finally:
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
