"""A poll of a user's jobs: the time-window listing vs. the listing by job id, side by side.

    .venv/bin/python benchmarks/job_listing.py [--stack DIR/stack.json] [--history 1000]
        [--tracked 100] [--repeat 5] [--json out.json]

A poller such as AiiDA's scheduler wants the state of the jobs it tracks. FirecREST's listing
(``GET /compute/{system}/jobs?time_window=1h``) answers with every job of the user in the window,
so a poll costs the scheduler's accounting (``sacct``, slurmdbd, MariaDB) and the API server the
user's whole recent history; the listing by id (``job_ids=...``, extension ``compute.jobs.ids``)
costs the jobs named. This makes sure alice has at least ``--history`` jobs in the last hour
(submitting trivial ones for the shortfall), then alternates the two requests ``--repeat``
times, naming ``--tracked`` of her latest jobs, and prints per request the wall time, the CPU
time of the API server, slurmdbd and MariaDB (from /proc; the ``sacct`` and ``squeue`` processes
under sshd are not counted), the answer's size, and the ratios window / by id. Without --stack
it starts a stack of its own and stops it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

from firecrest_dev.info import StackInfo
from firecrest_dev.running import running_stack

from proc_cpu import tree_cpu

SUBMIT_CONCURRENCY = 16


async def _ensure_history(http: httpx.AsyncClient, stack: StackInfo, jobs_url: str, n: int) -> int:
    listed = (await http.get(jobs_url, params={"time_window": "1h"})).json()["jobs"]
    missing = n - len(listed)
    if missing <= 0:
        return len(listed)
    limit = asyncio.Semaphore(SUBMIT_CONCURRENCY)
    job = {
        "script": "#!/bin/bash\ntrue\n",
        "workingDirectory": stack.users["alice"].home,
        # Nothing to keep: no slurm-N.out per job in alice's home.
        "standardOutput": "/dev/null",
        "standardError": "/dev/null",
    }

    async def submit(i: int) -> None:
        async with limit:
            answer = await http.post(jobs_url, json={"job": {**job, "name": f"history-{i}"}})
            answer.raise_for_status()

    print(f"submitting {missing} jobs so that alice has {n} in the last hour", flush=True)
    await asyncio.gather(*(submit(i) for i in range(missing)))
    return n


async def measure(stack: StackInfo, history: int, tracked: int, repeat: int) -> dict:
    jobs_url = f"{stack.url}/compute/{stack.system}/jobs"
    watched = [stack.pids[name] for name in ("server", "slurmdbd", "mariadbd")]

    def cpu_seconds() -> float:
        return sum(sum(tree_cpu(pid).values()) for pid in watched)

    headers = {"Authorization": f"Bearer {stack.fetch_token('alice')}"}
    async with httpx.AsyncClient(headers=headers, timeout=300) as http:
        in_window = await _ensure_history(http, stack, jobs_url, history)
        listed = (await http.get(jobs_url, params={"time_window": "1h"})).json()["jobs"]
        named = [job["jobId"] for job in listed][-tracked:]
        ways = {
            "window": {"time_window": "1h"},
            "by_id": {"time_window": "1h", "job_ids": ",".join(named)},
        }
        samples: dict[str, list[dict]] = {way: [] for way in ways}
        for _ in range(repeat):
            for way, params in ways.items():
                cpu0, t0 = cpu_seconds(), time.perf_counter()
                answer = await http.get(jobs_url, params=params)
                wall = time.perf_counter() - t0
                answer.raise_for_status()
                samples[way].append(
                    {
                        "wall_ms": wall * 1000,
                        "cpu_ms": (cpu_seconds() - cpu0) * 1000,
                        "bytes": len(answer.content),
                        "jobs": len(answer.json()["jobs"]),
                    }
                )
    summary = {
        way: {key: statistics.median(s[key] for s in runs) for key in runs[0]}
        for way, runs in samples.items()
    }
    return {
        "benchmark": "job_listing",
        "jobs_in_window": in_window,
        "tracked": len(named),
        "repeat": repeat,
        "median": summary,
        "samples": samples,
        "ratios": {
            key: summary["window"][key] / max(summary["by_id"][key], 1e-9)
            for key in ("wall_ms", "cpu_ms", "bytes")
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stack", help="stack.json of a running stack (default: start one)")
    parser.add_argument("--history", type=int, default=1000, help="alice's jobs in the hour")
    parser.add_argument("--tracked", type=int, default=100, help="jobs named by the poll")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    with running_stack(args.stack) as stack:
        result = asyncio.run(measure(stack, args.history, args.tracked, args.repeat))
    print(
        f"alice's jobs in the last hour: {result['jobs_in_window']}; the poll names "
        f"{result['tracked']}; median of {result['repeat']}\n"
        f"{'listing':10s} {'jobs':>6s} {'wall ms':>9s} {'CPU ms':>8s} {'bytes':>10s}"
    )
    for way, row in result["median"].items():
        print(
            f"{way:10s} {row['jobs']:6.0f} {row['wall_ms']:9.1f} {row['cpu_ms']:8.1f} "
            f"{row['bytes']:10.0f}"
        )
    ratios = result["ratios"]
    print(
        f"window / by id: wall {ratios['wall_ms']:.1f}x, CPU (API server, slurmdbd, MariaDB) "
        f"{ratios['cpu_ms']:.1f}x, bytes {ratios['bytes']:.1f}x"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
