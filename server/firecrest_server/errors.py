"""Every error the API returns, as exceptions that carry their HTTP status.

Operations raise ``ApiError`` subclasses; ``api/errors.py`` is the one place that turns them into
HTTP responses, and ``cluster/failures.py`` the one that maps a failed remote command or SFTP
request to one. Nothing here knows about the web framework.
"""

from __future__ import annotations

from typing import Any


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
