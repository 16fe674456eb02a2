"""CPU time of processes from /proc, for the benchmarks' per-party accounting."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    # After the ")" that ends the command name: field 3 (state) is index 0.
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def process_cpu(pid: int, reaped_children: bool = False) -> float:
    """User + system CPU seconds of a process (and of its children it has waited for)."""
    fields = _stat_fields(pid)
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLOCK_TICKS


def tree_cpu(root: int) -> dict[int, float]:
    """CPU seconds of ``root`` and all its descendants, by pid."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                children.setdefault(int(_stat_fields(int(entry.name))[1]), []).append(
                    int(entry.name)
                )
    result, todo = {}, [root]
    while todo:
        pid = todo.pop()
        with contextlib.suppress(OSError, IndexError):
            result[pid] = process_cpu(pid, reaped_children=True)
        todo.extend(children.get(pid, []))
    return result
