"""Slurm cluster status over SSH: nodes (sinfo), partitions and reservations (scontrol), ping.

Pure argv builders and parsers; the operations that run them are in ``cluster.py``.
"""

from __future__ import annotations

import re
import time

from ..models.compute import Node, Partition, Reservation

SINFO_ARGV = [
    "sinfo",
    "--all",
    "--Node",
    "--noheader",
    # sockets:cores:threads | cpus | load | free mem | features | name | addr | hostname | state
    # | partition | weight | version | memory | cpus alloc/idle/other/total
    "--format=%z|%c|%O|%e|%f|%N|%o|%n|%T|%R|%w|%v|%m|%C",
]
PARTITIONS_ARGV = ["scontrol", "--all", "show", "--oneliner", "partitions"]
RESERVATIONS_ARGV = ["scontrol", "--all", "show", "--oneliner", "reservations"]
PING_ARGV = ["scontrol", "ping"]

# Slurm appends flags to node states (* not responding, ~ powered off, # powering up, % powering
# down, $ maintenance, @ reboot pending, + more states, ! pending power down, - planned).
_STATE_FLAGS = "*~#%$@+!^-"


def _int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def _float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def parse_nodes(stdout: str) -> list[Node]:
    """One Node per node; a node in several partitions appears once with all of them."""
    nodes: dict[str, Node] = {}
    for line in stdout.splitlines():
        fields = line.split("|")
        if len(fields) != 14:
            continue
        name = fields[5]
        if name in nodes:
            partitions = nodes[name].partitions or []
            if fields[9] not in partitions:
                partitions.append(fields[9])
            continue
        sockets, cores, threads = ([*fields[0].split(":"), "", "", ""])[:3]
        alloc, idle, _other, _total = ([*fields[13].split("/"), "", "", "", ""])[:4]
        states = [
            s.strip(_STATE_FLAGS).upper() for s in fields[8].split("+") if s.strip(_STATE_FLAGS)
        ]
        nodes[name] = Node(
            sockets=_int(sockets),
            cores=_int(cores),
            threads=_int(threads),
            cpus=_int(fields[1]) or 0,
            cpu_load=_float(fields[2]),
            free_memory=_int(fields[3]),
            features=[f for f in fields[4].split(",") if f and f != "(null)"],
            name=name,
            address=fields[6],
            hostname=fields[7],
            state=states or ["UNKNOWN"],
            partitions=[fields[9]],
            weight=_int(fields[10]),
            alloc_memory=None,
            alloc_cpus=_int(alloc),
            idle_cpus=_int(idle),
        )
    return list(nodes.values())


def parse_key_values(line: str) -> dict[str, str]:
    """``Key=Value Key=Value`` from ``scontrol --oneliner``; values may not contain spaces here."""
    return {m[1]: m[2] for m in re.finditer(r"(\S+?)=(\S*)", line)}


def parse_partitions(stdout: str, show_hidden: bool = False) -> list[Partition]:
    partitions = []
    for line in stdout.splitlines():
        fields = parse_key_values(line)
        if "PartitionName" not in fields:
            continue
        if fields.get("Hidden") == "YES" and not show_hidden:
            continue
        partitions.append(
            Partition(
                name=fields["PartitionName"],
                cpus=_int(fields.get("TotalCPUs", "")),
                total_nodes=_int(fields.get("TotalNodes", "")),
                partition=fields.get("State", "UNKNOWN"),
            )
        )
    return partitions


def _epoch(value: str) -> int:
    if value.isdigit():
        return int(value)
    try:
        return int(time.mktime(time.strptime(value, "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return 0


def parse_reservations(stdout: str, now: float | None = None) -> list[Reservation]:
    now = time.time() if now is None else now
    reservations = []
    for line in stdout.splitlines():
        fields = parse_key_values(line)
        if "ReservationName" not in fields:
            continue
        start, end = _epoch(fields.get("StartTime", "")), _epoch(fields.get("EndTime", ""))
        state = fields.get("State") or ("ACTIVE" if start <= now < end else "INACTIVE")
        reservations.append(
            Reservation(
                name=fields["ReservationName"],
                node_list=fields.get("Nodes", ""),
                start_time=start,
                end_time=end,
                features=fields.get("Features") if fields.get("Features") != "(null)" else None,
                state=state.lower(),
            )
        )
    return reservations


def ping_healthy(exit_status: int, output: str) -> bool:
    """Whether ``scontrol ping`` (its exit status, stdout and stderr) says the controllers
    answer: it exited 0 and named none DOWN. Output it does not recognise is not an outage:
    a false "down" would turn every user's compute request away with a 503."""
    return exit_status == 0 and "DOWN" not in output
