"""HTTP errors from a FirecREST server, as Python's ``OSError`` family.

AiiDA reacts to exception *types* (``FileNotFoundError`` is warned about and skipped in remote
copies, ``OSError`` stops a stash quietly, anything else is retried and then pauses the
process), so every failure is one of the builtin ``OSError`` subclasses, chosen from the status
code and the server's message. The message is kept exactly as the server wrote it; status and
request id are attributes, for logs and for callers that need them.

``is_unavailable`` tells the failures that say nothing about the files (the API could not be
used at all) from the others; the transport turns those into a non-``OSError`` where the engine
would otherwise read them as an answer (see ``FirecrestUnavailableError`` in ``transport``).
"""

from __future__ import annotations

import errno
import json

import httpx

from .slurm import TIMEOUT_EXIT_MESSAGE

# FirecREST (and this project's server) put the reason from the cluster in `message`; these
# phrases are what `ls`, `rm`, `cp`, `mkdir`, SFTP and Slurm print, and what clients key on.
_NO_SUCH_FILE = "No such file or directory"
_JOB_NOT_FOUND = "Job not found"


class FirecrestError(OSError):
    """A request to the FirecREST API failed; ``status_code`` is None for network failures."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        request_id: str | None = None,
        errno_value: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.request_id = request_id
        if errno_value is not None:
            self.errno = errno_value

    def __str__(self) -> str:
        return self.message


class FirecrestFileNotFoundError(FirecrestError, FileNotFoundError):
    pass


class FirecrestFileExistsError(FirecrestError, FileExistsError):
    pass


class FirecrestIsADirectoryError(FirecrestError, IsADirectoryError):
    pass


class FirecrestNotADirectoryError(FirecrestError, NotADirectoryError):
    pass


class FirecrestPermissionError(FirecrestError, PermissionError):
    pass


class AuthenticationError(FirecrestPermissionError):
    """No valid access token: the token endpoint refused, or the API answered 401."""


class FirecrestTimeoutError(FirecrestError, TimeoutError):
    """The remote operation ran out of time (HTTP 408), or the server did not answer in time."""


class FirecrestConnectionError(FirecrestError, ConnectionError):
    """The server could not be reached or the connection broke."""


class JobNotFoundError(FirecrestError):
    """The scheduler does not know the job (HTTP 404 "Job not found")."""


class TransferJobError(FirecrestError):
    """A transfer job finished without printing FirecREST's success phrase."""


class EndpointNotFoundError(FirecrestError):
    """The server does not serve this endpoint (a bare 404 "Not Found", the web framework's
    answer for an unknown route): an older or smaller server, not a missing file."""


# Message phrases, first match wins; each gives the exception type and its errno.
_MESSAGE_TYPES: tuple[tuple[str, type[FirecrestError], int], ...] = (
    (_NO_SUCH_FILE, FirecrestFileNotFoundError, errno.ENOENT),
    ("File exists", FirecrestFileExistsError, errno.EEXIST),
    ("Is a directory", FirecrestIsADirectoryError, errno.EISDIR),
    ("Not a directory", FirecrestNotADirectoryError, errno.ENOTDIR),
    ("Directory not empty", FirecrestError, errno.ENOTEMPTY),
    ("Permission denied", FirecrestPermissionError, errno.EACCES),
    ("Operation not permitted", FirecrestPermissionError, errno.EPERM),
)


def classify(status_code: int | None, message: str) -> tuple[type[FirecrestError], int | None]:
    """The exception type (and errno) for a failed request: the pure core of the mapping."""
    if status_code == 401:
        return AuthenticationError, errno.EACCES
    if status_code == 404 and _JOB_NOT_FOUND in message:
        return JobNotFoundError, errno.ESRCH
    if status_code == 404 and message.strip() == "Not Found":
        return EndpointNotFoundError, errno.ENOSYS
    for phrase, error_type, code in _MESSAGE_TYPES:
        if phrase in message:
            return error_type, code
    if status_code == 404:
        return FirecrestFileNotFoundError, errno.ENOENT
    if status_code == 403:
        return FirecrestPermissionError, errno.EACCES
    if status_code == 408 or TIMEOUT_EXIT_MESSAGE in message:
        return FirecrestTimeoutError, errno.ETIMEDOUT
    if status_code == 413:
        return FirecrestError, errno.EFBIG
    return FirecrestError, None


def error_message(response: httpx.Response) -> str:
    """The server's ``message``; for a non-JSON body (a proxy's error page), its start."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, httpx.ResponseNotRead):
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        message: str = body["message"]
        return message
    try:
        text = response.text.strip()
    except httpx.ResponseNotRead:
        text = ""
    return text[:500] or f"HTTP {response.status_code} {response.reason_phrase}".strip()


def error_for_message(
    message: str, *, status_code: int | None = None, request_id: str | None = None
) -> FirecrestError:
    error_type, code = classify(status_code, message)
    return error_type(message, status_code=status_code, request_id=request_id, errno_value=code)


def error_from_response(response: httpx.Response) -> FirecrestError:
    message = error_message(response)
    request_id = response.headers.get("x-request-id")
    error_type, code = classify(response.status_code, message)
    if error_type is EndpointNotFoundError:  # say which endpoint, not just "Not Found"
        request = response.request
        message = f"{request.method} {request.url.path}: the server does not serve this endpoint"
    return error_type(
        message, status_code=response.status_code, request_id=request_id, errno_value=code
    )


def error_from_network(exc: httpx.HTTPError, url: str) -> FirecrestError:
    """A network-level failure (no HTTP answer) as an ``OSError``."""
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return FirecrestTimeoutError(
            f"Timed out talking to {url}: {reason}", errno_value=errno.ETIMEDOUT
        )
    if isinstance(exc, httpx.ConnectError):
        return FirecrestConnectionError(
            f"Cannot reach {url}: {reason}", errno_value=errno.ECONNREFUSED
        )
    # The answer broke off (for a streamed transfer: the server gave up half-way).
    return FirecrestConnectionError(
        f"The connection to {url} broke: {reason}", errno_value=errno.ECONNRESET
    )


# The gateway or the server is failing or overloaded, or (424, FirecREST v2) its SSH connection
# to the cluster is: nothing was learnt about the files.
UNAVAILABLE_STATUSES = frozenset({424, 429, 502, 503, 504})


def is_unavailable(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an error it was raised from, means that the API could not be used at
    all (unreachable, the connection broke, no answer in time, 424/429/502/503/504 after the
    client's retries), rather than being an answer about the files."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, FirecrestConnectionError):
            return True
        if isinstance(exc, FirecrestError):
            if exc.status_code is None and isinstance(exc, TimeoutError):
                return True
            if exc.status_code in UNAVAILABLE_STATUSES:
                return True
        exc = exc.__cause__
    return False


# The answer to a request that went out was lost: a gateway failure (the replica behind it died
# or timed out), or the connection broken or timed out while waiting.
ANSWER_LOST_STATUSES = frozenset({502, 504})
ANSWER_LOST_ERRNOS = frozenset({errno.ECONNRESET, errno.ETIMEDOUT})


def answer_lost(exc: BaseException) -> bool:
    """Whether a failed request may have acted all the same: its answer, not the request, was
    lost. Not for an answer from the server (400, 403, 500, 503 ...: it decided), nor for a
    connection that was never made (refused)."""
    if not isinstance(exc, FirecrestError):
        return False
    if exc.status_code is not None:
        return exc.status_code in ANSWER_LOST_STATUSES
    return exc.errno in ANSWER_LOST_ERRNOS
