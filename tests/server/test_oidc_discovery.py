"""A server configured with the identity provider's issuer alone (no jwks_url, no token_url).

Against the stack's real OIDC provider: the server finds the JWKS and the token endpoint through
``<issuer>/.well-known/openid-configuration``; Swagger UI's Authorize is offered the
client-credentials flow at the discovered token endpoint, and a token fetched there the way
Swagger UI does (client_secret_basic) is accepted. A discovery document that names another issuer
is never used.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from firecrest_dev.info import StackInfo
from firecrest_dev.own_server import own_server

pytestmark = pytest.mark.stack

ISSUER_ONLY = {"auth": {"jwks_url": None, "token_url": None}}


def test_the_issuer_alone_finds_keys_and_token_endpoint(stack: StackInfo, tmp_path: Path) -> None:
    alice = stack.users["alice"]
    with own_server(stack, tmp_path, ISSUER_ONLY) as url:
        # Swagger UI's Authorize: the flow at the token endpoint that discovery found.
        schema = httpx.get(f"{url}/openapi.json", timeout=10).json()
        flows = schema["components"]["securitySchemes"]["OAuth2ClientCredentials"]["flows"]
        token_url = flows["clientCredentials"]["tokenUrl"]
        assert token_url == stack.token_url
        secured = [
            operation["security"]
            for path in schema["paths"].values()
            for operation in path.values()
            if isinstance(operation, dict) and "security" in operation
        ]
        assert secured
        assert all({"OAuth2ClientCredentials": []} in security for security in secured)

        # What Swagger UI does with it: client_secret_basic at that URL, then the bearer token.
        issued = httpx.post(
            token_url,
            data={"grant_type": "client_credentials"},
            auth=(alice.client_id, alice.client_secret),
            timeout=10,
        )
        assert issued.status_code == 200, issued.text
        token = issued.json()["access_token"]
        response = httpx.get(
            f"{url}/status/systems", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        assert response.status_code == 200, response.text
        assert [s["name"] for s in response.json()["systems"]] == [stack.system]
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        refused = httpx.get(
            f"{url}/status/systems", headers={"Authorization": f"Bearer {forged}"}, timeout=30
        )
        assert refused.status_code == 401
    log = (tmp_path / "server.log").read_text()
    assert "cannot use OIDC discovery" not in log


def test_a_document_naming_another_issuer_is_not_used(stack: StackInfo, tmp_path: Path) -> None:
    """The same provider reached as ``localhost``: its document names ``127.0.0.1``, which is
    not the configured issuer, so no keys are taken from it and every token is refused."""
    parts = urlsplit(stack.issuer)
    assert parts.hostname == "127.0.0.1"
    other = urlunsplit(parts._replace(netloc=f"localhost:{parts.port}"))
    overrides = {"auth": {**ISSUER_ONLY["auth"], "issuer": other}}
    with own_server(stack, tmp_path, overrides) as url:
        token = stack.fetch_token("alice")
        responses = [
            httpx.get(
                f"{url}/status/systems", headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            for _ in range(3)
        ]
        assert [r.status_code for r in responses] == [401, 401, 401]
        assert all("Unknown signing key" in r.text for r in responses)
        schema = httpx.get(f"{url}/openapi.json", timeout=10).json()
        assert "OAuth2ClientCredentials" not in schema["components"].get("securitySchemes", {})
    log = (tmp_path / "server.log").read_text()
    assert "cannot use OIDC discovery" in log
    assert f"is not '{other}'" in log
