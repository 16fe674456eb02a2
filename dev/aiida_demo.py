"""The project's main job: real AiiDA calculations on the local stack, through the API server.

    .venv/bin/python dev/aiida_demo.py STACK_JSON [--count 20] [--workers 2] [--keep DIR]

What it does, with the commands an AiiDA user would type:

1. ``verdi presto``: a fresh AiiDA profile in a temporary AIIDA_PATH (SQLite; RabbitMQ as the
   broker when it runs on localhost, otherwise AiiDA's built-in ZeroMQ broker);
2. ``verdi computer setup -T firecrest -S firecrest`` and ``verdi computer configure firecrest
   --config FILE`` with alice's OIDC client, then ``verdi computer test``;
3. ``verdi code create core.code.installed`` for ``/bin/bash`` on that computer;
4. submits ``--count`` ``core.arithmetic.add`` calculations to the daemon (``--workers``
   workers) and waits for them;
5. prints a summary: finished OK / failed, wall time, calculations per minute.

Exit status 0 only if every calculation finished OK with the right sum. Without ``--keep``,
the profile is removed afterwards, and so are the calculations' directories and the server's
working files it made in alice's home (``aiida_run``, job markers, transfer-job logs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

from firecrest_dev.homes import home_entries, remove_new_artefacts

VERDI = str(Path(sys.executable).parent / "verdi")


def _verdi(env: dict[str, str], *args: str, check: bool = True) -> str:
    result = subprocess.run([VERDI, *args], capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise SystemExit(f"verdi {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def configure_computer(env: dict[str, str], stack: dict, label: str, aiida_path: Path) -> None:
    """``verdi computer setup -T firecrest -S firecrest`` and ``configure`` for alice."""
    alice = stack["users"]["alice"]
    workdir = f"{alice['home']}/aiida_run/"
    _verdi(
        env, "computer", "setup", "-n", "--label", label, "--hostname", stack["system"],
        "--transport", "firecrest", "--scheduler", "firecrest", "--work-dir", workdir,
        "--mpiprocs-per-machine", "1",
    )  # fmt: skip
    config = aiida_path / "firecrest.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "url": stack["url"],
                "token_uri": stack["token_url"],
                "client_id": alice["client_id"],
                "client_secret": alice["client_secret"],
                "compute_resource": stack["system"],
                "billing_account": stack["account"],
                "temp_directory": f"{alice['home']}/.aiida-firecrest-tmp",
            }
        )
    )
    config.chmod(0o600)
    _verdi(env, "computer", "configure", "firecrest", label, "-n", "--config", str(config))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stack_json")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--poll-interval", type=float, default=2.0, help="seconds")
    parser.add_argument("--keep", help="keep the AiiDA profile in this directory")
    args = parser.parse_args()
    stack = json.loads(Path(args.stack_json).read_text())
    alice = stack["users"]["alice"]
    home_before = home_entries(alice["home"])
    aiida_path = Path(args.keep or tempfile.mkdtemp(prefix="fc-aiida-demo-"))
    # The daemon looks for `verdi` on PATH: the one next to this interpreter.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    # The daemon's circus leaves a directory of sockets in $TMPDIR: keep it with the profile.
    (aiida_path / "tmp").mkdir(exist_ok=True)
    os.environ.update(
        AIIDA_PATH=str(aiida_path), PATH=path, TMPDIR=str(aiida_path / "tmp")
    )  # before aiida is imported
    env = dict(os.environ)
    t0 = time.monotonic()

    def step(message: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {message}", flush=True)

    try:
        profile = f"fcdemo-{uuid.uuid4().hex[:6]}"
        out = _verdi(env, "presto", "--profile-name", profile, "--email", "demo@example.org")
        broker = "RabbitMQ" if "RabbitMQ" in out and "ZeroMQ" not in out else "ZeroMQ/RabbitMQ"
        step(f"verdi presto: profile {profile!r} in {aiida_path} (broker: {broker})")

        label = "stack"
        configure_computer(env, stack, label, aiida_path)
        step(f"verdi computer setup/configure: {label!r} -> {stack['url']} ({stack['system']})")
        tested = _verdi(env, "computer", "test", label, check=False)
        ok_checks = tested.count("[OK]")
        step(
            f"verdi computer test: {ok_checks} checks OK"
            + ("" if "Failed" not in tested else " (some FAILED)")
        )
        _verdi(
            env, "code", "create", "core.code.installed", "-n", "--label", "bash",
            "--computer", label, "--filepath-executable", "/bin/bash",
        )  # fmt: skip
        step("verdi code create: bash@stack")

        from aiida import load_profile, orm
        from aiida.engine import submit
        from aiida.plugins import CalculationFactory

        load_profile(profile)
        add = CalculationFactory("core.arithmetic.add")
        code = orm.load_code(f"bash@{label}")
        # AiiDA's default is 10 s between two polls of the scheduler; one poll is one request.
        orm.load_computer(label).set_minimum_job_poll_interval(args.poll_interval)
        _verdi(env, "daemon", "start", str(args.workers))
        step(f"verdi daemon start {args.workers}")
        started = time.monotonic()
        nodes = []
        for i in range(args.count):
            builder = add.get_builder()
            builder.code = code
            builder.x = orm.Int(i)
            builder.y = orm.Int(2 * i)
            builder.metadata.options.resources = {"num_machines": 1}
            builder.metadata.options.max_wallclock_seconds = 600
            nodes.append(submit(builder))
        step(f"submitted {len(nodes)} core.arithmetic.add calculations")
        last = -1
        while True:
            done = [n for n in nodes if orm.load_node(n.pk).is_terminated]
            if len(done) != last:
                last = len(done)
                step(f"{last}/{len(nodes)} terminated")
            if last == len(nodes):
                break
            time.sleep(1)
        wall = time.monotonic() - started
        ok = failed = 0
        for i, node in enumerate(nodes):
            node = orm.load_node(node.pk)
            right = node.is_finished_ok and node.outputs.sum.value == 3 * i
            ok, failed = ok + right, failed + (not right)
            if not right:
                step(f"calculation {node.pk} (x={i}): exit status {node.exit_status}")
        print(
            "\nsummary: "
            f"{ok} finished OK, {failed} failed, {len(nodes)} calculations in {wall:.1f} s "
            f"({60 * len(nodes) / wall:.1f} calculations per minute, "
            f"{args.workers} daemon workers, poll interval {args.poll_interval:g} s)"
        )
        return 0 if failed == 0 else 1
    finally:
        _verdi(env, "daemon", "stop", check=False)
        if not args.keep:
            shutil.rmtree(aiida_path, ignore_errors=True)
            # The calculations' directories on the (local) cluster, made for this profile only.
            remove_new_artefacts(alice["home"], home_before)


if __name__ == "__main__":
    sys.exit(main())
