"""Slurm over SSH vs. over slurmrestd (scheduler.connection_mode), side by side in one run.

    .venv/bin/python benchmarks/scheduler_modes.py [--stack DIR/stack.json] [--count 30]
        [--rounds 3]

Two one-worker servers of our own on the same stack, one per mode, are asked the same things
as alice, round by round (the order of the modes alternates): submit ``--count`` jobs one after
another, poll each by id, list the user's jobs (24 h), list the submitted ones by ids, and
cancel ``--count`` sleeping jobs. Printed per mode: the median latency of each operation and the
server's mean CPU per operation (from /proc, which depends less on the machine's load), then the
ratios rest / ssh (>1: rest slower or costlier); below, the mean CPU per operation of the Slurm
daemons (slurmctld, slurmdbd, slurmrestd, and MariaDB under slurmdbd) and of the login node (the
stack's sshd with every process under it: the Slurm commands the ssh mode spawns), sampled
around each call: a daemon's background work lands in whichever call it coincides with. The
stack's slurmrestd must be running (it is, with any `dev/stack up`). This machine is shared:
compare the ratios of the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from firecrest_dev.info import StackInfo
from firecrest_dev.own_server import own_server
from firecrest_dev.running import running_stack

from proc_cpu import process_cpu, tree_cpu

OPERATIONS = ("submit", "poll", "list", "list_ids", "cancel")
# The stack's parts whose CPU an operation may cost besides the API server's, by stack.json name.
DAEMONS = ("slurmctld", "slurmdbd", "slurmrestd", "mariadbd")
PARTIES = (*DAEMONS, "login")
# The jobs run in alice's home: without these each would leave a slurm-N.out there.
NO_OUTPUT_FILES = {"standardOutput": "/dev/null", "standardError": "/dev/null"}


def _mode(stack: StackInfo, mode: str) -> dict:
    if mode == "ssh":
        return {"scheduler": {"connection_mode": "ssh"}}
    return {
        "scheduler": {
            "connection_mode": "rest",
            "api_url": stack.slurmrestd_url,
            "api_version": stack.slurmrestd_api_version,
        }
    }


def _cpu(pid: int) -> float:
    """CPU seconds of the one-worker server, which serves in this very process."""
    return process_cpu(pid)


class Parties:
    """CPU seconds so far of the Slurm daemons and of the login node's sshd tree."""

    def __init__(self, stack: StackInfo) -> None:
        self.daemons = {name: stack.pids[name] for name in DAEMONS if name in stack.pids}
        self.sshd = stack.pids["sshd"]

    def sample(self) -> dict[str, float]:
        cpu = {name: 0.0 for name in PARTIES}
        for name, pid in self.daemons.items():
            with contextlib.suppress(OSError):
                cpu[name] = process_cpu(pid, reaped_children=True)
        cpu["login"] = sum(tree_cpu(self.sshd).values())
        return cpu


def _timed(samples: dict, name: str, pid: int, call, parties: Parties):
    before, cpu0, t0 = parties.sample(), _cpu(pid), time.perf_counter()
    response = call()
    samples[name]["wall"].append(time.perf_counter() - t0)
    samples[name]["cpu"].append(_cpu(pid) - cpu0)
    after = parties.sample()
    for party in PARTIES:
        samples[name][party].append(after[party] - before[party])
    response.raise_for_status()
    return response


def _round(
    client: httpx.Client, pid: int, workdir: str, count: int, samples: dict, parties: Parties
) -> None:
    ids = []
    for i in range(count):
        body = {
            "job": {
                "workingDirectory": workdir,
                "name": f"bench-{i}",
                "script": "#!/bin/bash\ntrue\n",
                **NO_OUTPUT_FILES,
            }
        }
        ids.append(
            _timed(
                samples, "submit", pid, lambda b=body: client.post("/jobs", json=b), parties
            ).json()["jobId"]
        )
    for job_id in ids:
        _timed(samples, "poll", pid, lambda j=job_id: client.get(f"/jobs/{j}"), parties)
    for _ in range(3):
        _timed(samples, "list", pid, lambda: client.get("/jobs"), parties)
        _timed(
            samples,
            "list_ids",
            pid,
            lambda: client.get("/jobs", params={"job_ids": ",".join(ids)}),
            parties,
        )
    sleepers = []
    for _ in range(count):
        body = {
            "job": {
                "workingDirectory": workdir,
                "script": "#!/bin/bash\nsleep 300\n",
                **NO_OUTPUT_FILES,
            }
        }
        sleepers.append(client.post("/jobs", json=body).json()["jobId"])
    for job_id in sleepers:
        _timed(samples, "cancel", pid, lambda j=job_id: client.delete(f"/jobs/{j}"), parties)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stack", default=None, help="DIR/stack.json of a running stack")
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    modes = ("ssh", "rest")
    samples = {
        m: {op: {k: [] for k in ("wall", "cpu", *PARTIES)} for op in OPERATIONS} for m in modes
    }
    with running_stack(args.stack) as stack, contextlib.ExitStack() as stop:
        token = stack.fetch_token("alice")
        parties = Parties(stack)
        workdir = stack.users["alice"].home
        servers = {
            mode: stop.enter_context(
                own_server(
                    stack,
                    Path(stop.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-{mode}-"))),
                    system_overrides=_mode(stack, mode),
                )
            )
            for mode in modes
        }
        for round_no in range(args.rounds):
            order = modes if round_no % 2 == 0 else modes[::-1]
            for mode in order:
                with httpx.Client(
                    base_url=f"{servers[mode].url}/compute/{stack.system}",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=120,
                ) as client:
                    _round(client, servers[mode].pid, workdir, args.count, samples[mode], parties)
    print(f"{args.rounds} rounds x {args.count} jobs per mode; wall: median, CPU: mean")
    header = ("operation", "ssh ms", "rest ms", "ratio", "ssh cpu ms", "rest cpu ms", "ratio")
    print("{:10} {:>8} {:>8} {:>6} {:>10} {:>11} {:>6}".format(*header))
    for op in OPERATIONS:
        wall = {m: statistics.median(samples[m][op]["wall"]) * 1000 for m in modes}
        # Mean, not median: /proc counts CPU in 10 ms ticks.
        cpu = {m: statistics.fmean(samples[m][op]["cpu"]) * 1000 for m in modes}
        print(
            f"{op:10} {wall['ssh']:8.1f} {wall['rest']:8.1f} {wall['rest'] / wall['ssh']:6.2f} "
            f"{cpu['ssh']:10.1f} {cpu['rest']:11.1f} {cpu['rest'] / max(cpu['ssh'], 1e-9):6.2f}"
        )
    print("\nCPU ms per operation, mean, of the Slurm daemons and the login node (ssh / rest)")
    print("{:10}".format("operation") + "".join(f" {p:>17}" for p in PARTIES))
    for op in OPERATIONS:
        cells = []
        for party in PARTIES:
            ssh, rest = (statistics.fmean(samples[m][op][party]) * 1000 for m in modes)
            cells.append(f" {ssh:8.1f}/{rest:<8.1f}")
        print(f"{op:10}" + "".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
