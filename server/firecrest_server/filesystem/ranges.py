"""HTTP Range requests (RFC 9110 §14) for downloads: one byte range, so clients can resume."""

from __future__ import annotations

import re

from ..errors import ApiError

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(ApiError):
    status_code = 416

    def __init__(self, size: int) -> None:
        super().__init__(
            f"Requested range not satisfiable (size {size})",
            headers={"Content-Range": f"bytes */{size}"},
        )


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` byte positions asked for, or None for the whole file.

    A header we do not understand (several ranges, other units) is ignored, as RFC 9110
    allows: the whole file is sent with 200. A range we understand that selects no byte is
    416 (RFC 9110 §15.5.17): every range of an empty file, a start at or past the end, a
    suffix of length 0, a last position before the first.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip().replace(" ", ""))
    if not match or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.groups()
    if size == 0:
        # No byte to select: a suffix range here would otherwise come out as "bytes 0--1/0".
        raise RangeNotSatisfiable(size)
    if not first:  # suffix range: the last N bytes
        length = int(last)
        if length == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise RangeNotSatisfiable(size)
    return start, end
