"""Redirects are rebased onto server.public_url; locations elsewhere are left alone."""

from __future__ import annotations

import pytest

from firecrest_server.public_url import PublicUrlMiddleware, rebase

PUBLIC = "https://files.example.org/fc"


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("http://evil.example/fc/status/systems", f"{PUBLIC}/status/systems"),
        ("http://evil.example/fc/x?a=1", f"{PUBLIC}/x?a=1"),
        ("http://evil.example/fc", PUBLIC),
        ("http://evil.example/fcx/other", "http://evil.example/fcx/other"),  # not our prefix
        ("https://elsewhere.example/fc/x", "https://elsewhere.example/fc/x"),
    ],
)
def test_rebase(location: str, expected: str) -> None:
    assert rebase(location, "http://evil.example/fc", PUBLIC) == expected


async def test_the_middleware_rewrites_redirects_only() -> None:
    sent: list[dict] = []

    def app_answering(status: int):
        async def app(scope, receive, send) -> None:
            headers = [(b"location", b"http://evil.example/fc/status/systems")]
            await send({"type": "http.response.start", "status": status, "headers": headers})

        return app

    async def send(message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "root_path": "/fc",
        "path": "/fc/status/systems/",
        "query_string": b"",
        "headers": [(b"host", b"evil.example")],
    }
    await PublicUrlMiddleware(app_answering(307), PUBLIC)(scope, None, send)
    await PublicUrlMiddleware(app_answering(200), PUBLIC)(scope, None, send)
    assert dict(sent[0]["headers"])[b"location"] == f"{PUBLIC}/status/systems".encode()
    assert dict(sent[1]["headers"])[b"location"] == b"http://evil.example/fc/status/systems"
