"""The workers of one server start serving together.

uvicorn's workers share one listening socket, and each starts accepting as soon as its own
lifespan is done. A worker takes about a second of CPU to import the app and open its runtime;
the first one done answered the liveness probe and then took the whole first burst alone,
while its siblings were still starting on the same cores (benchmarks/cold_burst.py: in 9 of 10
runs one of two workers served 500 new clients, and the burst's P99 was about 500 times one
request's CPU). So a load balancer saw a replica ready that had half its capacity.

Each worker, once started, leaves a mark in a directory the command line made for this server
and waits until every worker has left one, for at most ``server.worker_start_wait`` seconds
(then it serves with those that are ready, and says so). Until then no worker accepts: new
connections wait in the kernel's accept queue, and liveness does not answer. A worker started
later to replace one that died finds the marks of the first start and serves at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

log = logging.getLogger("firecrest_server.worker_start")

# How often a waiting worker looks at the directory: a small fraction of a worker's start.
POLL_SECONDS = 0.02


def mark_started(directory: Path) -> None:
    """Leave this worker's mark (its process id) in ``directory``."""
    (directory / f"worker-{os.getpid()}").touch()


def workers_started(directory: Path) -> int | None:
    """How many workers have marked themselves started; None if ``directory`` is gone."""
    try:
        return sum(1 for entry in directory.iterdir() if entry.name.startswith("worker-"))
    except OSError:
        return None


async def wait_for_all_workers(directory: Path, workers: int, timeout: float) -> int:
    """Mark this worker started, then wait until ``workers`` workers are, at most ``timeout``
    seconds. Returns how many were started when it stopped waiting.

    A directory that has gone (a temporary-file cleaner, long after the first start) must not
    keep a replacement worker from serving: it serves at once and says so."""
    try:
        mark_started(directory)
    except OSError as exc:
        log.warning("cannot mark this worker started in %s (%s); serving at once", directory, exc)
        return 0
    deadline = time.monotonic() + timeout
    while (started := workers_started(directory)) is None or started < workers:
        if started is None:
            log.warning("%s was removed while this worker waited; serving at once", directory)
            return 0
        if time.monotonic() >= deadline:
            log.warning(
                "%d of %d workers started after %.0f s (server.worker_start_wait); "
                "this one serves without waiting longer",
                started,
                workers,
                timeout,
            )
            return started
        await asyncio.sleep(POLL_SECONDS)
    log.info("all %d workers started; serving", workers)
    return started
