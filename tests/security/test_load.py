"""1,000 concurrent clients of two users for 60 s, then a count of what is left behind.

wrk (a C load generator from Debian, installed by `dev/stack install`) keeps 500 connections
open for alice and 500 for bob, each asking in turn for ops/stat, ops/ls and status/systems.
Afterwards the server must still run, and once idle it must hold no more than it did before
plus what its pool is allowed to keep: SSH connections within the pool's bound, no SSH channel
in use, no command left running on the login node, file descriptors back to the baseline
(plus the pooled connections' sockets), and memory near its baseline (taken after a first
15 s burst of the same load: CPython keeps the memory of its high-water mark).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from firecrest_dev.info import StackInfo

from .conftest import ops

pytestmark = [pytest.mark.stack, pytest.mark.slow]

CLIENTS_PER_USER = 500
SECONDS = 60
WARM_UP_SECONDS = 15

# Counts answers by status in each wrk thread and prints them, with wrk's own error counts, as
# one JSON line at the end.
WRK_SCRIPT = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  statuses = {}
  paths = {}
  for p in string.gmatch(os.getenv("LOAD_PATHS"), "[^ ]+") do table.insert(paths, p) end
  i = 0
end
function request()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("statuses")) do
      total[tostring(status)] = (total[tostring(status)] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(total) do table.insert(parts, string.format('"%s": %d', status, n)) end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"statuses": {%s}, "requests": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"timeout": %d, "p50_ms": %.1f, "p99_ms": %.1f, "max_ms": %.1f}\n',
    table.concat(parts, ", "), summary.requests, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for child in _children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def _server_processes(stack: StackInfo) -> list[int]:
    return [stack.pids["server"], *_descendants(stack.pids["server"])]


def _workers(stack: StackInfo) -> set[int]:
    """uvicorn's worker processes (children of the server that are not its resource tracker)."""
    return {
        pid
        for pid in _children(stack.pids["server"])
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    }


def _fds(pids: list[int]) -> int:
    return sum(len(os.listdir(f"/proc/{pid}/fd")) for pid in pids)


def _rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        total += int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]
    return total / 1024


def _ssh_connections(pids: list[int], ssh_port: int) -> int:
    """ESTABLISHED TCP connections from these processes to sshd: their socket inodes, looked
    up in /proc/net/tcp (the server's pooled SSH connections, whatever else runs here).

    Distinct inodes, not lines: the kernel writes /proc/net/tcp a page at a time, and while
    sockets come and go (wrk opening or closing its 1,000) one read can list a range of the
    table twice (seen here: 300 repeated lines in 1 of 1,620 reads during this test's load)."""
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    to_sshd = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state, inode = fields[2], fields[3], fields[9]
        if state == "01" and int(remote.split(":")[1], 16) == ssh_port and inode in inodes:
            to_sshd.add(inode)
    return len(to_sshd)


def _commands_on_the_login_node(sshd_pid: int) -> list[str]:
    """Processes started over SSH that are still running (anything under sshd but sshd)."""
    left = []
    for pid in _descendants(sshd_pid):
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if name != "sshd" and not name.startswith("sshd-"):
            left.append(f"{pid}:{name}")
    return left


def _pool_per_worker(stack: StackInfo, workers: set[int]) -> dict[int, dict[str, float]]:
    """Scrape /metrics on fresh connections until each worker has answered once."""
    seen: dict[int, dict[str, float]] = {}
    for _ in range(400):
        text = httpx.get(f"{stack.url}/metrics", timeout=10).text
        values: dict[str, float] = {}
        pid = None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "firecrest_worker":
                    pid = int(sample.labels["pid"])
                elif sample.name in ("firecrest_ssh_connections", "firecrest_ssh_channels_busy"):
                    values[sample.name] = values.get(sample.name, 0) + sample.value
        assert pid is not None
        seen[pid] = values
        if workers <= set(seen):
            break
    return seen


def _snapshot(stack: StackInfo) -> dict[str, float]:
    pids = _server_processes(stack)
    return {
        "fds": _fds(pids),
        "rss_mib": _rss_mib(pids),
        "ssh_connections": _ssh_connections(pids, stack.ssh_port),
    }


def _wrk_load(
    stack: StackInfo, wrk: str, script: Path, tokens: dict[str, str], seconds: int
) -> tuple[list[dict], int]:
    """Run one wrk per user, CLIENTS_PER_USER connections each, for ``seconds``; their RESULT
    lines, and the most SSH connections the server held meanwhile."""
    runs = []
    for user in tokens:
        home = stack.users[user].home
        paths = " ".join(
            [
                f"{ops(stack)}/stat?path={home}",
                f"{ops(stack)}/ls?path={home}",
                "/status/systems",
            ]
        )
        runs.append(
            subprocess.Popen(
                [
                    wrk,
                    "-t",
                    "1",
                    "-c",
                    str(CLIENTS_PER_USER),
                    "-d",
                    f"{seconds}s",
                    "--timeout",
                    "60s",
                    "-s",
                    str(script),
                    "-H",
                    f"Authorization: Bearer {tokens[user]}",
                    stack.url,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, "LOAD_PATHS": paths},
            )
        )
    peak_ssh = 0
    while any(run.poll() is None for run in runs):
        peak_ssh = max(peak_ssh, _ssh_connections(_server_processes(stack), stack.ssh_port))
        time.sleep(1)
    results = []
    for run in runs:
        output = run.stdout.read() if run.stdout else ""
        assert run.returncode == 0, output
        line = next((ln for ln in output.splitlines() if ln.startswith("RESULT ")), None)
        assert line, output
        results.append(json.loads(line.removeprefix("RESULT ")))
    return results, peak_ssh


def test_1000_clients_for_60_seconds_leave_nothing_behind(
    stack: StackInfo, token_for, tmp_path: Path
) -> None:
    wrk = shutil.which("wrk")
    assert wrk, "wrk is missing: `dev/stack install` installs it"
    script = tmp_path / "load.lua"
    script.write_text(WRK_SCRIPT)
    server_config = json.loads((stack.dir / "server" / "config.yaml").read_text())
    ssh_config = server_config["systems"][0]["ssh"]
    per_user = ssh_config.get("max_connections_per_user", 4)
    users = ("alice", "bob")
    tokens = {user: token_for(user) for user in users}  # fresh for 4 more minutes at least

    # Warm: each worker has its pool and caches, as a server in service would.
    for _ in range(40):
        for user in users:
            with httpx.Client(base_url=stack.url, timeout=30) as client:
                answer = client.get(
                    f"{ops(stack)}/stat",
                    params={"path": stack.users[user].home},
                    headers={"Authorization": f"Bearer {tokens[user]}"},
                )
                assert answer.status_code == 200, answer.text
    # ...and has once served this many clients: CPython keeps the memory of its high-water
    # mark (arenas, sockets' buffers), so the baseline that matters is after a first burst. A
    # leak grows with the requests served and shows as growth over the long run that follows.
    cold = _snapshot(stack)
    _wrk_load(stack, wrk, script, tokens, WARM_UP_SECONDS)
    time.sleep(5)
    workers = _workers(stack)
    before = _snapshot(stack)

    results, peak_ssh = _wrk_load(stack, wrk, script, tokens, SECONDS)

    # No crash: the same processes serve.
    for pid in [stack.pids["server"], *workers]:
        assert Path(f"/proc/{pid}").exists(), f"server process {pid} died under load"
    assert httpx.get(f"{stack.url}/status/liveness", timeout=10).status_code == 200

    statuses: dict[str, int] = {}
    for result in results:
        for status, count in result["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    total = sum(statuses.values())
    errors = {k: sum(r[k] for r in results) for k in ("connect", "read", "write", "timeout")}
    print(
        f"\n{2 * CLIENTS_PER_USER} clients x {SECONDS} s: {total} answers {statuses}, "
        f"socket errors {errors}, P50 {max(r['p50_ms'] for r in results):.0f} ms, "
        f"P99 {max(r['p99_ms'] for r in results):.0f} ms, peak SSH connections {peak_ssh}"
    )
    assert total > 2 * CLIENTS_PER_USER  # every client got answers
    assert set(statuses) <= {"200", "429"}, statuses  # 429 only by policy
    assert errors["connect"] == errors["read"] == errors["write"] == 0, errors
    # wrk gives up on a request after 60 s, twice the command timeout. With two wrk processes,
    # two workers and sshd on 2 cores the server runs ~3x over capacity, and a few answers
    # (well under 1 %) can take that long; latency itself is measured by benchmarks/api.py.
    assert errors["timeout"] < total / 100, errors

    # Idle again: what is left must be what the pool may keep, nothing more.
    time.sleep(5)
    after = _snapshot(stack)
    print(f"cold   {cold}\nbefore {before}\nafter  {after}")
    pools = _pool_per_worker(stack, workers)
    assert workers <= set(pools), (workers, pools)
    assert all(p["firecrest_ssh_channels_busy"] == 0 for p in pools.values()), pools
    bound = len(workers) * len(users) * per_user
    # sshd also sees each worker's health probes, which log in as the probe account over a pool
    # of their own (one connection per system); the pool metric counts callers only.
    probe_connections = len(workers)
    assert peak_ssh <= bound + probe_connections, (peak_ssh, bound, probe_connections)
    assert after["ssh_connections"] <= bound + probe_connections, after
    assert sum(p["firecrest_ssh_connections"] for p in pools.values()) <= bound
    assert _commands_on_the_login_node(stack.pids["sshd"]) == []
    # Each pooled SSH connection is one socket of a worker; nothing else may stay open.
    opened = after["ssh_connections"] - before["ssh_connections"]
    assert after["fds"] <= before["fds"] + max(0, opened) + 10, (before, after)
    # CPython keeps some freed memory in its arenas; growth beyond this would be a leak that
    # scales with the requests served.
    assert after["rss_mib"] - before["rss_mib"] < 96, (before, after)
