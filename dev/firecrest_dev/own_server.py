"""A second API server on the stack's cluster, with configuration overrides, for one test module.

The stack's own server runs several workers with limits set high for benchmarks; tests of
per-process behaviour (rate limits, health probes, counters) need one worker and their own
settings. This server reuses the stack's configuration — the same sshd, CA, Slurm and identity
provider — and changes only what the test asks for.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from .info import StackInfo
from .running import free_ports


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class OwnServer(str):
    """The server's URL (a ``str``, so callers use it as one), with its process id in ``pid``.

    With one worker, uvicorn serves in that very process: ``pid`` is the process that handles
    the requests (for RSS sampling or a profiler).
    """

    pid: int

    @property
    def url(self) -> str:
        return str(self)


@contextlib.contextmanager
def own_server(
    stack: StackInfo,
    directory: Path,
    overrides: dict[str, Any] | None = None,
    system_overrides: dict[str, Any] | None = None,
    ssh_credentials: dict[str, Any] | None = None,
    base_config: dict[str, Any] | None = None,
) -> Iterator[OwnServer]:
    """Run a one-worker server until the block ends; yields its URL (with its ``pid``).
    ``ssh_credentials`` replaces the systems' ``ssh.credentials`` as a whole (another type);
    ``base_config`` is a whole configuration to start from instead of the stack server's."""
    config = base_config or json.loads((stack.dir / "server" / "config.yaml").read_text())
    port = free_ports(1)[0]
    # Merged in turn: overrides of other "server" keys keep this server's own port and workers.
    config = _merge(_merge(config, {"server": {"port": port, "workers": 1}}), overrides or {})
    config["systems"] = [_merge(s, system_overrides or {}) for s in config["systems"]]
    if ssh_credentials is not None:
        for system in config["systems"]:
            system["ssh"]["credentials"] = ssh_credentials
    config_file = directory / "config.yaml"
    config_file.write_text(json.dumps(config, indent=2))
    with served(config_file, directory / "server.log", port) as process:
        server = OwnServer(f"http://127.0.0.1:{port}")
        server.pid = process.pid
        yield server


class NotAnswering(RuntimeError):
    """The server did not answer its liveness probe in time (it is still running)."""


@contextlib.contextmanager
def served(
    config_file: Path,
    log_file: Path,
    port: int,
    *,
    start_timeout: float = 30,
    env: dict[str, str] | None = None,
    new_session: bool = False,
) -> Iterator[subprocess.Popen[bytes]]:
    """``firecrest-server --config config_file`` with its output in ``log_file``, once its
    liveness probe answers on ``port``; stopped (TERM, then KILL after 15 s) on the way out."""
    url = f"http://127.0.0.1:{port}"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "firecrest_server.cli", "--config", str(config_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=new_session,
        )
        try:
            deadline = time.monotonic() + start_timeout
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"server exited: {log_file.read_text()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/status/liveness", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise NotAnswering(
                        f"server did not answer within {start_timeout:.0f} s: "
                        f"{log_file.read_text()[-3000:]}"
                    )
                time.sleep(0.05)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
