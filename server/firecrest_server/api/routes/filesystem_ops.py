"""/filesystem/{system}/ops: synchronous file operations, FirecREST v2 shapes and status codes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ...filesystem import listing
from ...filesystem.paths import checked_path
from ...models.filesystem import ListResponse, StatResponse
from ..deps import RemoteDep

router = APIRouter(prefix="/filesystem/{system_name}/ops", tags=["filesystem"])

PathQuery = Annotated[str, Query(description="Absolute path on the system")]


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
