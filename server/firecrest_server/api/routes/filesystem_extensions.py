"""Extensions beyond FirecREST v2 under /filesystem/{system}/ops (OpenAPI tag "extensions").

Each is advertised in /status/systems (`systems[].server.capabilities`) so clients can detect it
and fall back to standard FirecREST requests against servers that lack it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from ...cluster import checked_path
from ...filesystem import copying, trees
from ...models.extensions import CopyRequest, MoveRequest
from ..deps import RemoteDep

router = APIRouter(prefix="/filesystem/{system_name}/ops", tags=["extensions"])

CAPABILITIES = [
    "filesystem.ops.cp",
    "filesystem.ops.mv",
    "filesystem.tree",
    # PUT ops/tree?create=true makes the directory first: a client putting a tree where none
    # was (every AiiDA calculation's .aiida folder) saves its separate ops/mkdir request.
    "filesystem.tree.create",
]


@router.post("/cp", status_code=204, summary="Copy a file or directory tree (synchronous)")
async def cp(remote: RemoteDep, body: CopyRequest) -> Response:
    source = checked_path(remote.system, body.source_path, "sourcePath")
    target = checked_path(remote.system, body.target_path, "targetPath")
    await copying.copy(remote, source, target, body.dereference)
    return Response(status_code=204)


@router.post("/mv", status_code=204, summary="Move or rename a file or directory (synchronous)")
async def mv(remote: RemoteDep, body: MoveRequest) -> Response:
    source = checked_path(remote.system, body.source_path, "sourcePath")
    target = checked_path(remote.system, body.target_path, "targetPath")
    await copying.move(remote, source, target)
    return Response(status_code=204)


@router.get(
    "/tree",
    summary="Download a directory's contents as one tar stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-tar": {}}}},
)
async def download_tree(
    remote: RemoteDep,
    path: Annotated[str, Query(description="Directory on the system")],
    dereference: bool = False,
) -> StreamingResponse:
    directory = checked_path(remote.system, path)
    stream = await trees.download(remote, directory, dereference)
    return StreamingResponse(stream, media_type="application/x-tar")


@router.put(
    "/tree",
    status_code=204,
    summary="Unpack a tar stream (the request body) into a directory (existing, or created)",
    openapi_extra={
        "requestBody": {
            "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}}
        }
    },
)
async def upload_tree(
    remote: RemoteDep,
    request: Request,
    path: Annotated[str, Query(description="Directory on the system")],
    create: Annotated[
        bool,
        Query(
            description="Create the directory first, as ops/mkdir without parents does "
            '(400 "File exists" if something is there); without it, the directory must exist.'
        ),
    ] = False,
) -> Response:
    directory = checked_path(remote.system, path)
    await trees.upload(remote, directory, request.stream(), create=create)
    return Response(status_code=204)
