"""/filesystem/{system}/transfer: file operations run as scheduler jobs (FirecREST v2)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from ...cluster import checked_path
from ...errors import BadRequest
from ...filesystem import transfer_jobs
from ...models.transfer import (
    StagedTransferResponse,
    TransferCompressRequest,
    TransferCopyRequest,
    TransferDownloadRequest,
    TransferExtractRequest,
    TransferJobResponse,
    TransferMoveRequest,
    TransferUploadRequest,
)
from ...runtime import Runtime
from ...staging import s3
from ..deps import PrincipalDep, RemoteDep, RuntimeDep, require_scheduler

# Every transfer endpoint submits a job: none can work while the scheduler is down.
router = APIRouter(
    prefix="/filesystem/{system_name}/transfer",
    tags=["filesystem"],
    dependencies=[Depends(require_scheduler)],
)


@router.post("/cp", status_code=201, response_model=TransferJobResponse)
async def cp(remote: RemoteDep, body: TransferCopyRequest) -> TransferJobResponse:
    source = checked_path(remote.system, body.source_path, "sourcePath")
    target = checked_path(remote.system, body.target_path, "targetPath")
    job = await transfer_jobs.copy(remote, source, target, body.dereference, body.account)
    return TransferJobResponse(transfer_job=job)


@router.post("/mv", status_code=201, response_model=TransferJobResponse)
async def mv(remote: RemoteDep, body: TransferMoveRequest) -> TransferJobResponse:
    source = checked_path(remote.system, body.source_path, "sourcePath")
    target = checked_path(remote.system, body.target_path, "targetPath")
    job = await transfer_jobs.move(remote, source, target, body.account)
    return TransferJobResponse(transfer_job=job)


@router.delete("/rm", status_code=200, response_model=TransferJobResponse)
async def rm(
    remote: RemoteDep,
    path: Annotated[str, Query()],
    account: Annotated[str | None, Query()] = None,
) -> TransferJobResponse:
    job = await transfer_jobs.remove(remote, checked_path(remote.system, path), account)
    return TransferJobResponse(transfer_job=job)


@router.post("/compress", status_code=201, response_model=TransferJobResponse)
async def compress(remote: RemoteDep, body: TransferCompressRequest) -> TransferJobResponse:
    source = checked_path(remote.system, body.path, "sourcePath")
    target = checked_path(remote.system, body.target_path, "targetPath")
    job = await transfer_jobs.compress(
        remote,
        source,
        target,
        compression=body.compression,
        dereference=body.dereference,
        match_pattern=body.match_pattern,
        account=body.account,
    )
    return TransferJobResponse(transfer_job=job)


@router.post("/extract", status_code=201, response_model=TransferJobResponse)
async def extract(remote: RemoteDep, body: TransferExtractRequest) -> TransferJobResponse:
    source = checked_path(remote.system, body.path, "sourcePath")
    target = checked_path(remote.system, body.target_path, "targetPath")
    job = await transfer_jobs.extract(remote, source, target, body.compression, body.account)
    return TransferJobResponse(transfer_job=job)


def _public_url(runtime: Runtime, request: Request) -> str:
    # Without public_url: the URL this request came in on (its Host header, the connection's
    # scheme; forwarded headers only from trusted proxies, which require public_url).
    return runtime.settings.server.public_url or str(request.base_url)


def _require_s3(method: str) -> None:
    if method != "s3":
        raise BadRequest(f"transfer method {method!r} is not supported here; use 's3'")


@router.post("/upload", status_code=201, response_model=StagedTransferResponse)
async def upload(
    remote: RemoteDep,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    request: Request,
    body: TransferUploadRequest,
) -> StagedTransferResponse:
    """Start a large upload: the parts go to the returned staging URLs, then a job moves the
    assembled file to `path`."""
    _require_s3(body.transfer_directives.transfer_method)
    if body.transfer_directives.file_size is None:
        raise BadRequest("`transferDirectives.fileSize` is required")
    target = checked_path(remote.system, body.path)
    job, directives = await s3.start_upload(
        remote,
        target,
        body.transfer_directives.file_size,
        s3.Staging(runtime.signer, runtime.sealer, _public_url(runtime, request)),
        body.account,
        uid=principal.uid,
    )
    return StagedTransferResponse(transfer_job=job, transfer_directives=directives)


@router.post("/download", status_code=201, response_model=StagedTransferResponse)
async def download(
    remote: RemoteDep,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    request: Request,
    body: TransferDownloadRequest,
) -> StagedTransferResponse:
    """Start a large download: when the job has finished, GET the returned `downloadUrl`."""
    _require_s3(body.transfer_directives.transfer_method)
    source = checked_path(remote.system, body.path, "sourcePath")
    job, directives = await s3.start_download(
        remote,
        source,
        s3.Staging(runtime.signer, runtime.sealer, _public_url(runtime, request)),
        body.account,
        uid=principal.uid,
    )
    return StagedTransferResponse(transfer_job=job, transfer_directives=directives)
