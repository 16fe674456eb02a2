"""Where a request's time went, in a ``Server-Timing`` response header (opt-in, for diagnosis).

With ``server.timing_header: true`` every response carries
``Server-Timing: conn;dur=…, auth;dur=…, ssh;dur=…, app;dur=…`` (milliseconds, the W3C
Server-Timing syntax that browsers' developer tools show):

- ``conn``: from the worker taking the TCP connection to the request reaching the app (reading
  and parsing the request, and the wait for the event loop: a busy worker's backlog);
- ``auth``: validating the bearer token (a JWKS fetch included, when one was needed);
- ``ssh``: waiting for a channel slot of the SSH pool (an SSH login included, when one was
  opened for the request);
- ``app``: from the request reaching the app to its response head.

The client's own time minus ``conn`` and ``app`` is what the request spent before the worker
took the connection (the kernel's accept queue) and on the wire. ``benchmarks/cold_burst.py``
reads the header. Off by default: it tells any caller how long the server's steps take.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from .logs import current_request

# The ASGI scope extension under which the edge protocol records when it took the connection.
CONNECTED_AT = "firecrest.connected_at"


@contextlib.contextmanager
def timed(phase: str) -> Iterator[None]:
    """Add the block's duration to ``phase`` of the current request, when timings are on."""
    context = current_request.get()
    if context is None or context.timings is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        timings = context.timings
        timings[phase] = timings.get(phase, 0.0) + time.perf_counter() - started


def header_value(timings: dict[str, float]) -> bytes:
    return ", ".join(
        f"{phase};dur={seconds * 1000:.3f}" for phase, seconds in timings.items()
    ).encode()
