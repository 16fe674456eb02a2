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
connections wait in the kernel's accept queue, and liveness does not answer. The first worker
to see every mark removes the directory (so a server that is killed leaves nothing behind);
a sibling that finds it gone, and a worker started later to replace one that died, serve at
once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
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


async def wait_for_all_workers(directory: Path, workers: int, timeout: float) -> bool:
    """Mark this worker started, then wait until ``workers`` workers are, at most ``timeout``
    seconds. True once all have started, False if it stopped waiting at the timeout.

    A directory that is gone means every worker had started (a sibling removed it) or this
    worker replaces one that died: it serves at once."""
    try:
        mark_started(directory)
    except OSError:
        log.info("the workers' start is over (%s is gone); serving", directory)
        return True
    deadline = time.monotonic() + timeout
    while (started := workers_started(directory)) is None or started < workers:
        if started is None:
            log.info("all workers started (a sibling removed %s); serving", directory)
            return True
        if time.monotonic() >= deadline:
            log.warning(
                "%d of %d workers started after %.0f s (server.worker_start_wait); "
                "this one serves without waiting longer",
                started,
                workers,
                timeout,
            )
            return False
        await asyncio.sleep(POLL_SECONDS)
    log.info("all %d workers started; serving", workers)
    shutil.rmtree(directory, ignore_errors=True)
    return True
