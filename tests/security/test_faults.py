"""Faults of the parts around the server: sshd, slurmctld, the identity provider, the server.

Each test breaks one real part of the session's stack with `dev/stack restart` (SIGKILL by
default, together with every process the part started, so sshd's open sessions die with it)
and checks what users see meanwhile and afterwards. Every part is back when a test ends, so
the tests after these run on a whole stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from firecrest_dev.info import StackInfo
from firecrest_dev.own_server import own_server
from firecrest_dev.running import restart_part, restart_server

from .conftest import bearer, forge, jobs_url, ops

pytestmark = [pytest.mark.stack, pytest.mark.slow]


@dataclass
class Answers:
    """What concurrent clients got: (status, seconds, is JSON, Retry-After) per request."""

    rows: list[tuple[int, float, bool, str | None]] = field(default_factory=list)
    transport_errors: list[str] = field(default_factory=list)

    def statuses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for status, *_ in self.rows:
            counts[status] = counts.get(status, 0) + 1
        return counts


async def _hammer(
    client: httpx.AsyncClient, paths: list[str], stop: asyncio.Event, answers: Answers
) -> None:
    i = 0
    while not stop.is_set():
        path = paths[i % len(paths)]
        i += 1
        t0 = time.monotonic()
        try:
            response = await client.get(path)
        except httpx.HTTPError as exc:
            answers.transport_errors.append(f"{type(exc).__name__}: {exc}")
            continue
        try:
            response.json()
            is_json = True
        except ValueError:
            is_json = False
        answers.rows.append(
            (
                response.status_code,
                time.monotonic() - t0,
                is_json,
                response.headers.get("retry-after"),
            )
        )


async def test_sshd_killed_under_load_pool_recovers(stack: StackInfo, token_for) -> None:
    """30 clients of alice and bob keep asking for stat and ls while sshd is killed with all
    its sessions (the server's pooled connections die) and stays down 4 s.

    Meanwhile every answer is JSON; failures are 503 with Retry-After, never a hang past the
    command timeout. Afterwards every request succeeds again on fresh connections."""
    users = ("alice", "bob")
    clients = {
        user: httpx.AsyncClient(
            base_url=stack.url, headers=bearer(token_for(user)), timeout=httpx.Timeout(90)
        )
        for user in users
    }
    paths = {
        user: [
            f"{ops(stack)}/stat?path={stack.users[user].home}",
            f"{ops(stack)}/ls?path={stack.users[user].home}",
        ]
        for user in users
    }
    answers, stop = Answers(), asyncio.Event()
    try:
        for user in users:  # warm: the pool holds connections that the kill will cut
            assert (await clients[user].get(paths[user][0])).status_code == 200
        workers = [
            asyncio.create_task(_hammer(clients[users[i % 2]], paths[users[i % 2]], stop, answers))
            for i in range(30)
        ]
        await asyncio.sleep(2)
        before_kill = len(answers.rows)
        await asyncio.to_thread(restart_part, stack, "sshd", down=4)
        restarted_at = len(answers.rows)
        await asyncio.sleep(3)
        stop.set()
        await asyncio.gather(*workers)

        statuses = answers.statuses()
        assert not answers.transport_errors, answers.transport_errors[:5]
        assert before_kill > 0
        assert set(statuses) <= {200, 503}, statuses
        assert statuses.get(503, 0) > 0, "the outage was not seen: the test did not test"
        assert all(is_json for _, _, is_json, _ in answers.rows)
        assert all(retry for status, _, _, retry in answers.rows if status == 503)
        # The pool's connect timeout is 10 s and a command's 30 s: nothing may wait past them.
        slowest = max(seconds for _, seconds, _, _ in answers.rows)
        assert slowest < 40, slowest
        print(f"\nsshd outage under load: {statuses}, {restarted_at} answers before the restart")

        # Recovery: the health probe may have marked SSH down (503 until its quick re-probe,
        # at most 15 s); then every request of both users succeeds.
        deadline = time.monotonic() + 40
        while True:
            results = await asyncio.gather(
                *(clients[u].get(p) for u in users for p in paths[u] for _ in range(5))
            )
            codes = [r.status_code for r in results]
            if all(code == 200 for code in codes):
                break
            assert set(codes) <= {200, 503}, [r.text for r in results if r.status_code != 200]
            assert time.monotonic() < deadline, f"no recovery after sshd came back: {codes}"
            await asyncio.sleep(1)
    finally:
        stop.set()
        for client in clients.values():
            await client.aclose()


def test_slurmctld_down_is_503_from_health_and_recovers(
    stack: StackInfo, token_for, tmp_path: Path
) -> None:
    """slurmctld is stopped and stays down 20 s. A server probing every 2 s reports the
    scheduler unhealthy and fast-fails compute and transfer requests with 503 and Retry-After;
    a job running during the outage is not lost; after the restart compute works again."""
    headers = bearer(token_for("alice"))
    with (
        own_server(stack, tmp_path, system_overrides={"probe_interval": 2}) as url,
        httpx.Client(base_url=url, headers=headers, timeout=60) as api,
    ):
        home = stack.users["alice"].home
        job = {
            "job": {
                "name": "survives-outage",
                "workingDirectory": home,
                "script": "#!/bin/bash\nsleep 5\necho survived\n",
                "standardOutput": f"{home}/survives-outage-%j.out",
            }
        }
        submitted = api.post(jobs_url(stack), json=job)
        assert submitted.status_code == 201, submitted.text
        job_id = submitted.json()["jobId"]
        deadline = time.monotonic() + 30  # running: slurmd has it, whatever slurmctld does
        while True:
            listed = api.get(f"{jobs_url(stack)}/{job_id}")
            assert listed.status_code == 200, listed.text
            if listed.json()["jobs"][0]["status"]["state"] == "RUNNING":
                break
            assert time.monotonic() < deadline, listed.text
            time.sleep(0.5)

        # Stopped as an operator would (SIGTERM: slurmctld saves its state on the way out).
        outage = threading.Thread(
            target=restart_part,
            args=(stack, "slurmctld"),
            kwargs={"down": 20, "signal": "TERM"},
            daemon=True,
        )
        outage.start()
        try:
            health: dict = {}
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                systems = api.get("/status/systems").json()["systems"]
                # null until the first probe ran, as in FirecREST v2
                health = {h["serviceType"]: h for h in systems[0]["servicesHealth"] or []}
                if health.get("scheduler", {}).get("healthy") is False:
                    break
                time.sleep(0.5)
            assert health.get("scheduler", {}).get("healthy") is False, (
                "the probe never saw Slurm down"
            )
            t0 = time.monotonic()
            fast_fail = api.get(jobs_url(stack))
            assert fast_fail.status_code == 503, fast_fail.text
            assert "scheduler of system" in fast_fail.json()["message"]
            assert int(fast_fail.headers["retry-after"]) >= 1
            assert time.monotonic() - t0 < 5  # at once, not after Slurm's own timeouts
            transfer_job = api.delete(
                f"/filesystem/{stack.system}/transfer/rm", params={"path": f"{home}/nothing"}
            )
            assert transfer_job.status_code == 503, transfer_job.text
            assert health["ssh"]["healthy"] is True  # only the scheduler is down
        finally:
            outage.join(timeout=120)  # `restart` returns when slurmctld answers again
        assert not outage.is_alive()

        deadline = time.monotonic() + 30  # a failed service is probed again every 2 s here
        while (answer := api.get(jobs_url(stack))).status_code != 200:
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.5)
        # Nothing lost: the job submitted before the outage runs to its end.
        deadline = time.monotonic() + 60
        while True:
            listed = api.get(f"{jobs_url(stack)}/{job_id}")
            assert listed.status_code == 200, listed.text
            state = listed.json()["jobs"][0]["status"]["state"]
            if state == "COMPLETED":
                break
            assert state in ("PENDING", "RUNNING", "COMPLETING"), state
            assert time.monotonic() < deadline, state
            time.sleep(1)
        output = f"{home}/survives-outage-{job_id}.out"
        shown = api.get(f"{ops(stack)}/view", params={"path": output})
        assert shown.json()["output"] == "survived\n"
        api.delete(f"{ops(stack)}/rm", params={"path": output})
    # The session's server may have probed Slurm during the outage too: leave it healthy for
    # the tests that follow (a failing service is probed again within 15 s).
    with httpx.Client(base_url=stack.url, headers=headers, timeout=60) as api:
        deadline = time.monotonic() + 40
        while True:
            systems = api.get("/status/systems").json()["systems"]
            if all(h["healthy"] is not False for h in systems[0]["servicesHealth"] or []):
                break
            assert time.monotonic() < deadline, systems[0]["servicesHealth"]
            time.sleep(1)


def test_identity_provider_down_cached_keys_keep_validating(stack: StackInfo, token_for) -> None:
    """With the OIDC provider killed, tokens it issued before keep working (the server
    validates against its cached JWKS); a token with an unknown key id is still a 401, not a
    500, and does not evict the cached keys."""
    token = token_for("alice")
    stat = f"{ops(stack)}/stat"
    params = {"path": stack.users["alice"].home}

    def fresh_connection_get(headers: dict[str, str]) -> httpx.Response:
        # A new connection each time: every worker must have the keys, not just one.
        with httpx.Client(base_url=stack.url, headers=headers, timeout=30) as client:
            return client.get(stat, params=params)

    for _ in range(20):
        assert fresh_connection_get(bearer(token)).status_code == 200
    outage = threading.Thread(
        target=restart_part, args=(stack, "oidc"), kwargs={"down": 8}, daemon=True
    )
    outage.start()
    try:
        time.sleep(1)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{stack.issuer}/jwks", timeout=5)  # really down
        codes = [fresh_connection_get(bearer(token)).status_code for _ in range(20)]
        assert codes == [200] * 20
        unknown_kid = forge(stack, kid=f"rotated-{uuid.uuid4().hex[:8]}")
        refused = fresh_connection_get(bearer(unknown_kid))
        assert refused.status_code == 401, refused.text
        assert fresh_connection_get(bearer(token)).status_code == 200
    finally:
        outage.join(timeout=60)
    assert not outage.is_alive()
    assert httpx.get(f"{stack.issuer}/jwks", timeout=5).status_code == 200


class _SlowBody:
    """A file-like upload body that sends ``size`` bytes in 256 KiB reads, pausing between
    them, and sets ``half_sent`` once half of it is out."""

    def __init__(self, size: int, pause: float) -> None:
        self.size, self.pause, self.sent = size, pause, 0
        self.half_sent = threading.Event()

    def read(self, n: int = -1) -> bytes:
        if self.sent >= self.size:
            return b""
        chunk = min(256 * 1024, self.size - self.sent, n if n > 0 else self.size)
        self.sent += chunk
        if self.sent >= self.size // 2:
            self.half_sent.set()
        time.sleep(self.pause)
        return b"x" * chunk


@contextlib.contextmanager
def _upload_directory(stack: StackInfo, token: str) -> Iterator[str]:
    directory = f"{stack.users['alice'].home}/crash-upload-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=stack.url, headers=bearer(token), timeout=60) as api:
        assert api.post(f"{ops(stack)}/mkdir", json={"path": directory}).status_code == 201
    try:
        yield directory
    finally:
        with httpx.Client(base_url=stack.url, headers=bearer(token), timeout=60) as api:
            api.delete(f"{ops(stack)}/rm", params={"path": directory})


@pytest.mark.parametrize("kill_after", ["half of the body", "all of the body"])
def test_server_killed_during_an_upload_leaves_no_partial_file(
    stack: StackInfo, token_for, kill_after: str
) -> None:
    """SIGKILL the server (all workers) while a 4 MiB upload is on its way in, or just after
    its last byte (while it is written to the cluster): the target never holds part of it."""
    token = token_for("alice")
    size = 4 * 1024 * 1024  # within the direct-upload limit (max_ops_file_size, 5 MiB)
    with _upload_directory(stack, token) as directory:
        body = _SlowBody(size, pause=0.05 if kill_after.startswith("half") else 0.0)
        outcome: dict[str, object] = {}

        def upload() -> None:
            try:
                with httpx.Client(base_url=stack.url, headers=bearer(token), timeout=60) as api:
                    outcome["response"] = api.post(
                        f"{ops(stack)}/upload",
                        params={"path": directory},
                        files={"file": ("data.bin", body, "application/octet-stream")},
                    )
            except httpx.HTTPError as exc:
                outcome["error"] = exc

        sender = threading.Thread(target=upload, daemon=True)
        sender.start()
        if kill_after.startswith("half"):
            assert body.half_sent.wait(60)
        else:
            while body.sent < size and sender.is_alive():
                time.sleep(0.005)
        restart_server(stack)
        sender.join(timeout=60)
        target = Path(directory) / "data.bin"
        # Read on the cluster's own file system: the test runs on the login node.
        if target.exists():  # the upload may have completed before the kill
            assert target.stat().st_size == size, "a partial file at the target"
            assert outcome.get("response") is not None
        else:
            assert "error" in outcome or outcome["response"].status_code >= 500  # type: ignore[union-attr]
        leftovers = [p.name for p in Path(directory).iterdir() if p.name != "data.bin"]
        # A SIGKILLed server cannot remove its hidden temporary file; it never has the
        # target's name, and nothing is listed as if it were complete.
        assert all(".fcpart-" in name for name in leftovers), leftovers
        print(f"\nkilled after {kill_after}: target exists={target.exists()}, temp={leftovers}")
    # The restarted server serves.
    with httpx.Client(base_url=stack.url, headers=bearer(token), timeout=30) as api:
        assert api.get(f"{ops(stack)}/stat", params={"path": directory + "/.."}).status_code == 200
