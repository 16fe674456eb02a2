"""One big file down through the AiiDA plugin's own code path vs. raw SFTP, side by side.

    .venv/bin/python benchmarks/download.py [--stack DIR/stack.json] [--size 1G] [--rounds 3]
                                            [--ways direct,staged,raw] [--profile DIR]
                                            [--json out.json] [--plot out.png]

A file of ``--size`` random bytes is made in alice's home on the cluster, then fetched in
``--rounds`` rounds, each way once per round and the order rotated from round to round, so that
every way sees the same machine:

- **direct**: ``FirecrestTransport.get_async`` (the transport AiiDA opens, nothing else), against a
  one-worker server whose ``max_ops_file_size`` admits the file: one ``ops/download``;
- **staged**: the same call against a one-worker server with the stack's limit (5 MiB, as
  FirecREST's default): the direct try answers 413, then ``transfer/download``, the transfer job,
  and the presigned URL streamed from the server's own S3-style endpoint;
- **raw**: asyncssh SFTP ``get`` of the same file over an already-open connection as alice (a
  certificate minted from the stack's CA, the server pool's cipher preference).

Each transfer runs in a child process of its own that sets up (imports, connection, token) before
it is timed, so its CPU time and peak RSS are the client's alone: CPU seconds per GiB of the
client, the API server and sshd (from /proc, as in transfer.py), the client's VmRSS before the
transfer and VmHWM after it, the server's RSS sampled every 0.1 s. The plugin's clients run on
asyncio's own event loop, as in an AiiDA daemon; raw SFTP on uvloop, the faster of the two for
asyncssh (so the ratio does not flatter the plugin). Every copy's sha256 is checked.

``--profile DIR`` also records py-spy flame graphs of the client and of the server during the
first round (py-spy must be installed: ``pip install py-spy``).

Without --stack it starts a stack of its own and stops it afterwards. Nothing here asserts a
timing: the ratios measured in the same run are what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import posixpath
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from transfer import (
    RssSampler,
    load_average,
    parse_size,
    raw_connection,
    read_rss,
    remote_sha256,
    sha256_file,
)

from firecrest_dev.aiida_env import computer_settings
from firecrest_dev.info import StackInfo
from firecrest_dev.own_server import own_server
from firecrest_dev.running import running_stack

from proc_cpu import process_cpu, tree_cpu

MiB = 1024 * 1024
GiB = 1024 * MiB
WAYS = ("direct", "staged", "raw", "baseline")
LABELS = {
    "baseline": "plugin from --baseline-plugin, direct",
    "direct": "plugin, direct ops/download",
    "staged": "plugin, staged (transfer job + S3 URL)",
    "raw": "raw asyncssh SFTP get",
}
# py-spy from the PATH, or installed next to this Python (pip install py-spy into the venv).
PY_SPY = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
# In the run's remote directory: its modification time is the run's start.
STARTED = ".started"
# The limit a staged run's server keeps: FirecREST's default.
STAGED_LIMIT = 5 * MiB


# ------------------------------------------------------------------------------ the child side


def _own_memory() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process, in bytes."""
    return read_rss(os.getpid()), read_rss(os.getpid(), "VmHWM")


async def _child(args: argparse.Namespace) -> None:
    """Set up, say "ready", wait for "go" on stdin, fetch the file, print the figures as one
    JSON line, and close the connection only on "close": the parent reads sshd's CPU while
    the SSH session (raw) still exists."""
    stack = StackInfo.load(Path(args.stack))
    loop = asyncio.get_running_loop()

    async def wait_for(word: str) -> None:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if line.strip() != word:
            raise SystemExit(f"expected {word!r}, got {line!r}")

    async def timed(transfer) -> None:
        print("ready", flush=True)
        await wait_for("go")
        rss_before, _ = _own_memory()
        cpu0, t0 = time.process_time(), time.perf_counter()
        await transfer
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        _, peak = _own_memory()
        figures = {"seconds": seconds, "cpu_s": cpu, "rss_before": rss_before, "rss_peak": peak}
        print(json.dumps(figures), flush=True)
        await wait_for("close")

    if args.child == "raw":
        async with raw_connection(stack) as conn, conn.start_sftp_client() as sftp:
            await timed(sftp.get(args.remote, args.local))
        return
    from aiida_firecrest.transport import FirecrestTransport

    module = sys.modules["aiida_firecrest"].__file__
    if args.child == "baseline" and not str(module).startswith(args.baseline_plugin):
        raise SystemExit(f"the baseline plugin was not imported: {module}")
    settings = computer_settings(stack, url=args.server)
    transport = FirecrestTransport(machine="benchmark", **settings)
    await transport.open_async()
    try:
        # The token and the HTTP connection, as in a transport that has already worked.
        await transport.whoami_async()
        await timed(transport.get_async(args.remote, args.local))
    finally:
        await transport.close_async()


def child_main(args: argparse.Namespace) -> int:
    if args.child == "raw":
        import uvloop

        uvloop.run(_child(args))
    else:
        asyncio.run(_child(args))
    return 0


# ----------------------------------------------------------------------------- the parent side


@contextlib.contextmanager
def py_spy(pid: int, out: Path, *, subprocesses: bool = False):
    """``py-spy record`` of ``pid`` (native frames off, idle off) until the block ends."""
    command = [PY_SPY or "py-spy", "record", "--pid", str(pid), "--output", str(out)]
    command += ["--format", "raw", "--rate", "200"]
    if subprocesses:
        command.append("--subprocesses")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)  # attached before the transfer starts
        yield
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def one_transfer(
    way: str,
    args: argparse.Namespace,
    stack: StackInfo,
    server: dict[str, tuple[str, int]],
    logs: dict[str, Path],
    remote: str,
    local: Path,
    digest: str,
    profile: Path | None,
) -> dict:
    """Fetch ``remote`` once the ``way`` way in a child process; its figures and the servers'."""
    url, server_pid = server.get(way, ("", 0))
    command = [sys.executable, __file__, "--child", way, "--stack", str(stack.dir / "stack.json")]
    command += ["--server", url, "--remote", remote, "--local", str(local)]
    env = None
    if way == "baseline":
        command += ["--baseline-plugin", args.baseline_plugin]
        # Another checkout's aiida_firecrest ahead of this one's: its code, the same server.
        path = [args.baseline_plugin, os.environ.get("PYTHONPATH", "")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}
    child = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        ready = child.stdout.readline()
        if ready.strip() != "ready":
            raise RuntimeError(f"{way}: the child did not get ready: {ready!r}")
        sampler = RssSampler(server_pid) if server_pid else None
        if sampler:
            sampler.start()
        log = logs.get(way)
        log_start = log.stat().st_size if log else 0
        sshd0 = tree_cpu(stack.pids["sshd"])
        server0 = process_cpu(server_pid) if server_pid else 0.0
        measured: dict = {}
        with contextlib.ExitStack() as profiling:
            if profile is not None:
                profiling.enter_context(py_spy(child.pid, profile / f"{way}-client.txt"))
                if server_pid:
                    profiling.enter_context(py_spy(server_pid, profile / f"{way}-server.txt"))
            with sampler.phase(measured) if sampler else contextlib.nullcontext():
                child.stdin.write("go\n")
                child.stdin.flush()
                answer = child.stdout.readline()
        if sampler:
            sampler.stop()
        server_cpu = process_cpu(server_pid) - server0 if server_pid else 0.0
        sshd1 = tree_cpu(stack.pids["sshd"])
        child.stdin.write("close\n")
        child.stdin.flush()
        if child.wait(timeout=60) != 0:
            raise RuntimeError(f"{way}: the child failed: {answer!r}")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    result = json.loads(answer)
    result["server_cpu_s"] = server_cpu
    result["sshd_cpu_s"] = sum(cpu - sshd0.get(pid, 0.0) for pid, cpu in sshd1.items())
    result["server_rss"] = measured.get("rss")
    result["requests"] = access_log(log, log_start) if log else []
    result["staged"] = any(r.startswith("GET /staging/") for r in result["requests"])
    result["sha256_ok"] = sha256_file(local) == digest
    local.unlink()
    return result


def access_log(log: Path, start: int) -> list[str]:
    """The requests the server logged from byte ``start`` of its log on, as "METHOD /path
    STATUS" with the staging token in a path replaced by "<token>" (it is a credential)."""
    with log.open("rb") as f:
        f.seek(start)
        lines = f.read().decode(errors="replace").splitlines()
    requests = []
    for line in lines:
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if entry.get("logger") == "firecrest_server.access":
                parts = entry["message"].split("/")
                if len(parts) > 2 and parts[1] == "staging":
                    parts[2] = "<token>"
                requests.append("/".join(parts))
    return requests


def summarize(runs: list[dict], size: int) -> dict:
    gib = size / GiB
    cpu = {
        "client": statistics.median(r["cpu_s"] for r in runs) / gib,
        "server": statistics.median(r["server_cpu_s"] for r in runs) / gib,
        "sshd": statistics.median(r["sshd_cpu_s"] for r in runs) / gib,
    }
    cpu["total"] = sum(cpu.values())
    rss = [r["server_rss"] for r in runs if r["server_rss"]]
    return {
        "mib_s": statistics.median(size / MiB / r["seconds"] for r in runs),
        "seconds": statistics.median(r["seconds"] for r in runs),
        "cpu_s_per_gib": cpu,
        "client_rss_before_mib": max(r["rss_before"] for r in runs) / MiB,
        "client_rss_peak_mib": max(r["rss_peak"] for r in runs) / MiB,
        "client_rss_growth_mib": max(r["rss_peak"] - r["rss_before"] for r in runs) / MiB,
        "server_rss_growth_mib": max((m["growth_mib"] for m in rss), default=None),
        "sha256_ok": all(r["sha256_ok"] for r in runs),
        "staged": [r["staged"] for r in runs],
        "runs": runs,
    }


async def make_remote_file(stack: StackInfo, path: str, size: int) -> str:
    """``size`` random bytes at ``path`` on the cluster (written there, not sent); sha256."""
    async with raw_connection(stack) as conn:
        command = f"head -c {size} /dev/urandom > {shlex.quote(path)}"
        await conn.run(command, check=True)
        return await remote_sha256(conn, path)


async def remove_remote(stack: StackInfo, path: str) -> None:
    """Remove ``path`` and the logs of the transfer jobs the staged runs made since it was
    created (the server writes them to alice's home, as FirecREST v2 does)."""
    home = stack.users["alice"].home
    async with raw_connection(stack) as conn:
        since = posixpath.join(path, STARTED)
        pattern = ".f7t_file_handling_job*"
        logs = shlex.join(
            ["find", home, "-maxdepth", "1", "-name", pattern, "-newer", since, "-delete"]
        )
        await conn.run(logs, check=True)
        await conn.run(shlex.join(["rm", "-rf", "--", path]), check=True)


def run(stack: StackInfo, args: argparse.Namespace, work: Path) -> dict:
    remote_dir = f"{stack.users['alice'].home}/fcbench-download-{secrets.token_hex(4)}"
    remote = posixpath.join(remote_dir, "big.bin")
    local = work / "big.down"
    ways = [w for w in WAYS if w in args.ways]
    servers: dict[str, tuple[str, int]] = {}
    logs = {
        "direct": work / "direct" / "server.log",
        "baseline": work / "direct" / "server.log",
        "staged": work / "staged" / "server.log",
    }
    with contextlib.ExitStack() as running:
        for name in ("direct", "staged"):
            (work / name).mkdir()
        if "direct" in ways or "baseline" in ways:
            overrides = {"data_operation": {"max_ops_file_size": args.size + MiB}}
            direct = running.enter_context(own_server(stack, work / "direct", None, overrides))
            servers["direct"] = servers["baseline"] = (direct.url, direct.pid)
        if "staged" in ways:
            # Below the file's size however small the file (the tests' tiny mode).
            limit = min(STAGED_LIMIT, args.size // 2)
            overrides = {"data_operation": {"max_ops_file_size": limit}}
            staged = running.enter_context(own_server(stack, work / "staged", None, overrides))
            servers["staged"] = (staged.url, staged.pid)
        asyncio.run(_mkdir(stack, remote_dir))
        try:
            print(f"writing {args.size / MiB:.0f} MiB of random bytes to {remote} ...", flush=True)
            digest = asyncio.run(make_remote_file(stack, remote, args.size))
            result: dict = {"size_bytes": args.size, "rounds": args.rounds, "sha256": digest}
            result["load_before"] = load_average()
            runs: dict[str, list[dict]] = {w: [] for w in ways}
            for i in range(args.rounds):
                order = ways[i % len(ways) :] + ways[: i % len(ways)]
                for way in order:
                    profile = args.profile if (args.profile and i == 0) else None
                    measured = one_transfer(
                        way, args, stack, servers, logs, remote, local, digest, profile
                    )
                    runs[way].append(measured)
                print(
                    f"  round {i + 1}/{args.rounds} ({', '.join(order)}): "
                    + ", ".join(
                        f"{w} {args.size / MiB / runs[w][-1]['seconds']:.1f} MiB/s" for w in ways
                    )
                    + f"; load {load_average()}",
                    flush=True,
                )
            result["load_after"] = load_average()
        finally:
            asyncio.run(remove_remote(stack, remote_dir))
    result["ways"] = {w: summarize(runs[w], args.size) for w in ways}
    if "raw" in ways:
        raw = result["ways"]["raw"]
        for way in ways:
            if way == "raw":
                continue
            row = result["ways"][way]
            row["over_raw_mib_s"] = row["mib_s"] / raw["mib_s"]
            # Each round's ratio, against the raw run of the same round.
            row["over_raw_per_round"] = [
                r["seconds"] and raw_run["seconds"] / r["seconds"]
                for r, raw_run in zip(row["runs"], raw["runs"], strict=True)
            ]
    return result


async def _mkdir(stack: StackInfo, path: str) -> None:
    """``path``, with a file whose time says when the run began (``remove_remote``)."""
    async with raw_connection(stack) as conn:
        await conn.run(shlex.join(["mkdir", "-m", "700", "--", path]), check=True)
        await conn.run(shlex.join(["touch", "--", posixpath.join(path, STARTED)]), check=True)


def print_report(result: dict) -> None:
    print(
        f"\n{result['size_bytes'] / MiB:.0f} MiB down, median of {result['rounds']} rounds; "
        f"load {result['load_before']} -> {result['load_after']}"
    )
    print(
        "way                                      |   MiB/s | / raw | CPU s/GiB client server "
        "  sshd  total | client RSS MiB before -> peak | sha256"
    )
    print("-" * 132)
    for way, row in result["ways"].items():
        c = row["cpu_s_per_gib"]
        ratio = f"{row['over_raw_mib_s']:5.2f}" if "over_raw_mib_s" in row else "     "
        print(
            f"{LABELS[way]:<40} | {row['mib_s']:7.1f} | {ratio} |          {c['client']:6.2f} "
            f"{c['server']:6.2f} {c['sshd']:6.2f} {c['total']:6.2f} | "
            f"{row['client_rss_before_mib']:8.1f} -> {row['client_rss_peak_mib']:7.1f}"
            f"            | {'ok' if row['sha256_ok'] else 'BAD'}"
        )
    for way, row in result["ways"].items():
        if "over_raw_per_round" in row:
            rounds = ", ".join(f"{r:.2f}" for r in row["over_raw_per_round"])
            print(f"{way} / raw per round: {rounds}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", help="stack.json of a running stack (default: start one)")
    parser.add_argument("--size", type=parse_size, default=GiB, help="file size (default 1G)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each way once per round")
    parser.add_argument(
        "--ways", default="direct,staged,raw", help="comma-separated subset of direct,staged,raw"
    )
    parser.add_argument(
        "--baseline-plugin",
        help="a directory holding another aiida_firecrest package (e.g. `git archive main "
        "aiida_firecrest | tar -x -C DIR`): adds the way 'baseline', its direct download",
    )
    parser.add_argument("--workdir", default="/tmp", help="where the local copies go")
    parser.add_argument("--profile", type=Path, help="py-spy flame graphs of round 1 into DIR")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--plot", help="also draw them into this PNG file (needs matplotlib)")
    # The child process's own arguments (one transfer).
    parser.add_argument("--child", choices=WAYS, help=argparse.SUPPRESS)
    parser.add_argument("--server", help=argparse.SUPPRESS)
    parser.add_argument("--remote", help=argparse.SUPPRESS)
    parser.add_argument("--local", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(args)
    args.ways = [w.strip() for w in args.ways.split(",") if w.strip()]
    if args.baseline_plugin:
        args.ways.append("baseline")
    elif "baseline" in args.ways:
        parser.error("the way 'baseline' needs --baseline-plugin DIR")
    unknown = set(args.ways) - set(WAYS)
    if unknown:
        parser.error(f"unknown ways {sorted(unknown)}; choose from {', '.join(WAYS)}")
    if args.profile is not None:
        if PY_SPY is None:
            parser.error("--profile needs py-spy on the PATH (pip install py-spy)")
        args.profile.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fcbench-download-", dir=args.workdir))
    try:
        with running_stack(args.stack) as stack:
            print(f"downloads on stack {stack.dir}, load {load_average()}", flush=True)
            result = run(stack, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"benchmark": "download", "cpus": os.cpu_count(), **result}
    print_report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if args.plot:
        from plots import download_figure

        download_figure(result, Path(args.plot))
    return 0


if __name__ == "__main__":
    sys.exit(main())
