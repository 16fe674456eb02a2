"""The download response gives its SFTP handle back however the response ends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from starlette.requests import ClientDisconnect

from firecrest_server.api.download_response import DownloadResponse


class _Source:
    def __init__(self, size: int) -> None:
        self.size = size
        self.length = size
        self.byte_range = None
        self.closed = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        for _ in range(self.size):
            yield b"x"

    async def aclose(self) -> None:
        self.closed += 1


async def _receive() -> dict:
    return {"type": "http.request", "body": b"", "more_body": False}


SCOPE = {"type": "http", "asgi": {"spec_version": "2.4"}}


async def test_a_complete_download_releases_the_source() -> None:
    source = _Source(3)
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    await DownloadResponse(source)(SCOPE, _receive, send)  # type: ignore[arg-type]
    headers = dict(sent[0]["headers"])
    assert headers[b"content-length"] == b"3"
    assert headers[b"content-type"] == b"application/octet-stream"
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b"xxx"
    assert source.closed == 1


async def test_a_client_that_goes_away_releases_the_source() -> None:
    source = _Source(100)
    sent: list[dict] = []

    async def send(message: dict) -> None:
        if len(sent) == 3:
            raise OSError("connection reset")
        sent.append(message)

    with pytest.raises(ClientDisconnect):
        await DownloadResponse(source)(SCOPE, _receive, send)  # type: ignore[arg-type]
    assert source.closed == 1
