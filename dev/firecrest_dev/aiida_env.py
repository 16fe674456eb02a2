"""An AiiDA installation made the way a user makes one: a profile on PostgreSQL and RabbitMQ on
localhost (``verdi profile setup core.psql_dos``), ``verdi computer setup -T firecrest -S
firecrest`` and ``configure`` for a stack user, a ``core.code.installed`` bash, and ``verdi daemon
start N``.

verdi and the daemon run as subprocesses with ``AIIDA_PATH`` pointing at a temporary directory;
this process loads the same profile to build, submit and inspect calculations. Everything is
undone at the end: the daemon stopped, the PostgreSQL database and role dropped, the profile's
RabbitMQ queues deleted, the working directories on the cluster removed.

Also used by ``benchmarks/aiida_calcjobs.py`` and ``benchmarks/qe_eos.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .info import StackInfo

BIN = Path(sys.executable).parent
VERDI = str(BIN / "verdi")
POSTGRES = {"host": "localhost", "port": "5432", "user": "postgres"}
# A daemon log record starts with its date: "11/26/2026 02:22:49 PM <pid> logger: [LEVEL] ...".
_STDERR_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[\d+\] \|.*\n?", re.MULTILINE)
# The ssh host alias of the stack's sshd in ``ssh_home``'s config, for core.ssh_async computers.
HOST_ALIAS = "fcbench-cluster"
_LOG_RECORD = re.compile(r"^(?=\d\d/\d\d/\d{4} \d\d:\d\d:\d\d [AP]M <\d+>)", re.MULTILINE)


class AiidaSetupError(RuntimeError):
    pass


@dataclass
class AiidaProfile:
    """A presto profile on PostgreSQL + RabbitMQ, in its own AIIDA_PATH."""

    name: str
    aiida_path: Path
    env: dict[str, str]
    database: str = ""
    database_user: str = ""
    broker_prefix: str = ""
    broker: dict[str, Any] = field(default_factory=dict)
    # Remote directories to remove at the end (as root, on this machine: the stack is local).
    remote_dirs: list[str] = field(default_factory=list)

    def verdi(self, *args: str, check: bool = True, timeout: float = 300) -> str:
        result = subprocess.run(
            [VERDI, *args], capture_output=True, text=True, env=self.env, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AiidaSetupError(
                f"verdi {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result.stdout + result.stderr

    @property
    def daemon_log(self) -> Path:
        return self.aiida_path / ".aiida" / "daemon" / "log" / f"aiida-{self.name}.log"

    def daemon_log_offset(self) -> int:
        try:
            return self.daemon_log.stat().st_size
        except FileNotFoundError:
            return 0

    def task_failures(self, since: int = 0) -> list[tuple[str, str]]:
        """(task, last line of its exception) for every transport task that failed and was
        retried by AiiDA's exponential backoff, from the daemon log after byte ``since``."""
        with self.daemon_log.open("rb") as handle:
            handle.seek(since)
            text = handle.read().decode(errors="replace")
        # The workers' stderr repeats every record, a line at a time: keep the log records.
        text = _STDERR_LINE.sub("", text)
        failures = []
        for record in _LOG_RECORD.split(text):
            found = re.search(r"iteration \d+ of (\S+) excepted", record)
            if found:
                lines = [line for line in record.splitlines() if line.strip()]
                failures.append((found.group(1), lines[-1].strip()[:200]))
        return failures

    def plugin_retries(self, since: int = 0) -> int:
        """How many times the plugin's client retried a request (its warnings in the daemon
        log after byte ``since``, as log records or as the workers' stderr)."""
        with self.daemon_log.open("rb") as handle:
            handle.seek(since)
            return handle.read().decode(errors="replace").count("FirecREST request failed")

    def daemon_log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.daemon_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no daemon log: {exc})"

    # ------------------------------------------------------------------------------ setup

    def create(self) -> None:
        """A PostgreSQL role and database, then ``verdi profile setup core.psql_dos`` with
        RabbitMQ as the broker. Not ``verdi presto --use-postgres``: it creates the database
        with LC_COLLATE 'en_US.UTF-8', which fails on machines without that locale (minimal
        Debian images have only C.UTF-8); this is what presto does, minus that."""
        self.database = self.database_user = f"aiida-{self.name}"  # presto's names
        password = secrets.token_hex(16)
        for sql in (
            f"CREATE ROLE \"{self.database_user}\" LOGIN PASSWORD '{password}'",
            f'CREATE DATABASE "{self.database}" OWNER "{self.database_user}" '
            "ENCODING 'UTF8' TEMPLATE template0",
        ):
            result = _psql(sql)
            if result.returncode != 0:
                raise AiidaSetupError(
                    f"{sql.split(' PASSWORD')[0]}: {result.stderr.strip()} "
                    "(is PostgreSQL running on localhost:5432 with trust auth? `dev/services`)"
                )
        options = self.aiida_path / "profile.yaml"
        options.write_text(
            yaml.safe_dump(
                {
                    "set_as_default": True,
                    "email": f"{self.name}@example.org",
                    "first_name": "End",
                    "last_name": "ToEnd",
                    "institution": "aiida-firecrest tests",
                    "broker": "core.rabbitmq",
                    "database_hostname": POSTGRES["host"],
                    "database_port": int(POSTGRES["port"]),
                    "database_name": self.database,
                    "database_username": self.database_user,
                    "database_password": password,
                    "repository_uri": (self.aiida_path / "repository").as_uri(),
                }
            )
        )
        options.chmod(0o600)
        out = self.verdi(
            "profile", "setup", "core.psql_dos", "-n", "-p", self.name, "--config", str(options)
        )
        config = json.loads((self.aiida_path / ".aiida" / "config.json").read_text())
        profile = config["profiles"][self.name]
        storage, broker = profile["storage"], profile.get("process_control") or {}
        if storage["backend"] != "core.psql_dos" or broker.get("backend") != "core.rabbitmq":
            raise AiidaSetupError(
                f"the profile has storage {storage['backend']!r} and broker "
                f"{broker.get('backend')!r}, not PostgreSQL and RabbitMQ\n{out}"
            )
        self.broker_prefix = f"aiida-{profile['PROFILE_UUID']}"
        self.broker = {
            key.removeprefix("broker_"): value
            for key, value in broker.get("config", {}).items()
            if key.startswith("broker_")
        }
        self.verdi("status")  # raises unless storage and broker answer

    def add_computer(
        self,
        stack: StackInfo,
        label: str,
        *,
        user: str = "alice",
        transport: str = "firecrest",
        scheduler: str = "firecrest",
        configure: dict[str, Any] | None = None,
        workdir: str | None = None,
    ) -> str:
        """``verdi computer setup`` + ``configure`` (+ a ``bash`` code); returns the workdir."""
        home = stack.users[user].home
        workdir = workdir or f"{home}/aiida-e2e-{uuid.uuid4().hex[:8]}/"
        self.remote_dirs.append(workdir)
        hostname = stack.system if transport == "firecrest" else (configure or {}).get("host")
        self.verdi(
            "computer", "setup", "-n", "--label", label, "--hostname", str(hostname),
            "--transport", transport, "--scheduler", scheduler, "--work-dir", workdir,
            "--mpiprocs-per-machine", "1",
        )  # fmt: skip
        if configure is None:
            credentials = stack.users[user]
            configure = {
                "url": stack.url,
                "token_uri": stack.token_url,
                "client_id": credentials.client_id,
                "client_secret": credentials.client_secret,
                "compute_resource": stack.system,
                "billing_account": stack.account,
                "temp_directory": f"{home}/.aiida-firecrest-tmp",
            }
        config = self.aiida_path / f"{label}.yaml"
        config.write_text(yaml.safe_dump(configure))
        config.chmod(0o600)
        self.verdi(
            "computer", "configure", transport, label, "-n", "--config", str(config)
        )  # fmt: skip
        self.verdi(
            "code", "create", "core.code.installed", "-n", "--label", "bash-installed",
            "--computer", label, "--filepath-executable", "/bin/bash",
        )  # fmt: skip
        return workdir

    def start_daemon(self, workers: int) -> None:
        self.verdi("daemon", "start", str(workers), timeout=120)

    # ---------------------------------------------------------------------------- cleanup

    def destroy(self) -> list[str]:
        """Undo everything, as far as possible; returns what could not be undone."""
        problems: list[str] = []
        if (self.aiida_path / ".aiida" / "config.json").exists():
            problems += self._stop_daemon()
        for path in self.remote_dirs:
            shutil.rmtree(path, ignore_errors=True)
        if self.database:
            for sql in (
                f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)',
                f'DROP ROLE IF EXISTS "{self.database_user}"',
            ):
                result = _psql(sql)
                if result.returncode != 0:
                    problems.append(f"{sql}: {result.stderr.strip()}")
        if self.broker_prefix:
            problems += _delete_broker_objects(self.broker, self.broker_prefix)
        shutil.rmtree(self.aiida_path, ignore_errors=True)
        return problems

    def _stop_daemon(self) -> list[str]:
        """``verdi daemon stop``; then whatever still runs with this profile's AIIDA_PATH (the
        daemon's circus and workers, and what they started: the stop can time out on a loaded
        machine) is terminated by PID."""
        with contextlib.suppress(Exception):
            self.verdi("daemon", "stop", "--timeout", "60", check=False, timeout=120)
        left = _wait_gone(self._processes(), 30)
        for signum in (signal.SIGTERM, signal.SIGKILL):
            left = [pid for pid in left if pid in self._processes()]  # not a reused PID
            if not left:
                return []
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)
            left = _wait_gone(left, 15)
        return [f"daemon processes {left} would not end"] if left else []

    def _processes(self) -> list[int]:
        """Processes started with this profile's AIIDA_PATH in their environment (the daemon
        gives its workers the ``.aiida`` directory inside it); not this process, which sets it
        later if at all."""
        markers = {f"AIIDA_PATH={self.aiida_path}{tail}".encode() for tail in ("", "/.aiida")}
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if markers & set((entry / "environ").read_bytes().split(b"\0")):
                    found.append(int(entry.name))
        return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := [pid for pid in pids if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def _psql(sql: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["psql", "-h", POSTGRES["host"], "-p", POSTGRES["port"], "-U", POSTGRES["user"],
         "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _delete_broker_objects(broker: dict[str, Any], prefix: str) -> list[str]:
    """The profile's queue and exchanges stay in RabbitMQ after the profile is gone (AiiDA
    never deletes them): delete them."""
    import asyncio

    import aio_pika
    from aiida.brokers.rabbitmq import utils

    async def delete() -> None:
        url = utils.get_rmq_url(**broker)
        connection = await aio_pika.connect(url, timeout=30)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(utils.get_launch_queue_name(prefix))
            for exchange in (
                utils.get_message_exchange_name(prefix),
                utils.get_task_exchange_name(prefix),
            ):
                await channel.exchange_delete(exchange)

    try:
        asyncio.run(delete())
    except Exception as exc:
        return [f"deleting RabbitMQ objects {prefix}.*: {exc!r}"]
    return []


def new_profile(prefix: str = "fce2e") -> AiidaProfile:
    aiida_path = Path(tempfile.mkdtemp(prefix=f"{prefix}-aiida-"))
    # The daemon's circus makes a temporary directory for its sockets and leaves it behind:
    # inside the profile's directory, it goes with the profile.
    (aiida_path / "tmp").mkdir()
    # The daemon finds `verdi` on PATH: the one next to this interpreter.
    env = {
        **os.environ,
        "TMPDIR": str(aiida_path / "tmp"),
        "AIIDA_PATH": str(aiida_path),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return AiidaProfile(f"{prefix}-{uuid.uuid4().hex[:8]}", aiida_path, env)


@contextlib.contextmanager
def loaded(profile: AiidaProfile) -> Iterator[Any]:
    """Load ``profile`` in this process (its config lives in its own AIIDA_PATH); restore
    whatever configuration and profile were loaded before (the plugin tests' profile) after."""
    with _own_event_loop(), _loaded(profile) as loaded_profile:
        yield loaded_profile


@contextlib.contextmanager
def _own_event_loop() -> Iterator[None]:
    """A new current event loop while the profile is loaded. AiiDA's runner takes the thread's
    current loop and closes it when the profile is unloaded: after an async test, that is
    pytest-asyncio's session loop, and every async test after it failed with "Event loop is
    closed" (tests/replicas runs async tests before and after the AiiDA ones)."""
    try:
        previous = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        previous = None
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield
    finally:
        asyncio.set_event_loop(previous)
        if not loop.is_closed():
            loop.close()


@contextlib.contextmanager
def _loaded(profile: AiidaProfile) -> Iterator[Any]:
    from aiida.manage import get_manager
    from aiida.manage.configuration import get_config, reset_config
    from aiida.manage.configuration.settings import AiiDAConfigDir

    manager = get_manager()
    previous_profile = manager.get_profile()
    previous_dir = AiiDAConfigDir.get()
    previous_env = os.environ.get("AIIDA_PATH")
    if previous_profile is not None:
        # The previous profile's runner was made on the loop that was current then, often
        # pytest-asyncio's session loop, and unloading closes the runner's loop (Runner.close):
        # every async test after this one then failed with "Event loop is closed" (seen in a
        # whole-suite run: the plugin tests' profile, then tests/replicas). Set that runner
        # aside unclosed; the manager makes a new one when the profile is used again.
        manager._runner = None
        manager.unload_profile()
    reset_config()
    os.environ["AIIDA_PATH"] = str(profile.aiida_path)
    AiiDAConfigDir.set(profile.aiida_path / ".aiida")
    try:
        yield manager.load_profile(profile.name)
    finally:
        manager.unload_profile()
        reset_config()
        if previous_env is None:
            os.environ.pop("AIIDA_PATH", None)
        else:
            os.environ["AIIDA_PATH"] = previous_env
        AiiDAConfigDir.set(previous_dir)
        if previous_profile is not None:
            get_config()
            manager.load_profile(previous_profile, allow_switch=True)


def ssh_home(stack: StackInfo, home: Path, port: int | None = None) -> None:
    """A HOME for the daemon: a certificate for alice from the stack's CA, `.ssh/config` with
    the host alias, and `ssh`/`scp` wrappers that make OpenSSH read that config. With ``port``
    (a relay in front of sshd) the alias points there, with the host key known on that port."""
    ssh = home / ".ssh"
    ssh.mkdir(parents=True, mode=0o700)
    key = ssh / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True
    )  # fmt: skip
    subprocess.run(
        ["ssh-keygen", "-q", "-s", str(stack.ca_key), "-I", "aiida-firecrest-tests",
         "-n", "alice", "-V", "-5m:+4h", f"{key}.pub"],
        check=True,
    )  # fmt: skip
    known_hosts = stack.known_hosts
    if port is not None:
        known_hosts = ssh / "known_hosts"
        known_hosts.write_text(
            Path(stack.known_hosts).read_text().replace(f"]:{stack.ssh_port} ", f"]:{port} ")
        )
    config = ssh / "config"
    config.write_text(
        f"Host {HOST_ALIAS}\n"
        f"    HostName {stack.ssh_host}\n"
        f"    Port {port or stack.ssh_port}\n"
        "    User alice\n"
        f"    IdentityFile {key}\n"
        f"    CertificateFile {key}-cert.pub\n"
        "    IdentitiesOnly yes\n"
        f"    UserKnownHostsFile {known_hosts}\n"
        "    StrictHostKeyChecking yes\n"
        "    BatchMode yes\n"
    )
    config.chmod(0o600)
    bin_dir = home / "bin"
    bin_dir.mkdir()
    for tool in ("ssh", "scp"):
        real = shutil.which(tool)
        if real is None:
            raise SystemExit(f"{tool} is not installed")
        wrapper = bin_dir / tool
        wrapper.write_text(f'#!/bin/sh\nexec {real} -F {config} "$@"\n')
        wrapper.chmod(0o755)


# -------------------------------------------------------------------------- calculations


def submit_additions(code: Any, count: int, offset: int = 0) -> list[tuple[Any, int]]:
    """``count`` core.arithmetic.add calculations; returns (node, expected sum) pairs."""
    from aiida import orm
    from aiida.engine import submit
    from aiida.plugins import CalculationFactory

    add = CalculationFactory("core.arithmetic.add")
    submitted = []
    for i in range(offset, offset + count):
        builder = add.get_builder()
        builder.code = code
        builder.x = orm.Int(i)
        builder.y = orm.Int(2 * i)
        builder.metadata.options.resources = {"num_machines": 1}
        builder.metadata.options.max_wallclock_seconds = 600
        submitted.append((submit(builder), 3 * i))
    return submitted


def states(pks: list[int]) -> dict[int, tuple[str | None, bool]]:
    """pk -> (process_state, paused), straight from the database."""
    from aiida import orm

    query = orm.QueryBuilder().append(
        orm.ProcessNode,
        filters={"id": {"in": pks}},
        project=["id", "attributes.process_state", "attributes.paused"],
    )
    return {pk: (state, bool(paused)) for pk, state, paused in query.all()}


def wait_terminated(
    profile: AiidaProfile, pks: list[int], timeout: float, progress: Any = None
) -> float:
    """Wait until every process has terminated; returns the seconds waited. Fails, with the
    reports of the processes concerned and the daemon log, on a timeout or a paused process
    (AiiDA pauses a process whose transport task failed five times in a row)."""
    t0 = time.monotonic()
    last = -1
    while True:
        now = states(pks)
        done = [pk for pk, (state, _) in now.items() if state in ("finished", "excepted", "killed")]
        paused = [pk for pk, (_, is_paused) in now.items() if is_paused]
        if progress and len(done) != last:
            last = len(done)
            progress(f"{last}/{len(pks)} terminated")
        if len(done) == len(pks):
            return time.monotonic() - t0
        if paused or time.monotonic() - t0 > timeout:
            what = f"{len(paused)} paused" if paused else f"timed out after {timeout:.0f} s"
            concerned = paused or [pk for pk in pks if pk not in done]
            raise AssertionError(
                f"{what}; {len(done)}/{len(pks)} terminated\n"
                + report(profile, concerned[:3])
                + f"\n--- daemon log ---\n{profile.daemon_log_tail()}"
            )
        time.sleep(1)


def report(profile: AiidaProfile, pks: list[int]) -> str:
    return "\n".join(
        f"--- verdi process report {pk} ---\n"
        + profile.verdi("process", "report", str(pk), check=False)
        for pk in pks
    )


def computer_settings(stack: StackInfo, user: str = "alice", **overrides: Any) -> dict[str, Any]:
    """``verdi computer configure firecrest`` values for ``user`` on the stack (what the
    transport's constructor takes, apart from ``machine``)."""
    credentials = stack.users[user]
    settings: dict[str, Any] = {
        "url": stack.url,
        "token_uri": stack.token_url,
        "client_id": credentials.client_id,
        "client_secret": credentials.client_secret,
        "compute_resource": stack.system,
        "billing_account": stack.account,
        "temp_directory": f"{credentials.home}/.aiida-firecrest-tmp",
        "max_io_allowed": 8,
        "checksum_check": False,
    }
    settings.update(overrides)
    return settings
