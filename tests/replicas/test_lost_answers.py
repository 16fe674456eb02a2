"""Submits and plain mkdirs whose answer dies with a replica, through the plugin's client and
the real balancer: each is settled (looked up, then sent again only if it did not act), never
repeated blindly (issue 15; docs/aiida.md "Behind replicas").

The replica is frozen (SIGSTOP) while the requests go out, so that the balancer hands it some
of them and they are still unanswered when it is killed: they lose their answer before acting.
The client must find that out by looking, and send each once more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
import uuid
from collections import Counter

import pytest

from aiida_firecrest.client import FirecrestClient, client_credentials
from firecrest_dev.info import StackInfo
from firecrest_dev.running import restart_part

from .conftest import haproxy_stats
from .test_aiida_restart import LOST_ANSWER_OUTCOMES

pytestmark = pytest.mark.stack

EACH = 6  # submits, and as many mkdirs


async def _frozen_then_killed(stack: StackInfo, replica: str, requests: asyncio.Future) -> int:
    """Freeze ``replica`` until the balancer has handed it some of ``requests`` (or taken it
    out), then SIGKILL it and start it again; returns how many it held."""
    pid = stack.pids[replica]
    assert os.getpgid(pid) == pid
    os.killpg(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 20
        while True:
            row = haproxy_stats(stack)[replica]
            held = int(row["scur"] or 0)
            if held >= 2 or row["status"] != "UP" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        await asyncio.to_thread(restart_part, stack, replica, signal="KILL", down=0.0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGCONT)
    return held


async def test_lost_submits_and_mkdirs_are_settled_not_repeated(
    replicas: StackInfo, caplog: pytest.LogCaptureFixture
) -> None:
    alice = replicas.users["alice"]
    client = FirecrestClient(
        replicas.url,
        client_credentials(replicas.token_url, alice.client_id, alice.client_secret),
        max_concurrent=2 * EACH,
    )
    system = replicas.system
    base = f"{alice.home}/lost-answers-{uuid.uuid4().hex[:10]}"
    workdirs = [f"{base}/job{i}" for i in range(EACH)]
    made = [f"{base}/made{i}" for i in range(EACH)]
    caplog.set_level(logging.WARNING, logger="aiida_firecrest.client.api")
    try:
        for workdir in workdirs:
            await client.mkdir(system, workdir, parents=True)
        before = haproxy_stats(replicas)["server-2"]
        requests = asyncio.gather(
            *(
                client.submit_job(
                    system,
                    working_directory=workdir,
                    script="#!/bin/bash\ntrue\n",
                    account=replicas.account,
                )
                for workdir in workdirs
            ),
            *(client.mkdir(system, path) for path in made),
        )
        held = await _frozen_then_killed(replicas, "server-2", requests)
        results = await requests
        # HAProxy's count of answers that never came (it may count one request more than once).
        lost = int(haproxy_stats(replicas)["server-2"]["eresp"]) - int(before["eresp"])

        job_ids = results[:EACH]
        listed = await client.list_jobs(system, time_window="1h")
        per_workdir = Counter(
            str(job.get("workingDirectory")).rstrip("/")
            for job in listed
            if str(job.get("workingDirectory")).rstrip("/") in workdirs
        )
        messages = [r.getMessage() for r in caplog.records if "answer lost" in r.getMessage()]
        settled = {
            what: sum(phrase in message for message in messages)
            for what, phrase in LOST_ANSWER_OUTCOMES.items()
        }
        print(
            f"\n{2 * EACH} POSTs, {held} held by the frozen replica when it was killed, "
            f"{lost} answers lost at the balancer; the client settled them: {settled}"
        )
        assert held > 0, "no request met the killed replica"
        assert lost > 0
        # Every POST answered (gather raised nothing): the lost ones settled by the client ...
        assert sum(settled.values()) >= held
        assert len(set(job_ids)) == EACH
        # ... and none ran twice: one job per working directory, the one the caller got.
        assert sorted(per_workdir.values()) == [1] * EACH, per_workdir
        for path in made:
            assert (await client.stat(system, path)).is_dir
    finally:
        with contextlib.suppress(OSError):
            await client.rm(system, base)
        await client.aclose()
