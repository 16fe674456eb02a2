"""The OpenAPI document's OAuth2 client-credentials scheme, for Swagger UI's "Authorize".

FastAPI describes the bearer token (deps.py's ``HTTPBearer``): Swagger UI then asks for a token
pasted in. With the provider's token endpoint known (``auth.token_url``, or OIDC discovery), the
document also offers the client-credentials flow as an alternative on every authenticated
operation, and Swagger UI fetches the token itself from a client id and secret. The token is
sent as the same ``Authorization: Bearer`` header, so nothing changes on the server side.
"""

from __future__ import annotations

from typing import Any

SCHEME = "OAuth2ClientCredentials"
BEARER = "HTTPBearer"  # the name FastAPI gives deps.py's scheme


def add_client_credentials(schema: dict[str, Any], token_url: str) -> dict[str, Any]:
    """Add (or update) the scheme in ``schema``, in place; idempotent."""
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes[SCHEME] = {
        "type": "oauth2",
        "description": "OAuth2 client credentials at the site's identity provider",
        "flows": {"clientCredentials": {"tokenUrl": token_url, "scopes": {}}},
    }
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            if not isinstance(operation, dict):
                continue
            security = operation.get("security")
            # A list of alternatives: either scheme authenticates the operation.
            if security and {BEARER: []} in security and {SCHEME: []} not in security:
                security.append({SCHEME: []})
    return schema
