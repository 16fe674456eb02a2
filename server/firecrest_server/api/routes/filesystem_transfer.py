"""/filesystem/{system}/transfer: file operations run as scheduler jobs (FirecREST v2)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from ...errors import BadRequest
from ...filesystem import archives, copying, transfer_jobs
from ...filesystem.changes import rm_argv
from ...filesystem.paths import checked_path
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
from ...remote import Remote
from ...runtime import Runtime
from ...staging import s3
from ...staging.logins import StagingLogin, staging_login
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
    job = await transfer_jobs.submit(
        remote,
        "CopyFiles",
        [copying.cp_argv(source, target, body.dereference)],
        "Files were successfully copied.",
        body.account,
    )
    return TransferJobResponse(transfer_job=job)


@router.post("/mv", status_code=201, response_model=TransferJobResponse)
async def mv(remote: RemoteDep, body: TransferMoveRequest) -> TransferJobResponse:
    source = checked_path(remote.system, body.source_path, "sourcePath")
    target = checked_path(remote.system, body.target_path, "targetPath")
    job = await transfer_jobs.submit(
        remote,
        "MoveFiles",
        [copying.mv_argv(source, target)],
        "Files were successfully moved.",
        body.account,
    )
    return TransferJobResponse(transfer_job=job)


@router.delete("/rm", status_code=200, response_model=TransferJobResponse)
async def rm(
    remote: RemoteDep,
    path: Annotated[str, Query()],
    account: Annotated[str | None, Query()] = None,
) -> TransferJobResponse:
    target = checked_path(remote.system, path)
    job = await transfer_jobs.submit(
        remote, "DeleteFiles", [rm_argv(target)], "Files were successfully removed.", account
    )
    return TransferJobResponse(transfer_job=job)


@router.post("/compress", status_code=201, response_model=TransferJobResponse)
async def compress(remote: RemoteDep, body: TransferCompressRequest) -> TransferJobResponse:
    source = checked_path(remote.system, body.path, "sourcePath")
    target = checked_path(remote.system, body.target_path, "targetPath")
    argv = archives.compress_argv(
        source,
        target,
        compression=body.compression,
        dereference=body.dereference,
        match_pattern=body.match_pattern,
    )
    job = await transfer_jobs.submit(
        remote, "CompressFiles", [argv], "Files were successfully compressed.", body.account
    )
    return TransferJobResponse(transfer_job=job)


@router.post("/extract", status_code=201, response_model=TransferJobResponse)
async def extract(remote: RemoteDep, body: TransferExtractRequest) -> TransferJobResponse:
    source = checked_path(remote.system, body.path, "sourcePath")
    target = checked_path(remote.system, body.target_path, "targetPath")
    argv = archives.extract_argv(source, target, remote.system.data_operation, body.compression)
    job = await transfer_jobs.submit(
        remote, "ExtractFiles", [argv], "Files were successfully extracted.", body.account
    )
    return TransferJobResponse(transfer_job=job)


def _public_url(runtime: Runtime, request: Request) -> str:
    # Without public_url: the URL this request came in on (its Host header, the connection's
    # scheme; forwarded headers only from trusted proxies, which require public_url).
    return runtime.settings.server.public_url or str(request.base_url)


async def _login(runtime: Runtime, remote: Remote) -> StagingLogin:
    # Before anything is created on the cluster: a key service that refuses leaves nothing.
    provider = runtime.pools[remote.system.name].credentials
    return await staging_login(remote, provider, runtime.sealer)


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
    s3.upload_parts(
        body.transfer_directives.file_size, remote.system.data_operation.staging_part_size
    )
    job, directives = await s3.create_upload(
        remote,
        target,
        body.transfer_directives.file_size,
        runtime.signer,
        _public_url(runtime, request),
        body.account,
        await _login(runtime, remote),
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
    job, directives = await s3.create_download(
        remote,
        source,
        runtime.signer,
        _public_url(runtime, request),
        body.account,
        await _login(runtime, remote),
        uid=principal.uid,
    )
    return StagedTransferResponse(transfer_job=job, transfer_directives=directives)
