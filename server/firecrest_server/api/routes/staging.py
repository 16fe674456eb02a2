"""/staging/{token}/...: the S3-style endpoint behind large-file transfers (tag "staging").

These requests carry no bearer token (clients send presigned requests bare): the signed,
expiring token in the path is the authorisation, and names the user and the staging paths.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, Response

from ...errors import Forbidden, NotFound
from ...filesystem.direct_transfer import open_download
from ...remote import Remote
from ...staging import s3
from ...staging.tokens import StagingGrant
from ..deps import RuntimeDep, make_remote
from ..download_response import DownloadResponse

router = APIRouter(prefix="/staging/{token}", tags=["staging"])

Token = Annotated[str, Path(max_length=4096)]


def _remote(runtime, request: Request, token: str, kind: str) -> tuple[Remote, StagingGrant]:
    grant = runtime.signer.verify(token, kind)
    system = runtime.settings.system(grant.system)
    if system is None:
        raise NotFound(f"System not found: {grant.system}")
    if system.allowed_users is not None and grant.user not in system.allowed_users:
        raise Forbidden(f"User {grant.user} may not use system {system.name}")
    runtime.health.ensure_available(system.name, "ssh")
    return make_remote(runtime, request, system, grant.user, None), grant


@router.put("/parts/{number}", summary="Upload one part (S3 UploadPart)")
async def put_part(
    runtime: RuntimeDep,
    request: Request,
    token: Token,
    number: Annotated[int, Path(ge=1, le=s3.MAX_PARTS)],
) -> Response:
    remote, grant = _remote(runtime, request, token, "upload")
    etag = await s3.write_part(remote, grant, number, request.stream())
    return Response(status_code=200, headers={"ETag": etag})


@router.post("/complete", summary="Finish an upload (S3 CompleteMultipartUpload)")
async def complete(runtime: RuntimeDep, request: Request, token: Token) -> Response:
    remote, grant = _remote(runtime, request, token, "upload")
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
    remote, grant = _remote(runtime, request, token, "download")
    source = await open_download(remote, grant.path, None, range_header)
    return DownloadResponse(source)
