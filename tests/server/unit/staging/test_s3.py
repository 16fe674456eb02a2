"""S3 staging: how many parts an upload takes, refused before anything is created."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from firecrest_server.errors import BadRequest, PayloadTooLarge
from firecrest_server.staging.s3 import (
    MAX_COMPLETE_BODY,
    MAX_PARTS,
    read_complete_request,
    upload_parts,
)

MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("size", "parts"),
    [(0, 1), (1, 1), (MIB, 1), (MIB + 1, 2), (MAX_PARTS * MIB, MAX_PARTS)],
)
def test_parts(size: int, parts: int) -> None:
    assert upload_parts(size, MIB) == parts


@pytest.mark.parametrize("size", [MAX_PARTS * MIB + 1, 10**15, 10**30, 10**400])
def test_sizes_beyond_the_part_limit_are_refused(size: int) -> None:
    # One URL per part goes into the answer: 10**30 bytes used to mean 6 * 10**22 URLs,
    # built in memory until the worker died.
    with pytest.raises(BadRequest, match="fileSize"):
        upload_parts(size, MIB)


def test_negative_size_is_refused() -> None:
    with pytest.raises(BadRequest, match="negative"):
        upload_parts(-1, MIB)


async def test_complete_document_is_read_bounded() -> None:
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        while True:
            pulled += 1
            yield b"<" * 65536

    with pytest.raises(PayloadTooLarge, match="CompleteMultipartUpload"):
        await read_complete_request(endless())
    # Stopped one chunk past the cap, however much the client would still send.
    assert pulled == MAX_COMPLETE_BODY // 65536 + 1

    async def small() -> AsyncIterator[bytes]:
        yield b"<a/>"

    assert await read_complete_request(small()) == b"<a/>"
