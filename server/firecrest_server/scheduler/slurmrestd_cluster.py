"""slurmrestd's nodes, partitions and reservations (v0.0.38) as the API's shapes. Pure.

The same values ``slurm_cluster.py`` parses from sinfo and scontrol in the SSH mode.
"""

from __future__ import annotations

import time
from typing import Any

from ..models.compute import Node, Partition, Reservation


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _items(body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = body.get(key)
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def nodes(body: dict[str, Any]) -> list[Node]:
    found = []
    for raw in _items(body, "nodes"):
        if not raw.get("name"):
            continue
        # sinfo %T prints "idle+drain"; here the base state and its flags come apart.
        flags = [str(f).upper() for f in raw.get("state_flags") or []]
        load = _int(raw.get("cpu_load"))  # hundredths, as sinfo's %O prints them divided
        found.append(
            Node(
                sockets=_int(raw.get("sockets")),
                cores=_int(raw.get("cores")),
                threads=_int(raw.get("threads")),
                cpus=_int(raw.get("cpus")) or 0,
                cpu_load=load / 100 if load is not None else None,
                free_memory=_int(raw.get("free_memory")),
                features=[f for f in str(raw.get("features") or "").split(",") if f],
                name=str(raw["name"]),
                address=raw.get("address"),
                hostname=raw.get("hostname"),
                state=[str(raw.get("state") or "unknown").upper(), *flags],
                partitions=[str(p) for p in raw.get("partitions") or []],
                weight=_int(raw.get("weight")),
                alloc_memory=None,  # sinfo's format has none either
                alloc_cpus=_int(raw.get("alloc_cpus")),
                idle_cpus=_int(raw.get("idle_cpus")),
            )
        )
    return found


def partitions(body: dict[str, Any], show_hidden: bool = False) -> list[Partition]:
    found = []
    for raw in _items(body, "partitions"):
        if not raw.get("name"):
            continue
        if "hidden" in [str(f).lower() for f in raw.get("flags") or []] and not show_hidden:
            continue
        found.append(
            Partition(
                name=str(raw["name"]),
                cpus=_int(raw.get("total_cpus")),
                total_nodes=_int(raw.get("total_nodes")),
                partition=str(raw.get("state") or "UNKNOWN"),
            )
        )
    return found


def reservations(body: dict[str, Any], now: float | None = None) -> list[Reservation]:
    now = time.time() if now is None else now
    found = []
    for raw in _items(body, "reservations"):
        if not raw.get("name"):
            continue
        start, end = _int(raw.get("start_time")) or 0, _int(raw.get("end_time")) or 0
        features = raw.get("features") or None
        found.append(
            Reservation(
                name=str(raw["name"]),
                node_list=str(raw.get("node_list") or ""),
                start_time=start,
                end_time=end,
                features=features if features != "(null)" else None,
                state="active" if start <= now < end else "inactive",
            )
        )
    return found
