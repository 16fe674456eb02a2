"""Graceful stop of one replica on SIGTERM: fail health first, stop serving later.

uvicorn stops accepting as soon as it gets SIGTERM. Behind a load balancer that is too early:
the balancer still routes new requests here until its health checks fail, and those meet a
closed port (or, with several workers, a listening socket no process accepts on any more). So
each worker's SIGTERM handler is wrapped: the first SIGTERM turns ``draining`` on, which makes
/status/liveness answer 503, keeps serving for ``drain_seconds``, and only then hands the signal
to uvicorn, which stops accepting, waits up to ``shutdown_grace_seconds`` for requests in flight
and runs the lifespan's shutdown (which closes the SSH pools).

With ``workers > 1`` uvicorn's supervisor process gets the signal and sends SIGTERM to every
worker at once, so each worker drains on its own clock; the supervisor waits for them. A worker
often gets SIGTERM twice (from the supervisor, and from whoever signalled the whole process group:
systemd's default KillMode, `dev/stack restart`): further SIGTERMs during the drain change
nothing. SIGINT (uvicorn's own handler, untouched) still stops at once, SIGKILL regardless.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

SignalHandler = Callable[[int, FrameType | None], Any]


class Drain:
    """Whether this process is draining, and the SIGTERM handler that starts it."""

    def __init__(self, drain_seconds: float) -> None:
        self.drain_seconds = drain_seconds
        self.draining = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: SignalHandler | None = None
        self._handed_over = False

    def install(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Wrap the SIGTERM handler the server installed (uvicorn's). Only from the main thread
        (where signals are delivered) and only over a Python handler: an app run by a test
        client or embedded elsewhere keeps its own signal handling."""
        if threading.current_thread() is not threading.main_thread():
            return False
        previous = signal.getsignal(signal.SIGTERM)
        if not callable(previous):
            return False
        self._loop, self._previous = loop, previous
        signal.signal(signal.SIGTERM, self._on_sigterm)
        return True

    def uninstall(self) -> None:
        if self._previous is not None and signal.getsignal(signal.SIGTERM) == self._on_sigterm:
            signal.signal(signal.SIGTERM, self._previous)
        self._previous = None

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        previous, loop = self._previous, self._loop
        if previous is None or loop is None:
            return
        if self.draining:
            return  # already on its way out (see the module's docstring)
        self.draining = True
        if self.drain_seconds <= 0:
            self._hand_over(signum)
            return
        log.info("SIGTERM: failing health checks for %.1f s before stopping", self.drain_seconds)
        # A signal handler runs between two bytecodes of the loop's thread: schedule through
        # the thread-safe call, which also wakes a loop that sleeps in select().
        loop.call_soon_threadsafe(loop.call_later, self.drain_seconds, self._hand_over, signum)

    def _hand_over(self, signum: int) -> None:
        # Once only: uvicorn re-raises every signal it was handed after it has stopped.
        if self._previous is not None and not self._handed_over:
            self._handed_over = True
            log.info("draining done: stopping (requests in flight may finish)")
            self._previous(signum, None)
