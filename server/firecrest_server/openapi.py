"""The OpenAPI document this server publishes: its errors as they are really sent.

FastAPI documents a 422 with its own validation body on every route that takes input; this
server answers validation errors with 400 and FirecREST's error body instead (errors.py), as
FirecREST v2 does. So, as FirecREST v2's own document does, every FirecREST route documents
``4XX`` and ``5XX`` with that body, and the 422 that is never sent is removed.
tests/conformance/test_openapi.py compares the result with FirecREST v2's document.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from .models.errors import ErrorBody

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": "Client Error"},
    "5XX": {"model": ErrorBody, "description": "Server Error"},
}

_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")


def publish_errors_as_sent(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for item in schema.get("paths", {}).values():
                for operation in item.values():
                    operation.get("responses", {}).pop("422", None)
            schemas = schema.get("components", {}).get("schemas", {})
            for name in _FASTAPI_VALIDATION:
                schemas.pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    # Replacing the method is FastAPI's documented way to amend the generated schema.
    app.openapi = openapi  # type: ignore[method-assign]
