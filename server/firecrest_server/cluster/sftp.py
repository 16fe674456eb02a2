"""Small SFTP helpers every file operation shares: a bounded request, and file attributes."""

from __future__ import annotations

import asyncio
import stat as stat_module
from collections.abc import Awaitable
from typing import TypeVar

import asyncssh

from ..errors import RequestTimeout

T = TypeVar("T")


async def sftp_request(request: Awaitable[T], limit: float, path: str) -> T:
    """Await one SFTP request (or a short sequence of them) for at most ``limit`` seconds;
    past it, 408 naming ``path``. Streamed transfers bound each request, not the whole."""
    try:
        async with asyncio.timeout(limit):
            return await request
    except TimeoutError:
        raise RequestTimeout(f"SFTP request on {path} timed out after {limit:g} s") from None


def sftp_text(field: bytes | str) -> str:
    """A name or long name of an SFTP listing. The client decodes them (asyncssh's default
    UTF-8 encoding), but asyncssh types them as bytes or str alike."""
    assert isinstance(field, str)
    return field


def is_dir(attrs: asyncssh.SFTPAttrs) -> bool:
    return stat_module.S_ISDIR(attrs.permissions or 0)


async def lstat_or_none(sftp: asyncssh.SFTPClient, path: str) -> asyncssh.SFTPAttrs | None:
    """``path``'s own attributes (a link's, not its target's); None if nothing is there."""
    try:
        return await sftp.lstat(path)
    except asyncssh.SFTPNoSuchFile:
        return None
