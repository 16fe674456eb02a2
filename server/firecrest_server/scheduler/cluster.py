"""Cluster status operations: nodes, partitions, reservations, as the calling user."""

from __future__ import annotations

from ..models.compute import Node, Partition, Reservation
from ..remote import Remote
from . import slurm_cluster as slurm
from .slurm_jobs import TIME_ENV


async def _output(remote: Remote, argv: list[str]) -> str:
    result = await remote.run(argv, env=TIME_ENV, timeout=remote.system.scheduler.command_timeout)
    return result.stdout_text


async def nodes(remote: Remote) -> list[Node]:
    return slurm.parse_nodes(await _output(remote, slurm.SINFO_ARGV))


async def partitions(remote: Remote, show_hidden: bool = False) -> list[Partition]:
    return slurm.parse_partitions(await _output(remote, slurm.PARTITIONS_ARGV), show_hidden)


async def reservations(remote: Remote) -> list[Reservation]:
    return slurm.parse_reservations(await _output(remote, slurm.RESERVATIONS_ARGV))
