"""`dev/stack status DIR`: what `up` started in DIR, and whether each part still runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from .processes import StackError, load_processes


def cmd_status(args: argparse.Namespace) -> None:
    """One line per recorded part (name, PID, running or gone); an error when nothing is
    recorded or a part is gone, so that scripts can ask `dev/stack status DIR || ...`."""
    d = Path(args.dir).resolve()
    processes = load_processes(d)
    if not processes:
        raise StackError(f"nothing recorded in {d}/pids.json: no stack is up there")
    width = max(len(p.name) for p in processes)
    for process in processes:
        state = "running" if process.alive() else "gone"
        print(f"{process.name:<{width}}  {process.pid:>7}  {state}")
    gone = [p.name for p in processes if not p.alive()]
    if gone:
        raise StackError(f"not running: {', '.join(gone)}")
