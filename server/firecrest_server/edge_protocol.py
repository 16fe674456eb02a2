"""The HTTP connection protocol: uvicorn's httptools protocol with timeouts and a connection cap.

uvicorn (0.55, httptools) arms a timer only between requests (``timeout_keep_alive``, after a
response): a client that connects and sends nothing, half a request line or half its headers,
or that stops in the middle of a body, holds its connection, its file descriptor and a slot in
``server_state.connections`` for ever (measured on main: 0 of 2,000 half-sent requests closed
within 60 s). Its ``limit_concurrency`` answers 503 in plain text, and only once a request's
headers have arrived.

Why a protocol subclass, not a guard at accept time (event_loop.py): only the protocol sees the
parser's events (a request begun, its headers complete, body bytes, the message complete), and
it is the one place that works with both ``server.event_loop`` choices. The timers cost one
``call_later`` per connection and per request; body bytes only stamp a time, and the body
timer re-arms itself for the time left instead of being reset per chunk.

- **header timeout**: from connecting, or from the first byte of a later request, to the end of
  its headers; past it the connection is closed (no answer: the client may be gone).
- **body timeout**: while the server is ready to read (not while it waits for the app, which
  pauses reading), a body may go that long without a byte; past it the connection is closed.
- **connection cap**: a worker serving more connections than its cap answers the next
  request on a new connection with 503 and ``Retry-After`` in FirecREST's error shape, without
  running the app, and closes it. The cap is kept inside the process's file-descriptor limit
  (raised from the soft to the hard limit at start, see ``raise_fd_limit``), and beyond a hard
  cap that leaves ``fd_reserve // 2`` descriptors for SSH connections and files, a new
  connection is closed at once: the worker refuses, it never fails to open a socket to the
  cluster for lack of descriptors.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from dataclasses import dataclass
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from .config import EdgeLimits
from .http_protocol import JoinedWrites
from .models.errors import ErrorBody
from .server_timing import CONNECTED_AT

log = logging.getLogger("firecrest_server.edge")

# The key of the lifespan state that carries the budget to every connection's protocol.
EDGE_STATE = "firecrest_edge_budget"
OVER_CAPACITY_RETRY_AFTER = 2
# Linux refuses a soft RLIMIT_NOFILE above fs.nr_open (this is its default).
_NR_OPEN_DEFAULT = 1024 * 1024
# A refusal sent before the body was read (401, 413) is followed by a lingering close: the
# server stops sending (FIN) but reads and drops what the client still sends, for at most
# this long and this much. Closed at once, the socket would answer the client's next bytes with
# a reset, and a reset makes the client's kernel drop the refusal it has not read yet: the
# client would see "connection reset" instead of 401 or 413 (measured: 8 of 8 here).
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 * 1024 * 1024


def raise_fd_limit() -> int:
    """Raise the soft file-descriptor limit to the hard one; the soft limit now in force.

    Distributions start services with a soft limit of 1,024 and a much higher hard one: the
    soft limit, not the machine, would decide how many clients a worker can hold.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        try:
            with open("/proc/sys/fs/nr_open") as nr_open:
                target = int(nr_open.read())
        except (OSError, ValueError):
            target = _NR_OPEN_DEFAULT
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the file-descriptor limit to %d: %s", target, exc)
    return soft


@dataclass(frozen=True)
class ConnectionBudget:
    """The limits one worker enforces on its client connections."""

    soft_cap: int  # connections served; above it, 503
    hard_cap: int  # connections held at all; above it, closed at once
    header_timeout: float
    body_timeout: float

    @classmethod
    def derive(cls, limits: EdgeLimits, fd_limit: int) -> ConnectionBudget:
        """The caps for a process allowed ``fd_limit`` open descriptors."""
        if fd_limit == resource.RLIM_INFINITY:
            fd_limit = _NR_OPEN_DEFAULT
        # A limit below the reserve (a misconfigured host) still serves a few clients.
        hard = max(2, fd_limit - limits.fd_reserve // 2)
        soft = max(1, min(limits.max_connections, fd_limit - limits.fd_reserve, hard - 1))
        return cls(soft, hard, limits.header_timeout, limits.body_timeout)


def over_capacity_response(retry_after: int = OVER_CAPACITY_RETRY_AFTER) -> bytes:
    """The complete HTTP response for a connection over the cap, in FirecREST's error shape."""
    body = ErrorBody(
        message="The server has too many open connections; try again later"
    ).model_dump_json(by_alias=True)
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        f"retry-after: {retry_after}\r\n"
        "connection: close\r\n\r\n"
    )
    return (head + body).encode()


class _ReadClock(FlowControl):
    """uvicorn's flow control, remembering when reading was last resumed: the time spent
    paused (waiting for the app to take the body) is not the client's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(transport)
        self._loop = loop
        self.resumed_at = 0.0

    def resume_reading(self) -> None:
        if self.read_paused:
            self.resumed_at = self._loop.time()
        super().resume_reading()


class _LingeringTransport:
    """The transport uvicorn sees: closing it while a request body is still arriving becomes a
    lingering close (see LINGER_SECONDS); everything else goes to the socket's transport."""

    def __init__(self, transport: JoinedWrites, protocol: EdgeProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        # Called for every response: bound here rather than looked up through __getattr__.
        self.write = transport.write
        self.is_closing = transport.is_closing

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def close(self) -> None:
        if self._protocol.in_body and self._transport.can_write_eof():
            self._protocol.linger()
        else:
            self._transport.close()


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's ``http`` protocol for this server (cli.py)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        budget = app_state.get(EDGE_STATE)
        if budget is None:  # an app without our lifespan: the defaults
            budget = ConnectionBudget.derive(
                EdgeLimits(), resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            )
        self.budget: ConnectionBudget = budget
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_seen = 0.0
        self._over_capacity = False
        self.in_body = False  # between a request's headers and the end of its body
        self._awaiting_headers = False  # between a request's first byte and its headers' end
        self._socket: asyncio.Transport | None = None
        self._joined: JoinedWrites | None = None  # set on connection, with _socket
        self._lingering: asyncio.TimerHandle | None = None
        self._lingered_bytes = 0
        self._connected_at = time.perf_counter()  # the worker took the connection

    # ------------------------------------------------------------------ connection

    # asyncio types the argument BaseTransport; a stream connection's is always a Transport
    # (uvicorn's own protocols narrow it the same way).
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._socket = transport
        # uvicorn writes through joined writes (http_protocol.py: a response leaves whole or
        # not at all), which close like a refusal must (_LingeringTransport).
        self._joined = JoinedWrites(transport, self.loop)
        # _LingeringTransport is no asyncio.Transport subclass: it forwards what uvicorn uses.
        super().connection_made(_LingeringTransport(self._joined, self))  # type: ignore[arg-type]
        self.flow = _ReadClock(transport, self.loop)
        open_connections = len(self.connections)
        if open_connections > self.budget.hard_cap:
            log.warning("%d connections open: closing a new one at once", open_connections)
            transport.abort()
            return
        self._over_capacity = open_connections > self.budget.soft_cap
        self._header_timer = self.loop.call_later(
            self.budget.header_timeout, self._header_timed_out
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None:
            self._lingered_bytes += len(data)
            if self._lingered_bytes > LINGER_BYTES:
                self._close_now()
            return  # the rest of a refused body: dropped unparsed
        super().data_received(data)
        # Timers only for what this data left unfinished: a request that arrives whole in one
        # read (nearly all of them) costs no timer at all.
        if self._awaiting_headers and self._header_timer is None:
            self._header_timer = self.loop.call_later(
                self.budget.header_timeout, self._header_timed_out
            )
        if self.in_body and self._body_timer is None and self._lingering is None:
            self._body_timer = self.loop.call_later(self.budget.body_timeout, self._body_timed_out)

    def linger(self) -> None:
        """Close after a refusal: stop sending, drop what still arrives, close when the client
        does or after LINGER_SECONDS."""
        if (
            self._lingering is not None
            or self._socket is None
            or self._joined is None
            or self._socket.is_closing()
        ):
            return
        self._cancel_timers()
        self._joined.flush()  # the refusal itself, before the end of what is sent
        self._socket.write_eof()
        self._socket.resume_reading()
        self._lingering = self.loop.call_later(LINGER_SECONDS, self._close_now)

    def _close_now(self) -> None:
        if self._socket is not None and self._joined is not None and not self._socket.is_closing():
            self._joined.flush()
            self._socket.close()

    def _cancel_timers(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        if self._lingering is not None:
            self._lingering.cancel()

    # ------------------------------------------------------------------ parser events

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # For the Server-Timing header (server_timing.py): the first request's wait includes
        # the worker's own backlog between taking the connection and reading it.
        # uvicorn types scope extensions as ASGI's dicts of dicts; this private key, read back
        # only by middleware.py, carries a float.
        self.scope.setdefault("extensions", {})[CONNECTED_AT] = self._connected_at  # type: ignore[assignment]
        # A later request on a kept-alive connection gets its own header deadline (armed in
        # data_received if its headers do not arrive at once). The first request's deadline
        # runs from connecting, so a byte sent late buys nothing.
        self._awaiting_headers = True

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if self._over_capacity:
            if not self.transport.is_closing():
                self.transport.write(over_capacity_response())
                self.linger()  # a body may follow: let the client read the 503 first
            return
        super().on_headers_complete()
        self.in_body = True
        self._body_seen = self.loop.time()

    def on_body(self, body: bytes) -> None:
        if self._over_capacity:
            return
        self._body_seen = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._over_capacity:
            return
        self.in_body = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    # ------------------------------------------------------------------ timers

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            log.debug("closing a connection that sent no complete request headers in time")
            self._close_now()

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        flow = self.flow
        if flow.read_paused:
            remaining = self.budget.body_timeout  # the app is behind, not the client
        else:
            last = self._body_seen
            if isinstance(flow, _ReadClock):
                last = max(last, flow.resumed_at)
            remaining = self.budget.body_timeout - (now - last)
        if remaining > 0:
            self._body_timer = self.loop.call_later(remaining, self._body_timed_out)
            return
        log.debug("closing a connection whose request body stopped arriving")
        self._close_now()
