"""The one place that turns errors into HTTP responses.

Operations raise ``ApiError`` subclasses (``errors.py``); nothing else builds an error response.
The body is FirecREST v2's ``{errorType, message, causedBy, data, user}`` and never contains the
caller's token.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import ApiError
from ..models.errors import ErrorBody
from ..redaction import redact

log = logging.getLogger("firecrest_server.errors")


def _username(request: Request) -> str | None:
    principal = getattr(request.state, "principal", None)
    return getattr(principal, "username", None)


def error_response(
    request: Request,
    status_code: int,
    message: str,
    *,
    error_type: Literal["error", "validation"] = "error",
    headers: dict[str, str] | None = None,
    data: dict[str, Any] | None = None,
    caused_by: list[str] | None = None,
) -> JSONResponse:
    body = ErrorBody(
        error_type=error_type,
        # Messages may quote what the client sent or what a remote program printed; a token
        # among it is not sent back (nor, through the client's logs, anywhere else).
        message=redact(message),
        caused_by=caused_by,
        data=data,
        user=_username(request),
    )
    return JSONResponse(body.model_dump(by_alias=True), status_code=status_code, headers=headers)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(
        request,
        exc.status_code,
        exc.message,
        headers=exc.headers,
        data=exc.data,
        caused_by=exc.caused_by,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = []
    for error in exc.errors():
        location = error.get("loc", ())
        fields.append(
            {
                "location": str(location[0]) if location else "",
                "name": ".".join(str(p) for p in location[1:]),
                "message": error.get("msg", ""),
            }
        )
    summary = "; ".join(f"{f['location']}.{f['name']}: {f['message']}" for f in fields)
    # FirecREST v2 answers validation errors with 400, not FastAPI's 422.
    return error_response(
        request,
        400,
        f"Invalid request: {summary}" if summary else "Invalid request",
        error_type="validation",
        data={"fields": fields},
    )


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(
        request, exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None)
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    log.exception("unhandled error", extra={"request_id": request_id})
    return error_response(request, 500, f"Internal server error (request id {request_id})")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(Exception, _unexpected)
