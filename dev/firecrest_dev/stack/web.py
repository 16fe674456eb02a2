"""The two HTTP calls the stack makes itself (standard library: no httpx before the virtualenv)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request


def http_get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    # Only http URLs this script built itself reach here (S310 guards against file:// input).
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def fetch_token(token_url: str, client_id: str, client_secret: str, scope: str = "") -> str:
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": client_secret,
    }
    if scope:
        form["scope"] = scope
    body = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(token_url, data=body, method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.load(response)["access_token"]
