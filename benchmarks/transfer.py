"""Moving bytes through the API vs. straight over SSH, measured side by side.

    .venv/bin/python benchmarks/transfer.py [--stack DIR/stack.json] [--quick] [--size 2G]
                                            [--big-repeat N] [--files 1000] [--concurrency 16]
                                            [--tree-repeat 3] [--json out.json] [--plot out.png]

In one run, on the same stack, as user alice:

- **big file**: one file of ``--size`` (default 2 GiB; ``--quick``: 64 MiB, median of 3 runs)
  up through ``POST /filesystem/{system}/ops/upload`` (multipart field ``file``) and down
  through ``GET .../ops/download``, streamed from and to disk by httpx, against a dedicated
  one-worker server (``own_server``) whose ``max_ops_file_size`` admits the file, and the same
  both ways with curl (when installed: a client that is not itself the bottleneck, as wrk is
  for the request benchmark; httpx spends more CPU per byte than the API server); next to it,
  asyncssh SFTP ``put`` and ``get`` of the same file over one already-open connection as alice.
  MiB/s each way and the ratio api / raw; sha256 checked both ways; the server process's RSS
  (VmRSS sampled every 0.1 s: baseline, peak, growth); and CPU seconds per GiB of the client,
  the API server and the sshd side, which depend much less on the machine's load than MiB/s.
- **trees**: ``--files`` small files in 10 directories up through ``PUT .../ops/tree`` (the
  body a tar stream from a temporary file) and down through ``GET .../ops/tree`` (saved, then
  extracted), vs. ``tar -x`` / ``tar -c`` over one raw SSH connection, vs. one API request per
  file (``--concurrency`` at once; mkdir per directory, one recursive ls for the way down).
  Every tree is checked afterwards: names, contents and modes (not modes for per-file uploads,
  which the API does not carry).

Without --stack it starts a stack of its own and stops it afterwards. This machine is shared:
absolute numbers drift, the ratios measured in the same run are what to compare. Nothing here
asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import posixpath
import random
import re
import secrets
import shlex
import shutil
import stat
import statistics
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import httpx

from firecrest_dev.info import StackInfo
from firecrest_dev.own_server import own_server
from firecrest_dev.running import running_stack
from firecrest_server.ssh.pool import MAX_PACKET_SIZE, PREFERRED_CIPHERS

from proc_cpu import process_cpu, tree_cpu

MiB = 1024 * 1024
# Client-side read/write size for the big file; the server's own chunking is what is measured.
CLIENT_CHUNK = 1 * MiB
SIZE_UNITS = {"": 1, "k": 1024, "m": MiB, "g": 1024 * MiB}
FILE_MODES = (0o644, 0o600, 0o640, 0o755, 0o444)
DIR_MODES = (0o755, 0o750, 0o700)


# The raw side uses the server's SSH pool's cipher preference and largest packet: the same
# encryption and packet cost per byte, so a ratio does not flatter the server.
SERVER_CIPHERS = PREFERRED_CIPHERS
SERVER_MAX_PACKET = MAX_PACKET_SIZE


def parse_size(text: str) -> int:
    match = re.fullmatch(r"(\d+)\s*([kmg]?)(?:i?b)?", text.strip().lower())
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 2G, 64M, 1048576)")
    return int(match.group(1)) * SIZE_UNITS[match.group(2)]


# ------------------------------------------------------------------------------ RSS sampling


def read_rss(pid: int, field_name: str = "VmRSS") -> int:
    """``field_name`` of /proc/PID/status, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field_name} for process {pid}")


class RssSampler(threading.Thread):
    """VmRSS of one process every ``interval`` seconds, in a thread, until ``stop()``."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while True:
            with contextlib.suppress(OSError, RuntimeError):
                self.samples.append((time.monotonic(), read_rss(self.pid)))
            if self._stop_event.wait(self.interval):
                return

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    @contextlib.contextmanager
    def phase(self, into: dict) -> Iterator[None]:
        """Baseline right before the block, peak of the samples during it, growth = the two."""
        baseline = read_rss(self.pid)
        t0 = time.monotonic()
        try:
            yield
        finally:
            t1 = time.monotonic()
            during = [rss for t, rss in self.samples if t0 <= t <= t1]
            peak = max([baseline, read_rss(self.pid), *during])
            into["rss"] = {
                "baseline_mib": baseline / MiB,
                "peak_mib": peak / MiB,
                "growth_mib": (peak - baseline) / MiB,
                "samples": len(during),
            }


# ------------------------------------------------------------------------------ CPU accounting


@dataclass
class Meter:
    """Wall time, CPU seconds of the three parties, and the API server's RSS, around a block.

    CPU seconds per GiB hardly depend on how busy the machine is, unlike MiB/s: *client* is
    this process (httpx, or asyncssh for the raw transfers) or the curl it ran and waited for,
    *server* the API server process,
    *sshd* every process under the stack's sshd (session processes, sftp-server, tar).
    """

    server_pid: int
    sshd_pid: int
    sampler: RssSampler

    def _cpu(self) -> tuple[float, float, dict[int, float]]:
        times = os.times()
        return (
            # This process (httpx, asyncssh) and the children it has waited for (curl).
            times.user + times.system + times.children_user + times.children_system,
            process_cpu(self.server_pid),
            tree_cpu(self.sshd_pid),
        )

    @contextlib.contextmanager
    def measure(self, into: dict) -> Iterator[None]:
        client0, server0, sshd0 = self._cpu()
        with self.sampler.phase(into):
            t0 = time.perf_counter()
            yield
            into["seconds"] = time.perf_counter() - t0
        client1, server1, sshd1 = self._cpu()
        into["cpu_s"] = {
            "client": client1 - client0,
            "server": server1 - server0,
            "sshd": sum(cpu - sshd0.get(pid, 0.0) for pid, cpu in sshd1.items()),
        }


# ------------------------------------------------------------------------------- raw SSH side


@contextlib.asynccontextmanager
async def raw_connection(stack: StackInfo) -> AsyncIterator[asyncssh.SSHClientConnection]:
    """One SSH connection as alice, with a certificate minted from the stack's CA (as the
    server does), and the same cipher preference as the server's pool."""
    ca = asyncssh.read_private_key(str(stack.ca_key))
    key = asyncssh.generate_private_key("ssh-ed25519")
    now = int(time.time())
    cert = ca.generate_user_certificate(
        key, "bench", principals=["alice"], valid_after=now - 60, valid_before=now + 6 * 3600
    )
    async with asyncssh.connect(
        stack.ssh_host,
        stack.ssh_port,
        username="alice",
        client_keys=[(key, cert)],
        known_hosts=str(stack.known_hosts),
        agent_path=None,
        encryption_algs=SERVER_CIPHERS,
        max_pktsize=SERVER_MAX_PACKET,
        config=None,
    ) as conn:
        yield conn


async def remote_sha256(conn: asyncssh.SSHClientConnection, path: str) -> str:
    result = await conn.run(shlex.join(["sha256sum", "--", path]), check=True)
    return result.stdout.split()[0]


# ----------------------------------------------------------------------------- local helpers


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(4 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


def make_big_file(path: Path, size: int) -> str:
    """``size`` random bytes at ``path``; returns their sha256."""
    digest = hashlib.sha256()
    with path.open("wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(4 * MiB, left))
            digest.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def make_tree(root: Path, files: int, directories: int = 10, seed: int = 1) -> None:
    """``files`` files of a few hundred bytes in ``directories`` subdirectories, mixed modes."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not security
    root.mkdir()
    dirs = [root / f"d{i:02d}" for i in range(directories)]
    for d in dirs:
        d.mkdir()
    for n in range(files):
        path = dirs[n % directories] / f"f{n:05d}.dat"
        path.write_bytes(rng.randbytes(rng.randint(100, 800)))
        path.chmod(rng.choice(FILE_MODES))
    for i, d in enumerate(dirs):
        d.chmod(DIR_MODES[i % len(DIR_MODES)])


def pack_tree(root: Path, tar_path: Path) -> None:
    """A tar of the tree's contents (not of ``root`` itself), written to a file."""
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in [*dirnames, *sorted(filenames)]:
                path = Path(dirpath) / name
                tar.add(path, arcname=path.relative_to(root).as_posix(), recursive=False)


def local_manifest(root: Path) -> dict[str, tuple[str, str, str]]:
    """relative path -> (type, octal mode, sha256 or "") for everything below ``root``."""
    manifest = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            st = path.lstat()
            kind = "d" if stat.S_ISDIR(st.st_mode) else "f" if stat.S_ISREG(st.st_mode) else "?"
            digest = sha256_file(path) if kind == "f" else ""
            manifest[path.relative_to(root).as_posix()] = (
                kind,
                format(stat.S_IMODE(st.st_mode), "o"),
                digest,
            )
    return manifest


async def remote_manifest(
    conn: asyncssh.SSHClientConnection, root: str
) -> dict[str, tuple[str, str, str]]:
    quoted = shlex.quote(root)
    listing = await conn.run(
        f"cd -- {quoted} && find . -mindepth 1 -printf '%y %m %P\\n'", check=True
    )
    sums = await conn.run(
        f"cd -- {quoted} && find . -type f -print0 | xargs -0 --no-run-if-empty sha256sum",
        check=True,
    )
    digests = {}
    for line in sums.stdout.splitlines():
        digest, name = line.split(None, 1)
        digests[name.removeprefix("./")] = digest
    manifest = {}
    for line in listing.stdout.splitlines():
        kind, mode, name = line.split(" ", 2)
        manifest[name] = (kind, mode, digests.get(name, ""))
    return manifest


def compare(expected: dict, actual: dict, modes: bool = True) -> str:
    """ "ok", or what differs."""
    if not modes:
        expected = {k: (t, d) for k, (t, _, d) in expected.items()}
        actual = {k: (t, d) for k, (t, _, d) in actual.items()}
    if expected == actual:
        return "ok"
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(k for k in set(expected) & set(actual) if expected[k] != actual[k])
    return (
        f"DIFFERS: {len(missing)} missing {missing[:3]}, {len(extra)} extra {extra[:3]}, "
        f"{len(changed)} changed {[(k, expected[k], actual[k]) for k in changed[:3]]}"
    )


async def file_chunks(path: Path, chunk: int = CLIENT_CHUNK) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while data := f.read(chunk):
            yield data


# ---------------------------------------------------------------------------------- the API


@dataclass
class Api:
    client: httpx.AsyncClient
    stack: StackInfo
    _token: str = ""
    _fetched: float = 0.0
    ops: str = field(init=False)

    def __post_init__(self) -> None:
        self.ops = f"/filesystem/{self.stack.system}/ops"

    def headers(self) -> dict[str, str]:
        # Tokens live 600 s; a 2 GiB run takes minutes.
        if time.monotonic() - self._fetched > 240:
            self._token = self.stack.fetch_token("alice")
            self._fetched = time.monotonic()
        return {"Authorization": f"Bearer {self._token}"}

    async def upload_file(self, local: Path, size: int, directory: str, name: str) -> None:
        """A multipart/form-data body streamed from disk: never the whole file in memory."""
        boundary = secrets.token_hex(16)
        head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        async def body() -> AsyncIterator[bytes]:
            yield head
            async for chunk in file_chunks(local):
                yield chunk
            yield tail

        length = len(head) + size + len(tail)
        response = await self.client.post(
            f"{self.ops}/upload",
            params={"path": directory},
            content=body(),
            headers={
                **self.headers(),
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(length),
            },
        )
        _check(response)

    async def curl(self, *args: str) -> None:
        """Run curl against the API (as a child process, waited for: its CPU is counted). The
        token goes in on stdin (``-H @-``), not on the command line other users can read."""
        header = f"Authorization: {self.headers()['Authorization']}\n".encode()
        process = await asyncio.create_subprocess_exec(
            "curl", "--silent", "--show-error", "--fail", "-H", "@-", *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await process.communicate(header)
        if process.returncode != 0:
            raise RuntimeError(f"curl {shlex.join(args)} failed: exit status {process.returncode}")

    async def curl_upload(self, local: Path, directory: str, name: str) -> None:
        url = self.client.base_url.copy_with(path=f"{self.ops}/upload", params={"path": directory})
        await self.curl("-F", f"file=@{local};filename={name}", str(url))

    async def curl_download(self, path: str, local: Path) -> None:
        url = self.client.base_url.copy_with(path=f"{self.ops}/download", params={"path": path})
        await self.curl("-o", str(local), str(url))

    async def upload_small(self, data: bytes, directory: str, name: str) -> None:
        response = await self.client.post(
            f"{self.ops}/upload",
            params={"path": directory},
            files={"file": (name, data, "application/octet-stream")},
            headers=self.headers(),
        )
        _check(response)

    async def download_file(self, path: str, local: Path) -> int:
        size = 0
        async with self.client.stream(
            "GET", f"{self.ops}/download", params={"path": path}, headers=self.headers()
        ) as response:
            _check(response)
            with local.open("wb") as f:
                # As received (httpx re-chunking to CLIENT_CHUNK copies every byte once more).
                async for chunk in response.aiter_raw():
                    f.write(chunk)
                    size += len(chunk)
        return size

    async def download_small(self, path: str) -> bytes:
        response = await self.client.get(
            f"{self.ops}/download", params={"path": path}, headers=self.headers()
        )
        _check(response)
        return response.content

    async def put_tree(self, tar_path: Path, size: int, directory: str) -> None:
        response = await self.client.put(
            f"{self.ops}/tree",
            params={"path": directory},
            content=file_chunks(tar_path),
            headers={
                **self.headers(),
                "Content-Type": "application/x-tar",
                "Content-Length": str(size),
            },
        )
        _check(response)

    async def get_tree(self, directory: str, tar_path: Path) -> None:
        async with self.client.stream(
            "GET", f"{self.ops}/tree", params={"path": directory}, headers=self.headers()
        ) as response:
            _check(response)
            with tar_path.open("wb") as f:
                async for chunk in response.aiter_raw():
                    f.write(chunk)

    async def mkdir(self, path: str) -> None:
        response = await self.client.post(
            f"{self.ops}/mkdir", json={"path": path, "parent": True}, headers=self.headers()
        )
        _check(response)

    async def ls_recursive(self, path: str) -> list[dict]:
        response = await self.client.get(
            f"{self.ops}/ls", params={"path": path, "recursive": "true"}, headers=self.headers()
        )
        _check(response)
        return response.json()["output"]


def _check(response: httpx.Response) -> None:
    if response.status_code >= 400:
        if not response.is_stream_consumed:
            with contextlib.suppress(httpx.StreamError):
                response.read()
        raise RuntimeError(
            f"{response.request.method} {response.request.url}: "
            f"{response.status_code} {response.text[:500]}"
        )


# ------------------------------------------------------------------------------- big file


def summarize(runs: list[dict], size: int) -> dict:
    """Median MiB/s and CPU s/GiB over ``runs``; the worst RSS growth."""
    gib = size / (1024 * MiB)
    cpu = {
        party: statistics.median(r["cpu_s"][party] for r in runs) / gib
        for party in ("client", "server", "sshd")
    }
    cpu["total"] = sum(cpu.values())
    return {
        "mib_s": statistics.median(size / MiB / r["seconds"] for r in runs),
        "cpu_s_per_gib": cpu,
        "sha256_ok": all(r["sha256_ok"] for r in runs),
        "rss": max((r["rss"] for r in runs), key=lambda m: m["growth_mib"]),
        "runs": runs,
    }


async def big_file(
    api: Api,
    conn: asyncssh.SSHClientConnection,
    sftp: asyncssh.SFTPClient,
    meter: Meter,
    work: Path,
    remote: str,
    size: int,
    repeat: int,
) -> dict:
    source = work / "big.bin"
    print(f"writing {size / MiB:.0f} MiB of random bytes to {source} ...", flush=True)
    digest = make_big_file(source, size)
    remote_dir = posixpath.join(remote, "big")
    await sftp.mkdir(remote_dir)
    api_file, raw_file = (
        posixpath.join(remote_dir, "api.bin"),
        posixpath.join(remote_dir, "raw.bin"),
    )
    target = work / "big.down"

    # Warm up: the server's pooled SSH connection and SFTP channel are open before measuring.
    await api.upload_small(b"warm-up", remote_dir, "warm")
    assert await api.download_small(posixpath.join(remote_dir, "warm")) == b"warm-up"

    # Two HTTP clients: httpx (what pyfirecrest and the AiiDA plugin use; on 2 shared cores
    # its CPU per byte is a large part of the total) and, when installed, curl (a client that
    # is not itself the bottleneck, as wrk is for benchmarks/api.py).
    ways = ["api_up", "api_curl_up", "raw_up", "api_down", "api_curl_down", "raw_down"]
    if shutil.which("curl") is None:
        print("curl is not installed: measuring the API with httpx only", flush=True)
        ways = [w for w in ways if not w.startswith("api_curl_")]
    runs: dict[str, list[dict]] = {k: [] for k in ways}
    for i in range(repeat):
        # Interleaved, so that both ways see the same machine.
        with meter.measure(m := {}):
            await api.upload_file(source, size, remote_dir, "api.bin")
        m["sha256_ok"] = await remote_sha256(conn, api_file) == digest
        runs["api_up"].append(m)
        with meter.measure(m := {}):
            await sftp.put(str(source), raw_file)
        m["sha256_ok"] = await remote_sha256(conn, raw_file) == digest
        runs["raw_up"].append(m)
        if "api_curl_up" in runs:
            await sftp.remove(api_file)
            with meter.measure(m := {}):
                await api.curl_upload(source, remote_dir, "api.bin")
            m["sha256_ok"] = await remote_sha256(conn, api_file) == digest
            runs["api_curl_up"].append(m)
        with meter.measure(m := {}):
            received = await api.download_file(api_file, target)
        m["sha256_ok"] = received == size and sha256_file(target) == digest
        target.unlink()
        runs["api_down"].append(m)
        if "api_curl_down" in runs:
            with meter.measure(m := {}):
                await api.curl_download(api_file, target)
            m["sha256_ok"] = sha256_file(target) == digest
            target.unlink()
            runs["api_curl_down"].append(m)
        with meter.measure(m := {}):
            await sftp.get(raw_file, str(target))
        m["sha256_ok"] = sha256_file(target) == digest
        target.unlink()
        runs["raw_down"].append(m)
        print(
            f"  big file {i + 1}/{repeat}: "
            + ", ".join(f"{k} {size / MiB / v[-1]['seconds']:.1f} MiB/s" for k, v in runs.items()),
            flush=True,
        )
    source.unlink()
    for name in ("api.bin", "raw.bin", "warm"):
        await sftp.remove(posixpath.join(remote_dir, name))

    result: dict = {"size_bytes": size, "repeat": repeat, "sha256": digest}
    for direction in ("up", "down"):
        raw_row = summarize(runs[f"raw_{direction}"], size)
        result[direction] = {"raw_sftp": raw_row}
        for way in ("api", "api_curl"):
            if f"{way}_{direction}" not in runs:
                continue
            row = summarize(runs[f"{way}_{direction}"], size)
            result[direction][way] = row
            result[direction][f"{way}_over_raw_mib_s"] = row["mib_s"] / raw_row["mib_s"]
            result[direction][f"{way}_over_raw_cpu"] = (
                row["cpu_s_per_gib"]["total"] / raw_row["cpu_s_per_gib"]["total"]
            )
    return result


# ----------------------------------------------------------------------------------- trees


async def raw_tar_up(conn: asyncssh.SSHClientConnection, tar_path: Path, directory: str) -> None:
    argv = ["tar", "-x", "-p", "--no-same-owner", "-f", "-", "-C", directory]
    async with conn.create_process(shlex.join(argv), encoding=None) as process:
        async for chunk in file_chunks(tar_path):
            process.stdin.write(chunk)
            await process.stdin.drain()
        process.stdin.write_eof()
        completed = await process.wait()
    if completed.exit_status != 0:
        raise RuntimeError(f"remote tar -x failed: {completed.stderr!r}")


async def raw_tar_down(conn: asyncssh.SSHClientConnection, directory: str, tar_path: Path) -> None:
    argv = ["tar", "-c", "-f", "-", "-C", directory, "."]
    async with conn.create_process(shlex.join(argv), encoding=None) as process:
        process.stdin.write_eof()
        with tar_path.open("wb") as f:
            while chunk := await process.stdout.read(CLIENT_CHUNK):
                f.write(chunk)
        completed = await process.wait()
    if completed.exit_status != 0:
        raise RuntimeError(f"remote tar -c failed: {completed.stderr!r}")


def extract(tar_path: Path, directory: Path) -> None:
    directory.mkdir()
    with tarfile.open(tar_path, "r:") as tar:
        # "tar" keeps the modes (it clears only setuid/sticky and group/other write bits).
        tar.extractall(directory, filter="tar")


def tree_layout(root: Path) -> list[tuple[str, list[Path]]]:
    """(subdirectory name, its files) for a tree made by ``make_tree``."""
    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    return [(d.name, sorted(d.iterdir())) for d in subdirs]


def write_files(local: Path, directories: list[str], files: dict[str, bytes]) -> None:
    local.mkdir()
    for name in directories:
        (local / name).mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (local / name).write_bytes(data)


async def per_file_up(
    api: Api, layout: list[tuple[str, list[Path]]], directory: str, concurrency: int
) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(coroutine_factory) -> None:
        async with gate:
            await coroutine_factory()

    await asyncio.gather(
        *(one(lambda d=d: api.mkdir(posixpath.join(directory, d))) for d, _ in layout)
    )
    uploads = []
    for d, files in layout:
        target = posixpath.join(directory, d)
        for f in files:
            # Read as a client would, just before sending (a few hundred bytes each).
            uploads.append(
                one(lambda f=f, target=target: api.upload_small(f.read_bytes(), target, f.name))
            )
    await asyncio.gather(*uploads)


async def per_file_down(api: Api, directory: str, local: Path, concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)
    entries = await api.ls_recursive(directory)
    received: dict[str, bytes] = {}

    async def one(name: str) -> None:
        async with gate:
            received[name] = await api.download_small(posixpath.join(directory, name))

    await asyncio.gather(*(one(e["name"]) for e in entries if e["type"] == "-"))
    write_files(local, [e["name"] for e in entries if e["type"] == "d"], received)


async def trees(
    api: Api,
    conn: asyncssh.SSHClientConnection,
    sftp: asyncssh.SFTPClient,
    meter: Meter,
    work: Path,
    remote: str,
    files: int,
    concurrency: int,
    repeat: int,
) -> dict:
    source = work / "tree"
    make_tree(source, files)
    expected = local_manifest(source)
    tar_path = work / "tree.tar"
    t0 = time.perf_counter()
    pack_tree(source, tar_path)
    pack_s = time.perf_counter() - t0
    total = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    tar_bytes = tar_path.stat().st_size
    layout = tree_layout(source)

    runs: dict[str, list[dict]] = {
        k: [] for k in ("api_up", "raw_up", "files_up", "api_down", "raw_down", "files_down")
    }
    verified: dict[str, list[str]] = {k: [] for k in runs}
    extract_s: list[float] = []

    async def timed(key: str, coroutine) -> None:
        with meter.measure(m := {}):
            await coroutine
        runs[key].append(m)

    for i in range(repeat):
        base = posixpath.join(remote, f"trees-{i}")
        dirs = {k: posixpath.join(base, k) for k in ("api", "raw", "files")}
        await sftp.mkdir(base)
        for d in dirs.values():
            await sftp.mkdir(d)
        # Up: the three ways, interleaved within each repetition.
        await timed("api_up", api.put_tree(tar_path, tar_bytes, dirs["api"]))
        await timed("raw_up", raw_tar_up(conn, tar_path, dirs["raw"]))
        await timed("files_up", per_file_up(api, layout, dirs["files"], concurrency))
        verified["api_up"].append(compare(expected, await remote_manifest(conn, dirs["api"])))
        verified["raw_up"].append(compare(expected, await remote_manifest(conn, dirs["raw"])))
        verified["files_up"].append(
            compare(expected, await remote_manifest(conn, dirs["files"]), modes=False)
        )
        # Down: each from the tree it put up; extracted (untimed) and compared with the source.
        local = work / f"down-{i}"
        local.mkdir()
        await timed("api_down", api.get_tree(dirs["api"], local / "api.tar"))
        await timed("raw_down", raw_tar_down(conn, dirs["raw"], local / "raw.tar"))
        await timed("files_down", per_file_down(api, dirs["files"], local / "files", concurrency))
        t0 = time.perf_counter()
        extract(local / "api.tar", local / "api")
        extract_s.append(time.perf_counter() - t0)
        extract(local / "raw.tar", local / "raw")
        verified["api_down"].append(compare(expected, local_manifest(local / "api")))
        verified["raw_down"].append(compare(expected, local_manifest(local / "raw")))
        verified["files_down"].append(
            compare(expected, local_manifest(local / "files"), modes=False)
        )
        _rmtree(local)
        await conn.run(shlex.join(["chmod", "-R", "u+rwX", "--", base]), check=True)
        await conn.run(shlex.join(["rm", "-rf", "--", base]), check=True)
        print(
            f"  trees {i + 1}/{repeat}: "
            + ", ".join(f"{k} {v[-1]['seconds']:.2f} s" for k, v in runs.items()),
            flush=True,
        )
    _rmtree(source)
    tar_path.unlink()

    def row(key: str) -> dict:
        median = statistics.median(r["seconds"] for r in runs[key])
        return {
            "median_s": median,
            "files_per_s": files / median,
            "cpu_s": {
                party: statistics.median(r["cpu_s"][party] for r in runs[key])
                for party in ("client", "server", "sshd")
            },
            "verified": "ok" if set(verified[key]) == {"ok"} else sorted(set(verified[key])),
            "rss": max((r["rss"] for r in runs[key]), key=lambda m: m["growth_mib"]),
            "runs": runs[key],
        }

    rows = {k: row(k) for k in runs}
    ratios = {}
    for direction in ("up", "down"):
        api_s = rows[f"api_{direction}"]["median_s"]
        ratios[f"api_tree_over_raw_tar_{direction}"] = rows[f"raw_{direction}"]["median_s"] / api_s
        ratios[f"per_file_over_api_tree_{direction}"] = (
            rows[f"files_{direction}"]["median_s"] / api_s
        )
    return {
        "files": files,
        "directories": 10,
        "bytes": total,
        "tar_bytes": tar_bytes,
        "concurrency": concurrency,
        "repeat": repeat,
        "local_pack_s": pack_s,
        "local_extract_s": statistics.median(extract_s),
        "rows": rows,
        "ratios": ratios,
    }


def _rmtree(path: Path) -> None:
    for dirpath, dirnames, _ in os.walk(path):
        for name in dirnames:
            (Path(dirpath) / name).chmod(0o755)
    shutil.rmtree(path)


# -------------------------------------------------------------------------------- reporting


def print_report(result: dict) -> None:
    big = result["big_file"]
    print(
        f"\nbig file: {big['size_bytes'] / MiB:.0f} MiB, median of {big['repeat']}; API: one-worker"
        f" server pid {result['server_pid']}, clients httpx and curl; raw: asyncssh SFTP put/get"
        " on one open connection"
    )
    print(
        "direction | way       |   MiB/s | CPU s/GiB: client server   sshd  total | sha256 "
        "| server RSS MiB: baseline -> peak (growth)"
    )
    print("-" * 120)
    ways = (("api", "api httpx"), ("api_curl", "api curl"), ("raw_sftp", "raw sftp"))
    for direction in ("up", "down"):
        for way, label in ways:
            if way not in big[direction]:
                continue
            r = big[direction][way]
            c = r["cpu_s_per_gib"]
            m = r["rss"]
            rss = (
                f"{m['baseline_mib']:7.1f} -> {m['peak_mib']:7.1f} ({m['growth_mib']:+.1f})"
                if way != "raw_sftp"
                else ""
            )
            print(
                f"{direction + 'load':<9} | {label:<9} | {r['mib_s']:7.1f} "
                f"|          {c['client']:6.2f} {c['server']:6.2f} {c['sshd']:6.2f} "
                f"{c['total']:6.2f} | {'ok' if r['sha256_ok'] else 'BAD':<6} | {rss}"
            )
    for way, label in ways[:2]:
        if way not in big["up"]:
            continue
        print(
            f"{label} / raw: upload {big['up'][f'{way}_over_raw_mib_s']:.2f}x, download "
            f"{big['down'][f'{way}_over_raw_mib_s']:.2f}x the MiB/s; CPU per GiB (all parties) "
            f"upload {big['up'][f'{way}_over_raw_cpu']:.2f}x, "
            f"download {big['down'][f'{way}_over_raw_cpu']:.2f}x"
        )
    tree = result["trees"]
    print(
        f"\ntrees: {tree['files']} files ({tree['bytes'] / 1024:.0f} KiB) in "
        f"{tree['directories']} directories, median of {tree['repeat']}; per-file requests "
        f"{tree['concurrency']} at a time; local tar pack {tree['local_pack_s'] * 1000:.0f} ms, "
        f"extract {tree['local_extract_s'] * 1000:.0f} ms (not in the times)"
    )
    print(
        "method                        |   up s  files/s | down s  files/s "
        "| server CPU s up, down | verified up, down"
    )
    print("-" * 112)
    labels = {
        "api": "api tree (one tar request)",
        "raw": "raw ssh tar",
        "files": "api per file",
    }
    for key, label in labels.items():
        up, down = tree["rows"][f"{key}_up"], tree["rows"][f"{key}_down"]
        print(
            f"{label:<29} | {up['median_s']:6.2f} {up['files_per_s']:8.0f} "
            f"| {down['median_s']:6.2f} {down['files_per_s']:8.0f} "
            f"| {up['cpu_s']['server']:9.2f} {down['cpu_s']['server']:9.2f}   "
            f"| {up['verified']}, {down['verified']}"
        )
    r = tree["ratios"]
    print(
        "api tree vs raw tar (speed, raw time / api time): "
        f"up {r['api_tree_over_raw_tar_up']:.2f}x,"
        f" down {r['api_tree_over_raw_tar_down']:.2f}x;"
        f" per-file takes {r['per_file_over_api_tree_up']:.1f}x (up)"
        f" and {r['per_file_over_api_tree_down']:.1f}x (down) the time of one tree request"
    )
    print(
        f"server RSS peak during trees {result['trees_rss_peak_mib']:.1f} MiB; "
        f"VmHWM at the end {result['server_vmhwm_mib']:.1f} MiB"
    )
    print(f"load average before {result['load_before']}, after {result['load_after']}")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def run(stack: StackInfo, args: argparse.Namespace, server_url: str, pid: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="fcbench-transfer-", dir=args.workdir))
    remote = f"{stack.users['alice'].home}/fcbench-{secrets.token_hex(4)}"
    sampler = RssSampler(pid)
    sampler.start()
    meter = Meter(pid, stack.pids["sshd"], sampler)
    timeout = httpx.Timeout(None, connect=30)
    limits = httpx.Limits(max_connections=max(16, args.concurrency))
    try:
        async with (
            raw_connection(stack) as conn,
            conn.start_sftp_client() as sftp,
            httpx.AsyncClient(base_url=server_url, timeout=timeout, limits=limits) as client,
        ):
            api = Api(client, stack)
            await sftp.mkdir(remote)
            try:
                result = {"load_before": load_average(), "server_pid": pid}
                result["big_file"] = await big_file(
                    api, conn, sftp, meter, work, remote, args.size, args.big_repeat
                )
                result["trees"] = await trees(
                    api,
                    conn,
                    sftp,
                    meter,
                    work,
                    remote,
                    args.files,
                    args.concurrency,
                    args.tree_repeat,
                )
                result["trees_rss_peak_mib"] = max(
                    r["rss"]["peak_mib"] for r in result["trees"]["rows"].values()
                )
                result["server_vmhwm_mib"] = read_rss(pid, "VmHWM") / MiB
                result["load_after"] = load_average()
            finally:
                await conn.run(shlex.join(["chmod", "-R", "u+rwX", "--", remote]))
                await conn.run(shlex.join(["rm", "-rf", "--", remote]))
    finally:
        sampler.stop()
        _rmtree(work)
    return result


def _event_loop_run(coroutine):
    """uvloop when installed (as the server uses), for the httpx and asyncssh clients alike."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", help="stack.json of a running stack (default: start one)")
    parser.add_argument("--size", type=parse_size, help="big file size (default 2G; quick 64M)")
    parser.add_argument("--quick", action="store_true", help="a 64 MiB big file")
    parser.add_argument("--big-repeat", type=int, help="big-file runs, median (default 1; quick 3)")
    parser.add_argument("--files", type=int, default=1000, help="files in the tree")
    parser.add_argument("--concurrency", type=int, default=16, help="per-file requests at once")
    parser.add_argument("--tree-repeat", type=int, default=3, help="tree runs (median)")
    parser.add_argument("--workdir", default="/tmp", help="where local files go")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--plot", help="also draw them into this PNG file (needs matplotlib)")
    args = parser.parse_args()
    if args.size is None:
        args.size = 64 * MiB if args.quick else 2048 * MiB
    if args.big_repeat is None:
        args.big_repeat = 3 if args.quick else 1
    server_dir = Path(tempfile.mkdtemp(prefix="fcbench-server-", dir="/tmp"))
    try:
        # The file limit admits the big file; the tree and per-file requests need no change.
        overrides = {"data_operation": {"max_ops_file_size": args.size + MiB}}
        with (
            running_stack(args.stack) as stack,
            own_server(stack, server_dir, system_overrides=overrides) as server,
        ):
            print(
                f"transfers on {server.url} (one worker, pid {server.pid}), "
                f"stack {stack.dir}, load {load_average()}",
                flush=True,
            )
            result = _event_loop_run(run(stack, args, server.url, server.pid))
    finally:
        shutil.rmtree(server_dir, ignore_errors=True)
    result = {"benchmark": "transfer", "cpus": os.cpu_count(), **result}
    print_report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if args.plot:
        from plots import transfer_figure

        transfer_figure(result, Path(args.plot))
    return 0


if __name__ == "__main__":
    sys.exit(main())
