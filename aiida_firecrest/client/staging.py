"""Files above the direct-transfer limit, staged through S3 as FirecREST v2 does it.

Upload: ``POST transfer/upload`` returns presigned part URLs; each part is PUT (no FirecREST
token: the URL is the credential) and must answer an ``ETag``; the parts are completed with S3's
``CompleteMultipartUpload`` XML; a transfer job then moves the object to its path on the cluster.

Download: ``POST transfer/download`` starts a job that pushes the file to S3; once it has printed
its success phrase, the presigned ``downloadUrl`` is fetched.

The request and response shapes follow pyfirecrest 3.10 against FirecREST 2.x, keys in both
spellings where servers have used both.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import httpx

from .errors import FirecrestError, error_from_network, error_from_response
from .localfiles import file_range, save_chunks
from .models import TransferJob, pick

if TYPE_CHECKING:
    from .api import FirecrestClient


def _directives(body: dict[str, Any]) -> dict[str, Any]:
    return pick(body, "transferDirectives", "transfer_directives", default={}) or {}


def _method(directives: dict[str, Any]) -> str:
    return pick(directives, "transferMethod", "transfer_method", default="s3")


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


async def upload_large(
    client: FirecrestClient,
    system: str,
    local_path: str | Path,
    remote_path: str,
    size: int,
    *,
    account: str | None = None,
) -> None:
    body: dict[str, Any] = {
        "path": remote_path,
        "transfer_directives": {"file_size": size, "transfer_method": "s3"},
    }
    if account:
        body["account"] = account
    response = await client.session.request(
        "POST",
        f"/filesystem/{system}/transfer/upload",
        json=body,
        idempotent=False,
        expected=(201,),
    )
    answer = response.json()
    job = TransferJob.from_wire(answer["transferJob"])
    directives = _directives(answer)
    if _method(directives) != "s3":
        raise FirecrestError(
            f"The server stages large uploads with {_method(directives)!r}; "
            "only 's3' is supported by this client"
        )
    urls = pick(answer, "partsUploadUrls") or pick(
        directives, "partsUploadUrls", "parts_upload_urls", default=[]
    )
    part_size = int(
        pick(answer, "maxPartSize") or pick(directives, "maxPartSize", "max_part_size", default=0)
    )
    complete_url = pick(answer, "completeMultipartUploadUrl", "completeUploadUrl") or pick(
        directives, "completeUploadUrl", "complete_upload_url"
    )
    if not urls or not complete_url:
        raise FirecrestError("The server's transfer/upload answer has no S3 part or complete URLs")

    http = client.session.http
    limit = asyncio.Semaphore(max(1, client.s3_parallel_parts))

    async def put_part(url: str, offset: int, length: int) -> str:
        async with limit:
            try:
                reply = await http.put(
                    url,
                    content=file_range(local_path, offset, length),
                    headers={"Content-Length": str(length)},
                )
            except httpx.HTTPError as exc:
                raise error_from_network(exc, "the S3 staging area") from None
        if reply.status_code >= 400:
            raise error_from_response(reply)
        etag = reply.headers.get("ETag")
        if not etag:
            raise FirecrestError("The S3 staging area answered a part upload without an ETag")
        return etag

    ranges = part_ranges(size, part_size, len(urls))
    etags = await asyncio.gather(
        *(put_part(url, offset, length) for url, (offset, length) in zip(urls, ranges, strict=True))
    )
    try:
        reply = await http.post(complete_url, content=complete_multipart_xml(list(etags)))
    except httpx.HTTPError as exc:
        raise error_from_network(exc, "the S3 staging area") from None
    if reply.status_code >= 400:
        raise error_from_response(reply)
    await client.wait_for_transfer(job)


async def download_large(
    client: FirecrestClient,
    system: str,
    remote_path: str,
    local_path: str | Path,
    *,
    account: str | None = None,
) -> None:
    body: dict[str, Any] = {
        "source_path": remote_path,
        "transfer_directives": {"transferMethod": "s3"},
    }
    if account:
        body["account"] = account
    response = await client.session.request(
        "POST",
        f"/filesystem/{system}/transfer/download",
        json=body,
        idempotent=False,
        expected=(201,),
    )
    answer = response.json()
    job = TransferJob.from_wire(answer["transferJob"])
    directives = _directives(answer)
    if _method(directives) != "s3":
        raise FirecrestError(
            f"The server stages large downloads with {_method(directives)!r}; "
            "only 's3' is supported by this client"
        )
    url = pick(answer, "downloadUrl") or pick(directives, "downloadUrl", "download_url")
    if not url:
        raise FirecrestError("The server's transfer/download answer has no download URL")
    await client.wait_for_transfer(job)
    try:
        async with client.session.http.stream("GET", url) as reply:
            if reply.status_code >= 400:
                await reply.aread()
                raise error_from_response(reply)
            await save_chunks(reply.aiter_bytes(), local_path)
    except httpx.HTTPError as exc:
        raise error_from_network(exc, "the S3 staging area") from None
