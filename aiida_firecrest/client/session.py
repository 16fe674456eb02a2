"""One HTTP session with a FirecREST server: auth, a cap on concurrent requests, retries, errors.

Everything above this layer sends a request and gets either a successful ``httpx.Response`` or an
``OSError`` subclass from ``errors``; nothing above it sees httpx exceptions or status codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any

import httpx
import tenacity

from .. import __version__
from .auth import TokenSource
from .errors import FirecrestError, error_from_network, error_from_response
from .retry import RetryPolicy

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=300.0, write=300.0, pool=None)
DEFAULT_MAX_CONCURRENT = 8

# A request body: bytes, or a function giving a fresh stream of chunks for each attempt.
Content = bytes | Callable[[], AsyncIterator[bytes]]


@functools.cache
def default_tls_context() -> ssl.SSLContext:
    """httpx's default TLS settings (certifi's CAs), made once per process and shared: making
    them costs ~55 ms of CPU (loading the CA bundle), and AiiDA opens a transport, hence a
    client, for every batch of tasks. The context holds no per-connection state."""
    return httpx.create_ssl_context()


class ApiSession:
    """Sends requests to ``base_url`` with a bearer token; owns its httpx client."""

    def __init__(
        self,
        base_url: str,
        auth: TokenSource,
        *,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        verify: bool | str = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.base_url = base_url.rstrip("/")
        self._auth = auth
        self._retry = retry or RetryPolicy()
        self._semaphore = asyncio.Semaphore(max_concurrent)
        self._http = httpx.AsyncClient(
            timeout=timeout,
            verify=default_tls_context() if verify is True else verify,
            transport=transport,
            headers={"User-Agent": f"aiida-firecrest/{__version__}"},
            follow_redirects=False,
        )

    @property
    def http(self) -> httpx.AsyncClient:
        """The underlying httpx client (its event hooks let tests watch the traffic)."""
        return self._http

    async def aclose(self) -> None:
        await self._http.aclose()

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    # ------------------------------------------------------------------------------ requests

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        files: Any = None,
        content: Content | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool,
        expected: Collection[int] = (200,),
    ) -> httpx.Response:
        """Send a request and read its body; raise the mapped ``OSError`` unless ``expected``.

        A streamed body is given as a function that returns a fresh iterator, so that every
        attempt sends the whole body.
        """

        async def build() -> httpx.Request:
            return await self._build(
                method,
                path,
                params=params,
                json=json,
                files=files,
                content=content() if callable(content) else content,
                headers=headers,
            )

        async def attempt() -> httpx.Response:
            async with self._semaphore:
                return await self._send(build, stream=False)

        response = await self._with_retries(attempt, idempotent=idempotent)
        if response.status_code not in expected:
            raise error_from_response(response)
        return response

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        idempotent: bool = True,
        expected: Collection[int] = (200,),
    ) -> AsyncIterator[httpx.Response]:
        """A response whose body is read by the caller; holds a request slot until closed.

        Retries happen only before the body starts: a transfer that breaks half-way raises.
        """

        async def build() -> httpx.Request:
            return await self._build(method, path, params=params)

        async def attempt() -> httpx.Response:
            await self._semaphore.acquire()
            try:
                response = await self._send(build, stream=True)
            except BaseException:
                self._semaphore.release()
                raise
            if response.status_code not in expected:
                # The error body is small; read it so it can be reported, and free the slot.
                try:
                    await response.aread()
                finally:
                    await response.aclose()
                    self._semaphore.release()
            return response

        response = await self._with_retries(attempt, idempotent=idempotent)
        if response.status_code not in expected:
            raise error_from_response(response)
        try:
            yield response
        except httpx.HTTPError as exc:
            raise error_from_network(exc, self.url(path)) from None
        finally:
            await response.aclose()
            self._semaphore.release()

    # ------------------------------------------------------------------ presigned URLs (S3)

    async def presigned_request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | str | AsyncIterator[bytes] | None = None,
        headers: dict[str, str] | None = None,
        what: str,
    ) -> httpx.Response:
        """A request to an absolute presigned URL (``what`` names its service in errors).

        It carries no FirecREST token (the URL is the credential), takes no slot of the
        concurrency cap (it does not load the API), and is not retried (a body stream is read
        once); a failure is raised as the mapped ``OSError``."""
        try:
            response = await self._http.request(method, url, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise error_from_network(exc, what) from None
        if response.status_code >= 400:
            raise error_from_response(response)
        return response

    @contextlib.asynccontextmanager
    async def presigned_stream(self, url: str, *, what: str) -> AsyncIterator[httpx.Response]:
        """A GET of an absolute presigned URL whose body the caller reads (see
        ``presigned_request``); a failure, also half-way through the body, is the mapped
        ``OSError``."""
        try:
            async with self._http.stream("GET", url) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise error_from_response(response)
                yield response
        except httpx.HTTPError as exc:
            raise error_from_network(exc, what) from None

    # ------------------------------------------------------------------------------ plumbing

    async def _build(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        files: Any = None,
        content: bytes | AsyncIterator[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Request:
        token = await self._auth.token(self._http)
        return self._http.build_request(
            method,
            self.url(path),
            params=_query(params),
            json=json,
            files=files,
            content=content,
            headers={**(headers or {}), "Authorization": f"Bearer {token}"},
        )

    async def _send(
        self, build: Callable[[], Awaitable[httpx.Request]], *, stream: bool
    ) -> httpx.Response:
        response = await self._http.send(await build(), stream=stream)
        if response.status_code == 401:
            # The token may have been revoked or expired early: one more try with a fresh one
            # (and a fresh request, whose streamed body has not been consumed).
            await response.aclose()
            self._auth.invalidate()
            response = await self._http.send(await build(), stream=stream)
        return response

    async def _with_retries(self, attempt: Any, *, idempotent: bool) -> httpx.Response:
        policy = self._retry

        def retryable(state: tenacity.RetryCallState) -> bool:
            outcome = state.outcome
            assert outcome is not None
            if outcome.failed:
                return policy.should_retry(idempotent=idempotent, exception=outcome.exception())
            return policy.should_retry(idempotent=idempotent, response=outcome.result())

        def wait(state: tenacity.RetryCallState) -> float:
            outcome = state.outcome
            response = None if outcome is None or outcome.failed else outcome.result()
            return policy.wait(state.attempt_number, response)

        def give_up(state: tenacity.RetryCallState) -> httpx.Response:
            assert state.outcome is not None
            last: httpx.Response = state.outcome.result()  # or re-raise the last exception
            return last

        def report(state: tenacity.RetryCallState) -> None:
            outcome = state.outcome
            assert outcome is not None
            what = (
                repr(outcome.exception())
                if outcome.failed
                else f"HTTP {outcome.result().status_code}"
            )
            # A warning: an operator watching a daemon log should see that the API misbehaved,
            # even when a retry hid it from the calculations.
            log.warning(
                "FirecREST request failed (%s); attempt %d of %d, retrying in %.1f s",
                what,
                state.attempt_number,
                policy.attempts,
                state.upcoming_sleep,
            )

        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(policy.attempts),
            retry=retryable,
            wait=wait,
            before_sleep=report,
            retry_error_callback=give_up,
            reraise=True,
        )
        try:
            return await retrying(attempt)
        except FirecrestError:
            raise
        except httpx.HTTPError as exc:
            raise error_from_network(exc, _url_of(exc, self.base_url)) from None


def _query(params: dict[str, Any] | None) -> dict[str, Any] | None:
    """Drop None values and spell booleans as FirecREST expects (true/false)."""
    if not params:
        return None
    query: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        query[key] = ("true" if value else "false") if isinstance(value, bool) else value
    return query


def _url_of(exc: httpx.HTTPError, fallback: str) -> str:
    try:
        return str(exc.request.url.copy_with(query=None))
    except RuntimeError:  # raised before a request was attached
        return fallback
