"""/status/{system}/nodes, /partitions, /reservations: what the scheduler reports."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ...models.compute import NodesResponse, PartitionsResponse, ReservationsResponse
from ...scheduler import cluster
from ..deps import RemoteDep

router = APIRouter(prefix="/status/{system_name}", tags=["status"])


@router.get("/nodes", response_model=NodesResponse)
async def get_nodes(remote: RemoteDep) -> NodesResponse:
    return NodesResponse(nodes=await cluster.nodes(remote))


@router.get("/partitions", response_model=PartitionsResponse)
async def get_partitions(
    remote: RemoteDep, show_hidden: Annotated[bool, Query(alias="show_hidden")] = False
) -> PartitionsResponse:
    return PartitionsResponse(partitions=await cluster.partitions(remote, show_hidden))


@router.get("/reservations", response_model=ReservationsResponse)
async def get_reservations(remote: RemoteDep) -> ReservationsResponse:
    return ReservationsResponse(reservations=await cluster.reservations(remote))
