"""When to send a request again, and how long to wait first.

A request is sent again only when doing so cannot do harm:

* the server was never reached (connection refused, connect timeout), or it refused the request
  before acting on it (429, rate limited): any request;
* the gateway or the server failed in a way that may have happened after the operation ran
  (502, 503, 504, FirecREST v2's 424 for a lost SSH connection, a connection dropped while
  reading the answer): only idempotent requests.

A 429 or 503 ``Retry-After`` is honoured (capped, so a misconfigured server cannot park us for
hours); otherwise the wait grows exponentially with jitter, so that many AiiDA workers that failed
together do not come back together.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

# Never reached the server, or rejected before anything happened.
SAFE_EXCEPTIONS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout)
SAFE_STATUSES = frozenset({429})
# May have happened after the operation ran: only for idempotent requests.
IDEMPOTENT_EXCEPTIONS: tuple[type[Exception], ...] = (
    httpx.ReadError,
    httpx.WriteError,
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.PoolTimeout,
    httpx.RemoteProtocolError,
)
# 424 is FirecREST v2's answer when its SSH connection to the login node was lost or could not
# be opened (this server answers 503 for that); a fresh attempt usually gets a new connection.
IDEMPOTENT_STATUSES = frozenset({424, 502, 503, 504})


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    initial_wait: float = 0.5
    max_wait: float = 30.0
    max_retry_after: float = 120.0
    # Injected so that tests can pin the jitter.
    jitter: Callable[[], float] = field(default=random.random, compare=False)

    def should_retry(
        self,
        *,
        idempotent: bool,
        response: httpx.Response | None = None,
        exception: BaseException | None = None,
    ) -> bool:
        """Whether the outcome of one attempt (an answer, or an exception) is worth retrying."""
        if exception is not None:
            if isinstance(exception, SAFE_EXCEPTIONS):
                return True
            return idempotent and isinstance(exception, IDEMPOTENT_EXCEPTIONS)
        if response is None:
            return False
        if response.status_code in SAFE_STATUSES:
            return True
        return idempotent and response.status_code in IDEMPOTENT_STATUSES

    def wait(self, attempt: int, response: httpx.Response | None = None) -> float:
        """Seconds to sleep after failed attempt number ``attempt`` (1-based)."""
        if response is not None and response.status_code in (429, 503):
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            if retry_after is not None:
                return min(retry_after, self.max_retry_after)
        backoff = min(self.max_wait, self.initial_wait * 2.0 ** (attempt - 1))
        # "Equal jitter": at least half the backoff, so waits still grow.
        return backoff / 2 + self.jitter() * backoff / 2
