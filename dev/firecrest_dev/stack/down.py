"""`dev/stack down DIR`: cancel leftover jobs, stop what `up` started, newest first."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import time
from pathlib import Path

from .processes import StackError, load_processes, log, require_root
from .slurm import cancel_leftover_jobs, kill_job_leftovers


def stop_stack(d: Path, *, cancel_jobs: bool = True, timeout: float = 20.0) -> None:
    processes = load_processes(d)
    if cancel_jobs:
        try:
            cancel_leftover_jobs(d, processes)
        except (StackError, subprocess.TimeoutExpired) as exc:
            log(f"could not cancel all jobs: {exc}")
    for process in reversed(
        processes
    ):  # dependants first: server before sshd, slurmdbd before mariadbd
        if not process.alive():
            continue
        os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while process.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.alive():
            os.kill(process.pid, signal.SIGKILL)
            log(f"SIGKILL {process.name} ({process.pid}) after {timeout:.0f} s")
        else:
            log(f"stopped {process.name} ({process.pid})")
    kill_job_leftovers(d)
    pid_file = d / "pids.json"
    if pid_file.exists():
        pid_file.rename(d / "pids.last.json")


def cmd_down(args: argparse.Namespace) -> None:
    require_root()
    d = Path(args.dir).resolve()
    if not (d / "pids.json").exists():
        log(f"nothing recorded in {d}; nothing to stop")
        return
    stop_stack(d)
    log("stack down")
