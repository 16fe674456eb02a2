"""/filesystem/{system}/ops: synchronous file operations, FirecREST v2 shapes and status codes.

Routes translate HTTP to operations: every user path goes through ``checked_path`` here, and the
work happens in ``filesystem.*``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse

from ...cluster import checked_path
from ...errors import BadRequest
from ...filesystem import archives, changes, content, direct_transfer, listing
from ...models.filesystem import (
    ChecksumResponse,
    ChmodRequest,
    ChownRequest,
    CompressRequest,
    ExtractRequest,
    FileContentResponse,
    FileEntryResponse,
    ListResponse,
    MkdirRequest,
    StatResponse,
    SymlinkRequest,
    TextResponse,
)
from ..deps import RemoteDep
from ..download_response import DownloadResponse
from ..upload_form import check_content_length, limited, read_file_part

router = APIRouter(prefix="/filesystem/{system_name}/ops", tags=["filesystem"])

PathQuery = Annotated[str, Query(description="Absolute path on the system")]
# Counts must not be negative: a leading sign is what skipTrailing/skipHeading express.
BytesQuery = Annotated[
    int | None, Query(alias="bytes", ge=0, description="Number of bytes (not with `lines`)")
]
LinesQuery = Annotated[int | None, Query(ge=0, description="Number of lines (not with `bytes`)")]


# ----------------------------------------------------------------------------------- reading


@router.get("/ls", response_model=ListResponse)
async def ls(
    remote: RemoteDep,
    path: PathQuery,
    show_hidden: Annotated[bool, Query(alias="showHidden")] = False,
    numeric_uid: Annotated[bool, Query(alias="numericUid")] = False,
    recursive: bool = False,
    dereference: bool = False,
) -> ListResponse:
    entries = await listing.list_path(
        remote,
        checked_path(remote.system, path),
        show_hidden=show_hidden,
        numeric_uid=numeric_uid,
        recursive=recursive,
        dereference=dereference,
    )
    return ListResponse(output=entries)


@router.get("/stat", response_model=StatResponse)
async def stat(remote: RemoteDep, path: PathQuery, dereference: bool = False) -> StatResponse:
    result = await listing.stat(remote, checked_path(remote.system, path), dereference)
    return StatResponse(output=result)


@router.get("/head", response_model=FileContentResponse)
async def head(
    remote: RemoteDep,
    path: PathQuery,
    file_bytes: BytesQuery = None,
    lines: LinesQuery = None,
    skip_trailing: Annotated[
        bool, Query(alias="skipTrailing", description="All but the last `bytes`/`lines`")
    ] = False,
) -> FileContentResponse:
    part = content.Slice.of(file_bytes, lines, skip_trailing)
    output = await content.head(remote, checked_path(remote.system, path), part)
    return FileContentResponse(output=output)


@router.get("/tail", response_model=FileContentResponse)
async def tail(
    remote: RemoteDep,
    path: PathQuery,
    file_bytes: BytesQuery = None,
    lines: LinesQuery = None,
    skip_heading: Annotated[
        bool, Query(alias="skipHeading", description="From byte/line number `bytes`/`lines` on")
    ] = False,
) -> FileContentResponse:
    part = content.Slice.of(file_bytes, lines, skip_heading)
    output = await content.tail(remote, checked_path(remote.system, path), part)
    return FileContentResponse(output=output)


@router.get("/view", response_model=TextResponse)
async def view(
    remote: RemoteDep,
    path: PathQuery,
    size: Annotated[
        int | None, Query(description="Bytes to read (default 5 MiB, at most the system limit)")
    ] = None,
    offset: Annotated[int, Query(description="Byte offset to start at")] = 0,
) -> TextResponse:
    count = content.view_size(size, offset, remote.system.data_operation.max_ops_file_size)
    text = await content.view(remote, checked_path(remote.system, path), count, offset)
    return TextResponse(output=text)


@router.get("/checksum", response_model=ChecksumResponse)
async def checksum(remote: RemoteDep, path: PathQuery) -> ChecksumResponse:
    output = await content.checksum(remote, checked_path(remote.system, path))
    return ChecksumResponse(output=output)


@router.get("/file", response_model=TextResponse)
async def file(remote: RemoteDep, path: PathQuery) -> TextResponse:
    output = await content.file_type(remote, checked_path(remote.system, path))
    return TextResponse(output=output)


# ---------------------------------------------------------------------------------- changing


@router.delete("/rm", status_code=status.HTTP_204_NO_CONTENT)
async def rm(remote: RemoteDep, path: PathQuery) -> Response:
    await changes.rm(remote, checked_path(remote.system, path))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/mkdir", status_code=status.HTTP_201_CREATED, response_model=FileEntryResponse)
async def mkdir(remote: RemoteDep, body: MkdirRequest) -> FileEntryResponse:
    entry = await changes.mkdir(remote, checked_path(remote.system, body.path), body.parent)
    return FileEntryResponse(output=entry)


@router.post("/symlink", status_code=status.HTTP_201_CREATED, response_model=FileEntryResponse)
async def symlink(remote: RemoteDep, body: SymlinkRequest) -> FileEntryResponse:
    target = checked_path(remote.system, body.path)
    link = checked_path(remote.system, body.link_path, "linkPath")
    return FileEntryResponse(output=await changes.symlink(remote, target, link))


@router.put("/chmod", response_model=FileEntryResponse)
async def chmod(remote: RemoteDep, body: ChmodRequest) -> FileEntryResponse:
    mode = changes.Mode.parse(body.mode)
    entry = await changes.chmod(remote, checked_path(remote.system, body.path), mode)
    return FileEntryResponse(output=entry)


@router.put("/chown", response_model=FileEntryResponse)
async def chown(remote: RemoteDep, body: ChownRequest) -> FileEntryResponse:
    path = checked_path(remote.system, body.path)
    changes.owner_spec(body.owner, body.group)  # 400 before anything reaches the cluster
    return FileEntryResponse(output=await changes.chown(remote, path, body.owner, body.group))


# ----------------------------------------------------------------------------------- archives


@router.post("/compress", status_code=status.HTTP_204_NO_CONTENT)
async def compress(remote: RemoteDep, body: CompressRequest) -> Response:
    await archives.compress(
        remote,
        checked_path(remote.system, body.path),
        checked_path(remote.system, body.target_path, "targetPath"),
        compression=body.compression,
        dereference=body.dereference,
        match_pattern=body.match_pattern,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/extract", status_code=status.HTTP_204_NO_CONTENT)
async def extract(remote: RemoteDep, body: ExtractRequest) -> Response:
    await archives.extract(
        remote,
        checked_path(remote.system, body.path),
        checked_path(remote.system, body.target_path, "targetPath"),
        body.compression,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ----------------------------------------------------------------------------- direct transfer

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


@router.post(
    "/upload",
    status_code=status.HTTP_204_NO_CONTENT,
    openapi_extra=_UPLOAD_BODY,
    description="Upload a small file into the directory `path`, under the form file's name. "
    "An existing file of that name is replaced.",
)
async def upload(remote: RemoteDep, request: Request, path: PathQuery) -> Response:
    # The body is read here, after authentication, and never before its size is known to fit.
    directory = checked_path(remote.system, path)
    limit = remote.system.data_operation.max_ops_file_size
    check_content_length(request.headers.get("content-length"), limit)
    try:
        form = await read_file_part(
            request.headers.get("content-type"), limited(request.stream(), limit)
        )
        name = direct_transfer.check_file_name(form.filename)
        await direct_transfer.upload(remote, directory, name, form.chunks(), limit)
    except ClientDisconnect:
        # Nobody is listening for the answer; this keeps it out of the unexpected-error log.
        raise BadRequest("The client went away during the upload") from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/download",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}},
        206: {"description": "The byte range asked for with a Range header"},
    },
    description="Download a file as raw bytes. Supports one HTTP Range (to resume).",
)
async def download(
    remote: RemoteDep,
    path: PathQuery,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
) -> StreamingResponse:
    source = await direct_transfer.open_download(
        remote,
        checked_path(remote.system, path),
        remote.system.data_operation.max_ops_file_size,
        range_header,
    )
    return DownloadResponse(source)
