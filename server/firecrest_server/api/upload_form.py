"""The file of a multipart/form-data upload, read from the request body as it arrives.

FastAPI's ``UploadFile`` would first receive the whole body into a spooled temporary file on the
API host. Here the body is parsed incrementally (python-multipart, as Starlette does) and the
file's bytes are handed on chunk by chunk, so the upload streams to the cluster with bounded
memory, no local disk, and a size limit that holds while the bytes arrive.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header

from ..errors import BadRequest, PayloadTooLarge

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

# Room for the multipart framing around the file (boundaries, part headers, a few small
# fields) when the request's total size is checked against the file size limit.
FORM_OVERHEAD = 64 * 1024


def check_content_length(value: str | None, limit: int) -> None:
    """413 straight away when the declared body cannot hold a file within ``limit``."""
    if value is not None and value.isdigit() and int(value) > limit + FORM_OVERHEAD:
        raise PayloadTooLarge(
            f"Request body of {value} bytes exceeds the {limit} bytes limit for direct uploads"
        )


async def limited(body: AsyncIterable[bytes], limit: int) -> AsyncIterator[bytes]:
    """``body``, failing with 413 once it exceeds what a file within ``limit`` can need.

    This holds for chunked requests too, which declare no length up front.
    """
    total = 0
    async for chunk in body:
        total += len(chunk)
        if total > limit + FORM_OVERHEAD:
            raise PayloadTooLarge(
                f"Request body exceeds the {limit} bytes limit for direct uploads"
            )
        yield chunk


# Multipart encoders escape a few characters of a file name as %XX: browsers and curl the
# quote, CR and LF (HTML5); httpx, and so pyfirecrest, the quote and every C0 control but ESC.
# Undo exactly those, so names round-trip; nothing else is percent-decoded.
_FORM_ESCAPES = re.compile(r"%(22|0[0-9A-F]|1[0-9ACDEF])")


def _decode(value: bytes, charset: str) -> str:
    try:
        return value.decode(charset)
    except (UnicodeDecodeError, LookupError):
        return value.decode("latin-1")


def decode_filename(value: bytes, charset: str = "utf-8") -> str:
    """A part's ``filename`` parameter as the client's file name.

    Decoded as Starlette decodes it, plus the escapes above. FirecREST v2 keeps ``%22``
    literally, so a pyfirecrest upload of ``a"b`` lands there as ``a%22b``; here as ``a"b``.
    """
    return _FORM_ESCAPES.sub(lambda m: chr(int(m.group(1), 16)), _decode(value, charset))


@dataclass
class _Part:
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    name: bytes = b""
    value: bytes = b""


@dataclass
class _Collector:
    """python-multipart calls back synchronously: collect events, handle them after each write."""

    events: list[tuple[str, object]] = field(default_factory=list)
    header: _Part = field(default_factory=_Part)
    ended: bool = False

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _begin(self) -> None:
        self.header = _Part()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self.header.name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self.header.value += data[start:end]

    def _header_end(self) -> None:
        part = self.header
        part.headers.append((part.name.lower(), part.value))
        part.name, part.value = b"", b""

    def _headers_finished(self) -> None:
        self.events.append(("part", self.header.headers))

    def _data(self, data: bytes, start: int, end: int) -> None:
        self.events.append(("data", data[start:end]))

    def _part_end(self) -> None:
        self.events.append(("part_end", None))

    def _end(self) -> None:
        self.ended = True

    def take(self) -> list[tuple[str, object]]:
        events, self.events = self.events, []
        return events


class FilePart:
    """The form's file field: its file name, then its bytes through ``chunks()``."""

    def __init__(self, filename: str | None, events: AsyncIterator[tuple[str, object]]) -> None:
        self.filename = filename
        self._events = events

    async def chunks(self) -> AsyncIterator[bytes]:
        async for kind, value in self._events:
            if kind == "data":
                assert isinstance(value, bytes)
                yield value
            elif kind == "part_end":
                break
        else:
            raise BadRequest("Invalid multipart data: the body ends inside the file")
        # Read the rest of the form so that a truncated body is an error, not a success.
        async for _ in self._events:
            pass


async def _events(
    content_type: str, body: AsyncIterable[bytes]
) -> AsyncIterator[tuple[str, object]]:
    media_type, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise BadRequest("The upload must be sent as multipart/form-data with a `file` field")
    collector = _Collector()
    parser = MultipartParser(boundary, collector.callbacks())
    try:
        async for chunk in body:
            parser.write(chunk)
            for event in collector.take():
                yield event
        parser.finalize()
    except FormParserError as exc:
        raise BadRequest(f"Invalid multipart data: {exc}") from None
    for event in collector.take():
        yield event
    if not collector.ended:
        raise BadRequest("Invalid multipart data: the body ends before the closing boundary")


async def read_file_part(
    content_type: str | None, body: AsyncIterable[bytes], field_name: str = "file"
) -> FilePart:
    """Read ``body`` up to the start of the file field ``field_name``.

    Other fields before it are skipped.
    """
    _, params = parse_options_header(content_type or "")
    charset = params.get(b"charset", b"utf-8").decode("latin-1")
    try:
        charset = codecs.lookup(charset).name
    except LookupError:
        charset = "latin-1"
    events = _events(content_type or "", body)
    async for kind, value in events:
        if kind != "part":
            continue
        assert isinstance(value, list)
        disposition = dict(value).get(b"content-disposition", b"")
        _, options = parse_options_header(disposition)
        if options.get(b"name") == field_name.encode() and b"filename" in options:
            return FilePart(decode_filename(options[b"filename"], charset), events)
    raise BadRequest(f"The form has no file field `{field_name}`")
