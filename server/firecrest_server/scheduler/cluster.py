"""Cluster status operations: nodes, partitions, reservations, as the calling user: sinfo and
scontrol over SSH, or slurmrestd with the caller's token (scheduler.connection_mode rest)."""

from __future__ import annotations

from typing import Any

from ..cluster import Remote
from ..errors import ServiceUnavailable
from ..models.compute import Node, Partition, Reservation
from ..ssh.credentials import bearer_token
from . import slurm_cluster as slurm
from . import slurmrestd_cluster as restjson
from .slurm_jobs import TIME_ENV


async def _output(remote: Remote, argv: list[str]) -> str:
    result = await remote.run(argv, env=TIME_ENV, timeout=remote.system.scheduler.command_timeout)
    return result.stdout_text


async def _rest(remote: Remote, what: str) -> dict[str, Any]:
    client = remote.slurmrestd
    if client is None:
        raise RuntimeError("the system's scheduler is not in rest mode")
    answer = await client.request(
        "GET",
        client.slurm(what),
        username=remote.username,
        token=bearer_token(remote.runner.bearer_token),
    )
    if answer.errors or answer.status != 200:
        raise ServiceUnavailable(f"The scheduler did not answer: {answer.error_text()}")
    return answer.body


async def nodes(remote: Remote) -> list[Node]:
    if remote.slurmrestd is not None:
        return restjson.nodes(await _rest(remote, "nodes"))
    return slurm.parse_nodes(await _output(remote, slurm.SINFO_ARGV))


async def partitions(remote: Remote, show_hidden: bool = False) -> list[Partition]:
    if remote.slurmrestd is not None:
        return restjson.partitions(await _rest(remote, "partitions"), show_hidden)
    return slurm.parse_partitions(await _output(remote, slurm.PARTITIONS_ARGV), show_hidden)


async def reservations(remote: Remote) -> list[Reservation]:
    if remote.slurmrestd is not None:
        return restjson.reservations(await _rest(remote, "reservations"))
    return slurm.parse_reservations(await _output(remote, slurm.RESERVATIONS_ARGV))
