"""Files above the direct-transfer limit, staged through S3 as FirecREST v2 does it.

Upload: ``POST transfer/upload`` returns presigned part URLs; each part is PUT (no FirecREST
token: the URL is the credential) and must answer an ``ETag``; the parts are completed with S3's
``CompleteMultipartUpload`` XML; a transfer job then moves the object to its path on the cluster.

Download: ``POST transfer/download`` starts a job that pushes the file to S3; once it has printed
its success phrase, the presigned ``downloadUrl`` is fetched.

This module reads those answers and moves the bytes to and from S3; the requests to the API are
``FirecrestClient.transfer_upload``/``transfer_download``, and the choice of a staged transfer
is ``RemoteFileSystem``'s. The shapes follow pyfirecrest 3.10 against FirecREST 2.x, keys in
both spellings where servers have used both.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from .errors import FirecrestError
from .localfiles import file_range, save_chunks
from .models import TransferJob, pick
from .session import ApiSession

STAGING_AREA = "the S3 staging area"


def _directives(body: dict[str, Any]) -> dict[str, Any]:
    directives: dict[str, Any] = (
        pick(body, "transferDirectives", "transfer_directives", default={}) or {}
    )
    return directives


def _checked_method(directives: dict[str, Any], direction: str) -> None:
    method = pick(directives, "transferMethod", "transfer_method", default="s3")
    if method != "s3":
        raise FirecrestError(
            f"The server stages large {direction} with {method!r}; "
            "only 's3' is supported by this client"
        )


@dataclass(frozen=True)
class StagedUpload:
    """The answer to ``POST transfer/upload``: where to PUT the parts, and the job that moves
    the completed object to the cluster."""

    job: TransferJob
    part_urls: tuple[str, ...]
    part_size: int
    complete_url: str

    @classmethod
    def from_wire(cls, answer: dict[str, Any]) -> StagedUpload:
        directives = _directives(answer)
        _checked_method(directives, "uploads")
        urls = pick(answer, "partsUploadUrls") or pick(
            directives, "partsUploadUrls", "parts_upload_urls", default=[]
        )
        part_size = pick(answer, "maxPartSize") or pick(
            directives, "maxPartSize", "max_part_size", default=0
        )
        complete_url = pick(answer, "completeMultipartUploadUrl", "completeUploadUrl") or pick(
            directives, "completeUploadUrl", "complete_upload_url"
        )
        if not urls or not complete_url:
            raise FirecrestError(
                "The server's transfer/upload answer has no S3 part or complete URLs"
            )
        return cls(
            job=TransferJob.from_wire(answer["transferJob"]),
            part_urls=tuple(urls),
            part_size=int(part_size),
            complete_url=complete_url,
        )


@dataclass(frozen=True)
class StagedDownload:
    """The answer to ``POST transfer/download``: the job that pushes the file to S3, and the
    URL to fetch it from once the job is done."""

    job: TransferJob
    url: str

    @classmethod
    def from_wire(cls, answer: dict[str, Any]) -> StagedDownload:
        directives = _directives(answer)
        _checked_method(directives, "downloads")
        url = pick(answer, "downloadUrl") or pick(directives, "downloadUrl", "download_url")
        if not url:
            raise FirecrestError("The server's transfer/download answer has no download URL")
        return cls(job=TransferJob.from_wire(answer["transferJob"]), url=url)


def complete_multipart_xml(etags: list[str]) -> str:
    parts = "".join(
        f"<Part><ETag>{escape(etag)}</ETag><PartNumber>{number}</PartNumber></Part>"
        for number, etag in enumerate(etags, start=1)
    )
    return f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>"


def part_ranges(size: int, part_size: int, parts: int) -> list[tuple[int, int]]:
    """(offset, length) of each of ``parts`` parts of at most ``part_size`` bytes."""
    if part_size <= 0:
        raise FirecrestError(f"invalid S3 part size {part_size}")
    if parts < math.ceil(size / part_size):
        raise FirecrestError(
            f"the server gave {parts} part URLs for {size} bytes in parts of {part_size}"
        )
    ranges = []
    for index in range(parts):
        offset = index * part_size
        ranges.append((offset, max(0, min(part_size, size - offset))))
    return ranges


async def send_parts(
    session: ApiSession,
    staged: StagedUpload,
    local_path: str | Path,
    size: int,
    *,
    parallel: int,
) -> None:
    """PUT the parts of ``local_path`` (``parallel`` at a time), then complete the upload."""
    limit = asyncio.Semaphore(max(1, parallel))

    async def put_part(url: str, offset: int, length: int) -> str:
        async with limit:
            reply = await session.presigned_request(
                "PUT",
                url,
                content=file_range(local_path, offset, length),
                headers={"Content-Length": str(length)},
                what=STAGING_AREA,
            )
        etag = reply.headers.get("ETag")
        if not etag:
            raise FirecrestError("The S3 staging area answered a part upload without an ETag")
        return str(etag)

    ranges = part_ranges(size, staged.part_size, len(staged.part_urls))
    etags = await asyncio.gather(
        *(
            put_part(url, offset, length)
            for url, (offset, length) in zip(staged.part_urls, ranges, strict=True)
        )
    )
    await session.presigned_request(
        "POST", staged.complete_url, content=complete_multipart_xml(list(etags)), what=STAGING_AREA
    )


async def fetch(session: ApiSession, staged: StagedDownload, local_path: str | Path) -> None:
    """Save the staged object to ``local_path`` (once its transfer job has finished)."""
    async with session.presigned_stream(staged.url, what=STAGING_AREA) as reply:
        await save_chunks(reply.aiter_bytes(), local_path)
