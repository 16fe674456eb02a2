"""/compute/{system}/jobs: submit, list, inspect, attach to and cancel batch jobs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from ...models.compute import (
    AttachRequest,
    JobMetadataResponse,
    JobsResponse,
    SubmitRequest,
    SubmitResponse,
    TimeWindow,
)
from ...scheduler import jobs
from ...scheduler import slurm_jobs as slurm
from ..deps import RemoteDep, require_scheduler

router = APIRouter(
    prefix="/compute/{system_name}/jobs",
    tags=["compute"],
    dependencies=[Depends(require_scheduler)],
)

# Additive extensions of these endpoints, advertised in /status/systems.
CAPABILITIES = ["compute.jobs.ids"]

JobId = Annotated[str, Path(pattern=r"^[0-9]+(_[0-9]+)?$", description="Slurm job id")]


@router.post("", status_code=201, response_model=SubmitResponse)
async def submit_job(remote: RemoteDep, body: SubmitRequest) -> SubmitResponse:
    return SubmitResponse(job_id=await jobs.submit(remote, body.job))


@router.get("", response_model=JobsResponse)
async def list_jobs(
    remote: RemoteDep,
    allusers: bool = False,
    account: str | None = None,
    name: Annotated[str | None, Query(max_length=235)] = None,
    time_window: Annotated[TimeWindow, Query(alias="time_window")] = "24h",
    job_ids: Annotated[
        str | None,
        Query(
            description=(
                "Extension (capability `compute.jobs.ids`): only these jobs, comma separated, "
                f"at most {slurm.MAX_LISTED_JOB_IDS}, whenever they ran (`time_window` does "
                "not apply). A FirecREST server without the extension ignores it."
            ),
        ),
    ] = None,
) -> JobsResponse:
    if job_ids is not None:
        found = await jobs.jobs_by_id(
            remote,
            slurm.checked_job_ids(job_ids),
            all_users=allusers,
            account=account,
            name=name,
        )
    else:
        found = await jobs.list_jobs(
            remote, all_users=allusers, account=account, name=name, time_window=time_window
        )
    return JobsResponse(jobs=found)


@router.get("/{job_id}", response_model=JobsResponse)
async def get_job(remote: RemoteDep, job_id: JobId, allusers: bool = False) -> JobsResponse:
    return JobsResponse(jobs=await jobs.get_job(remote, job_id, allusers))


@router.get("/{job_id}/metadata", response_model=JobMetadataResponse)
async def get_job_metadata(remote: RemoteDep, job_id: JobId) -> JobMetadataResponse:
    return JobMetadataResponse(jobs=[await jobs.metadata(remote, job_id)])


@router.put("/{job_id}/attach", status_code=204)
async def attach_to_job(remote: RemoteDep, job_id: JobId, body: AttachRequest) -> Response:
    await jobs.attach(remote, job_id, body.command)
    return Response(status_code=204)


@router.delete("/{job_id}", status_code=204)
async def cancel_job(remote: RemoteDep, job_id: JobId) -> Response:
    await jobs.cancel(remote, job_id)
    return Response(status_code=204)
