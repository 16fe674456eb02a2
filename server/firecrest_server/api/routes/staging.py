"""/staging/{token}/...: the S3-style endpoint behind large-file transfers (tag "staging").

These requests carry no bearer token (clients send presigned requests bare): the signed,
expiring token in the path is the authorisation, and names the user and the staging paths.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, Response

from ...auth.systems import authorized_system
from ...cluster import Remote, checked_path
from ...filesystem.direct_transfer import open_download
from ...runtime import Runtime
from ...staging import s3
from ...staging.tokens import StagingGrant
from ..deps import RuntimeDep
from ..download_response import DownloadResponse

router = APIRouter(prefix="/staging/{token}", tags=["staging"])

# 400 bytes with the built-in CA; ~1.6 KB with a sealed ed25519 key (key_service mode), ~4.8 KB
# with a sealed RSA-3072 key. Within h11's 16 KiB limit on a request's head.
MAX_TOKEN = 8192
Token = Annotated[str, Path(max_length=MAX_TOKEN)]


async def _remote(
    runtime: Runtime, request: Request, token: str, kind: str
) -> tuple[Remote, StagingGrant]:
    grant = runtime.signer.verify(token, kind)
    # The grant names a login: the same policy as for bearer tokens, checked again here because
    # a grant outlives the request that made it (by default a day) and may land on a replica
    # configured since.
    await runtime.principals.check_grant(grant.user, grant.uid)
    system = authorized_system(runtime.settings, grant.system, grant.user)
    runtime.health.ensure_available(system.name, "ssh")
    # key_service mode: the key issued when the URL was made (no bearer token here to ask
    # the key service with); otherwise the pool's own credentials.
    login = (
        runtime.sealer.open(grant.sealed_key, grant.user, system.name)
        if grant.sealed_key is not None
        else None
    )
    request_id = getattr(request.state, "request_id", None)
    return runtime.cluster.remote(system, grant.user, login, request_id=request_id), grant


@router.put("/parts/{number}", summary="Upload one part (S3 UploadPart)")
async def put_part(
    runtime: RuntimeDep,
    request: Request,
    token: Token,
    number: Annotated[int, Path(ge=1, le=s3.MAX_PARTS)],
) -> Response:
    remote, grant = await _remote(runtime, request, token, "upload")
    etag = await s3.write_part(remote, grant, number, request.stream())
    return Response(status_code=200, headers={"ETag": etag})


@router.post("/complete", summary="Finish an upload (S3 CompleteMultipartUpload)")
async def complete(runtime: RuntimeDep, request: Request, token: Token) -> Response:
    remote, grant = await _remote(runtime, request, token, "upload")
    # Read only after the token is checked, and never past the document's cap.
    body = await s3.read_complete_request(request.stream())
    await s3.complete_upload(remote, grant, body)
    result = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<CompleteMultipartUploadResult><Key>data</Key></CompleteMultipartUploadResult>"
    )
    return Response(result, media_type="application/xml")


@router.get("/object", summary="Download the staged file (S3 GetObject; Range supported)")
async def get_object(
    runtime: RuntimeDep,
    request: Request,
    token: Token,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
) -> DownloadResponse:
    remote, grant = await _remote(runtime, request, token, "download")
    # Checked when the URL was made, and again here: the grant outlives that request, and the
    # system's file systems may have been configured differently since.
    path = checked_path(remote.system, grant.path)
    source = await open_download(remote, path, None, range_header)
    return DownloadResponse(source)
