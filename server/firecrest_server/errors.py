"""Every error the API returns, and the one place that turns them into HTTP responses.

Operations raise ``ApiError`` subclasses; nothing else builds an error response. The body is
FirecREST v2's ``{errorType, message, causedBy, data, user}`` and never contains the caller's token.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import diagnostics
from .diagnostics import Failure, framed
from .models.errors import ErrorBody
from .redaction import redact

log = logging.getLogger("firecrest_server.errors")


class ApiError(Exception):
    status_code = 500

    def __init__(
        self,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        data: dict[str, Any] | None = None,
        caused_by: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.data = data
        self.caused_by = caused_by


class BadRequest(ApiError):
    status_code = 400


class Unauthorized(ApiError):
    status_code = 401

    def __init__(self, message: str) -> None:
        # RFC 6750: say why, without echoing anything the client sent.
        quoted = message.replace("\\", "\\\\").replace('"', "'")
        super().__init__(
            message,
            headers={
                "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{quoted}"'
            },
        )


class Forbidden(ApiError):
    status_code = 403


class NotFound(ApiError):
    status_code = 404


class RequestTimeout(ApiError):
    status_code = 408


class Conflict(ApiError):
    status_code = 409


class PayloadTooLarge(ApiError):
    status_code = 413


class FailedDependency(ApiError):
    status_code = 424


class TooManyRequests(ApiError):
    status_code = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, round(retry_after + 0.5)))})


class ServiceUnavailable(ApiError):
    status_code = 503

    def __init__(self, message: str, retry_after: float = 5) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, round(retry_after)))})


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


# --------------------------------------------------------------------------- remote failures

# How a failed remote command maps to HTTP, first match wins (FirecREST v2's table, extended).
# Clients key on these: pyfirecrest looks for "No such file or directory" in 404 messages and
# falls back to transfer jobs on 408.
_STDERR_STATUS: tuple[tuple[str, type[ApiError]], ...] = (
    ("No such file or directory", NotFound),
    ("Permission denied", Forbidden),
    ("Operation not permitted", Forbidden),
    ("File exists", BadRequest),
    ("invalid user", BadRequest),
    ("invalid group", BadRequest),
    ("Not a directory", BadRequest),
    ("Is a directory", BadRequest),
    ("Directory not empty", BadRequest),
    ("invalid mode", BadRequest),
    # extract of something that is not an archive in the stated compression (tar, gzip, bzip2, xz)
    ("does not look like a tar archive", BadRequest),
    ("not in gzip format", BadRequest),
    ("is not a bzip2 file", BadRequest),
    ("File format not recognized", BadRequest),
    # a compressed archive with compression "none", or compressed twice: tar will not undo it
    ("Archive is compressed", BadRequest),
    # requests that can never succeed as asked: the client must change them
    ("File name too long", BadRequest),
    ("Too many levels of symbolic links", BadRequest),
    ("Argument list too long", BadRequest),
    ("are the same file", BadRequest),  # cp/mv onto itself
    ("into itself", BadRequest),  # cp of a directory into itself
    ("to a subdirectory of itself", BadRequest),  # mv of a directory into itself
    ("cannot overwrite", BadRequest),  # cp/mv: a directory by a file, or the other way round
    ("invalid number of", BadRequest),  # head/tail counts beyond what they can represent
    ("failed to compile regular expression", BadRequest),  # compress matchPattern
    # tar: something else wrote to the tree while it was archived; trying again may succeed
    ("file changed as we read it", Conflict),
)


def command_error(exit_status: int, stderr: str) -> ApiError:
    """The API error for a remote command that exited with ``exit_status``."""
    message = framed(exit_status, stderr)
    if exit_status == 124:
        return RequestTimeout(message)
    for needle, error in _STDERR_STATUS:
        if needle in stderr:
            return error(message)
    return ApiError(message)


# The status of each file-system failure (as _STDERR_STATUS maps the same words).
_FAILURE_STATUS: dict[Failure, type[ApiError]] = {
    Failure.NOT_FOUND: NotFound,
    Failure.PERMISSION_DENIED: Forbidden,
    Failure.NOT_PERMITTED: Forbidden,
    Failure.EXISTS: BadRequest,
    Failure.NOT_A_DIRECTORY: BadRequest,
    Failure.IS_A_DIRECTORY: BadRequest,
    Failure.NOT_EMPTY: BadRequest,
    Failure.NAME_TOO_LONG: BadRequest,
}


def file_error(operation: str, failure: Failure, path: str) -> ApiError:
    """The API error for ``operation`` failing on ``path``, worded as the program FirecREST v2
    runs for it would have worded it (see ``diagnostics``)."""
    return _FAILURE_STATUS[failure](diagnostics.message(operation, failure, path))


def _sftp_failure(exc: Exception) -> Failure | None:
    import asyncssh  # local: keeps this module importable without the SSH stack

    for kind, failure in (
        (asyncssh.SFTPNoSuchFile, Failure.NOT_FOUND),
        (asyncssh.SFTPPermissionDenied, Failure.PERMISSION_DENIED),
        (asyncssh.SFTPFileAlreadyExists, Failure.EXISTS),
        (asyncssh.SFTPNotADirectory, Failure.NOT_A_DIRECTORY),
        (asyncssh.SFTPFileIsADirectory, Failure.IS_A_DIRECTORY),
        (asyncssh.SFTPDirNotEmpty, Failure.NOT_EMPTY),
    ):
        if isinstance(exc, kind):
            return failure
    return None


def sftp_error(exc: Exception, path: str, operation: str | None = None) -> ApiError:
    """The API error for a failed SFTP request on ``path``, made for ``operation`` (worded as
    its program would word it; without one, as ``path: reason``)."""
    import asyncssh

    failure = _sftp_failure(exc)
    if failure is None and isinstance(exc, asyncssh.SFTPBadMessage):
        # OpenSSH's sftp-server answers a name longer than NAME_MAX, or a read at an offset
        # beyond any file, with SSH_FX_BAD_MESSAGE: a request that cannot succeed as asked.
        if operation is None:
            return BadRequest(f"{path}: Invalid argument or file name too long")
        failure = Failure.NAME_TOO_LONG
    if failure is not None:
        if operation is not None:
            return file_error(operation, failure, path)
        return _FAILURE_STATUS[failure](f"{path}: {failure.value}")
    reason = getattr(exc, "reason", "") or type(exc).__name__
    return ApiError(f"{path}: {reason}")
