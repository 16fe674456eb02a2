"""The OpenAPI document offers Swagger UI the client-credentials flow once a token URL is known."""

from __future__ import annotations

import copy

from firecrest_server.openapi_security import BEARER, SCHEME, add_client_credentials


def _schema() -> dict:
    return {
        "paths": {
            "/status/liveness": {"get": {"responses": {}}},  # public: no security
            "/status/systems": {"get": {"security": [{BEARER: []}]}},
            "/filesystem/{system}/ops/ls": {
                "get": {"security": [{BEARER: []}]},
                "parameters": [{"name": "system"}],  # not an operation
            },
        },
        "components": {"securitySchemes": {BEARER: {"type": "http", "scheme": "bearer"}}},
    }


def test_every_authenticated_operation_gets_the_flow_as_an_alternative() -> None:
    schema = add_client_credentials(_schema(), "https://idp.example/token")
    flow = schema["components"]["securitySchemes"][SCHEME]["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "https://idp.example/token"
    assert BEARER in schema["components"]["securitySchemes"]  # pasting a token still works
    paths = schema["paths"]
    assert paths["/status/systems"]["get"]["security"] == [{BEARER: []}, {SCHEME: []}]
    assert paths["/filesystem/{system}/ops/ls"]["get"]["security"] == [{BEARER: []}, {SCHEME: []}]
    assert "security" not in paths["/status/liveness"]["get"]


def test_adding_again_is_idempotent_and_follows_a_new_url() -> None:
    once = add_client_credentials(_schema(), "https://idp.example/token")
    twice = add_client_credentials(copy.deepcopy(once), "https://idp.example/token")
    assert twice == once
    moved = add_client_credentials(twice, "https://idp2.example/token")
    flow = moved["components"]["securitySchemes"][SCHEME]["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "https://idp2.example/token"
    assert moved["paths"]["/status/systems"]["get"]["security"] == [{BEARER: []}, {SCHEME: []}]
