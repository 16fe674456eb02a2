"""Streaming a remote file to the client, whole or as one byte range."""

from __future__ import annotations

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ..filesystem.direct_transfer import Download


class DownloadResponse(StreamingResponse):
    """Streams a ``Download`` and releases its SFTP handle however the response ends."""

    def __init__(self, source: Download, media_type: str = "application/octet-stream") -> None:
        headers = {"Content-Length": str(source.length), "Accept-Ranges": "bytes"}
        status = 200
        if source.byte_range is not None:
            first, last = source.byte_range
            headers["Content-Range"] = f"bytes {first}-{last}/{source.size}"
            status = 206
        super().__init__(
            source.chunks(), status_code=status, media_type=media_type, headers=headers
        )
        self._source = source

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._source.aclose()
