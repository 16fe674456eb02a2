"""Incremental multipart parsing: the file's name and bytes, limits, and malformed bodies."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator

import httpx
import pytest

from firecrest_server.api.upload_form import (
    FORM_OVERHEAD,
    check_content_length,
    decode_filename,
    limited,
    read_file_part,
)
from firecrest_server.errors import BadRequest, PayloadTooLarge


def _form(files: dict, data: dict | None = None) -> tuple[str, bytes]:
    request = httpx.Request("POST", "http://x/", files=files, data=data)
    return request.headers["content-type"], request.read()


async def _pieces(body: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    start = 0
    for size in sizes:
        yield body[start : start + size]
        start += size
    if start < len(body):
        yield body[start:]


async def _read(content_type: str, body: AsyncIterator[bytes]) -> tuple[str | None, bytes]:
    part = await read_file_part(content_type, body)
    data = b"".join([chunk async for chunk in part.chunks()])
    return part.filename, data


async def test_file_name_and_content() -> None:
    content_type, body = _form({"file": ("data.bin", b"\x00\x01binary\r\n--not a boundary")})
    assert await _read(content_type, _pieces(body, [])) == (
        "data.bin",
        b"\x00\x01binary\r\n--not a boundary",
    )


@pytest.mark.parametrize("seed", range(20))
async def test_any_split_of_the_body_gives_the_same_bytes(seed: int) -> None:
    rng = random.Random(seed)
    payload = os.urandom(rng.randrange(0, 200_000))
    content_type, body = _form({"file": ("f", payload)}, data={"other": "field"})
    sizes = [rng.randrange(1, 5000) for _ in range(100)]
    assert await _read(content_type, _pieces(body, sizes)) == ("f", payload)


async def test_fields_before_the_file_are_skipped() -> None:
    content_type, body = _form(
        {"attachment": ("a.txt", b"not this"), "file": ("b.txt", b"this")}, data={"x": "y"}
    )
    assert await _read(content_type, _pieces(body, [7])) == ("b.txt", b"this")


@pytest.mark.parametrize(
    "name",
    ['a"b', "new\nline", "cr\rx", "back\\slash", "ünï ☃", "$(id)", "tab\tx", "%41", "esc\x1bx"],
)
async def test_file_names_sent_by_httpx_arrive_unchanged(name: str) -> None:
    content_type, body = _form({"file": (name, b"x")})
    assert (await _read(content_type, _pieces(body, [])))[0] == name


def test_decode_filename_undoes_exactly_the_html5_escapes() -> None:
    assert decode_filename(b"a%22b%0Ac%0Dd%09e%1Ff") == 'a"b\nc\rd\te\x1ff'
    # Not produced by any encoder: kept as sent (lower case, ESC, printable characters).
    assert decode_filename(b"%0a%1B%2F%41%25") == "%0a%1B%2F%41%25"
    assert decode_filename("é".encode("latin-1"), "utf-8") == "é"  # not UTF-8: latin-1


async def test_missing_file_field_is_400() -> None:
    content_type, body = _form({"upload": ("f", b"x")})
    with pytest.raises(BadRequest, match="no file field `file`"):
        await _read(content_type, _pieces(body, []))


async def test_a_plain_field_named_file_is_not_a_file() -> None:
    content_type, body = _form({"other": ("f", b"x")}, data={"file": "text"})
    with pytest.raises(BadRequest, match="no file field"):
        await _read(content_type, _pieces(body, []))


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", "multipart/form-data", "application/x-www-form-urlencoded"],
)
async def test_not_multipart_is_400(content_type) -> None:
    with pytest.raises(BadRequest, match="multipart/form-data"):
        await _read(content_type, _pieces(b"{}", []))


async def test_a_body_cut_inside_the_file_is_400() -> None:
    content_type, body = _form({"file": ("f", b"x" * 1000)})
    with pytest.raises(BadRequest, match="Invalid multipart data"):
        await _read(content_type, _pieces(body[:500], []))


async def test_a_body_without_the_closing_boundary_is_400() -> None:
    content_type, body = _form({"file": ("f", b"x" * 1000)})
    cut = body[: body.rindex(b"--\r\n")]
    with pytest.raises(BadRequest, match="closing boundary"):
        await _read(content_type, _pieces(cut, []))


async def test_garbage_is_400() -> None:
    with pytest.raises(BadRequest):
        await _read("multipart/form-data; boundary=abc", _pieces(b"nonsense" * 100, []))


def test_content_length_check() -> None:
    check_content_length(None, 10)
    check_content_length(str(10 + FORM_OVERHEAD), 10)
    with pytest.raises(PayloadTooLarge):
        check_content_length(str(11 + FORM_OVERHEAD), 10)


async def test_limited_stops_an_endless_body() -> None:
    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield b"x" * 65536

    received: list[int] = []

    async def consume() -> None:
        async for chunk in limited(endless(), 1000):
            received.append(len(chunk))

    with pytest.raises(PayloadTooLarge):
        await consume()
    assert sum(received) <= 1000 + FORM_OVERHEAD
