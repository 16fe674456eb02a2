"""AiiDA calculations through the `firecrest` plugin vs. aiida-core's `core.ssh_async` +
`core.slurm`, on the same stack, with the same daemon, measured side by side in one run.

    .venv/bin/python benchmarks/aiida_calcjobs.py [--stack DIR/stack.json] [--count 100]
        [--workers 2] [--poll-interval 2] [--ssh-safe-interval 0] [--warmup 2]
        [--configs firecrest,asyncssh,openssh] [--json out.json]

One AiiDA profile (PostgreSQL + RabbitMQ, made and dropped here), one daemon with ``--workers``
workers, and one computer per configuration, all for the stack user alice on the same cluster:

- **firecrest**: transport `firecrest` + scheduler `firecrest`, through the API server;
- **asyncssh** / **openssh**: `core.ssh_async` (backend asyncssh, or the `ssh`/`scp` command
  line tools) + `core.slurm`, straight to the stack's sshd with an OpenSSH user certificate
  minted here from the stack's CA. The daemon runs with HOME pointing at a temporary directory
  whose `.ssh/config` names the host (asyncssh reads $HOME/.ssh/config); OpenSSH reads the
  config of the passwd entry's home instead, so `ssh` and `scp` on the daemon's PATH are
  wrappers adding `-F` that config. Nothing under the real ~/.ssh is touched.

Every computer gets the same minimum job poll interval (``--poll-interval``) and no cool-down
between transport opens (`firecrest` has none; `core.ssh_async`'s ``safe_interval`` is set to
``--ssh-safe-interval``, 0 by default). After ``--warmup`` unmeasured calculations on each,
for each configuration in turn ``--count`` `core.arithmetic.add` calculations are submitted at
once and waited for; printed are the wall time from the first submission to the last
calculation's end, calculations per minute, and the CPU time per calculation of the daemon
(with what it runs) and of the API server, from /proc, which depends much less on the machine's
load than the wall time. (Not sshd's: see ``cpu_sample``.)
Without --stack a stack is started for the run and stopped afterwards. This machine is shared:
absolute numbers drift; compare the ratios of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.e2e.aiida_env import (
    AiidaProfile,
    loaded,
    new_profile,
    states,
    submit_additions,
)
from tests.stack import StackInfo, new_stack_dir, stack_down, stack_up

HOST_ALIAS = "fcbench-cluster"
CONFIGS = {
    "firecrest": ("firecrest", "firecrest", None),
    "asyncssh": ("core.ssh_async", "core.slurm", "asyncssh"),
    "openssh": ("core.ssh_async", "core.slurm", "openssh"),
}


def ssh_home(stack: StackInfo, home: Path) -> None:
    """A HOME for the daemon: a certificate for alice from the stack's CA, `.ssh/config` with
    the host alias, and `ssh`/`scp` wrappers that make OpenSSH read that config."""
    ssh = home / ".ssh"
    ssh.mkdir(parents=True, mode=0o700)
    key = ssh / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True
    )  # fmt: skip
    subprocess.run(
        ["ssh-keygen", "-q", "-s", str(stack.ca_key), "-I", "aiida-calcjobs-benchmark",
         "-n", "alice", "-V", "-5m:+4h", f"{key}.pub"],
        check=True,
    )  # fmt: skip
    config = ssh / "config"
    config.write_text(
        f"Host {HOST_ALIAS}\n"
        f"    HostName {stack.ssh_host}\n"
        f"    Port {stack.ssh_port}\n"
        "    User alice\n"
        f"    IdentityFile {key}\n"
        f"    CertificateFile {key}-cert.pub\n"
        "    IdentitiesOnly yes\n"
        f"    UserKnownHostsFile {stack.known_hosts}\n"
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


# ------------------------------------------------------------------------------------ CPU time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()  # from field 3 (state) on


def _tree(roots: list[int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """CPU time of the live processes ``pids`` and of their children already reaped
    (utime + stime + cutime + cstime): with every live process of a tree, nothing is counted
    twice, and children that end between two samples stay counted in their parent."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            ticks += sum(int(v) for v in fields[11:15])
    return ticks / CLOCK_TICKS


def cpu_sample(profile: AiidaProfile, stack: StackInfo) -> dict[str, float]:
    """CPU seconds so far of the AiiDA daemon (circus, workers and what they run, e.g.
    openssh's ssh processes) and of the API server (with its workers).

    Not sshd's: the CPU time of an SSH connection's processes disappears from /proc when the
    connection ends (it does not reach the listener's cutime), so only the connections still
    open would count, which favours whichever side keeps its connections (the API server's
    pool) over the others."""
    return {
        "daemon": cpu_seconds(profile._processes()),
        "api_server": cpu_seconds(_tree([stack.pids["server"]])),
    }


# ---------------------------------------------------------------------------------- the run


def setup_computers(
    profile: AiidaProfile, stack: StackInfo, names: list[str], safe_interval: float
) -> None:
    alice = pwd.getpwnam("alice")
    for name in names:
        transport, scheduler, backend = CONFIGS[name]
        workdir = f"{stack.users['alice'].home}/aiida-bench/{name}/"
        # Made beforehand (alice's, on this machine, as root): in a new work directory the
        # first calculations race in aiida-core's upload (path_exists, then makedirs) and all
        # but one are retried 20 s later, with any transport; that is not what is measured.
        for path in (Path(workdir).parent, Path(workdir)):
            path.mkdir(exist_ok=True)
            os.chown(path, alice.pw_uid, alice.pw_gid)
        if transport == "firecrest":
            profile.add_computer(stack, name, workdir=workdir)
            continue
        profile.add_computer(
            stack,
            name,
            transport=transport,
            scheduler=scheduler,
            workdir=workdir,
            configure={
                "host": HOST_ALIAS,
                "backend": backend,
                "safe_interval": safe_interval,
                "use_login_shell": True,
            },
        )


def run_batch(
    profile: AiidaProfile, stack: StackInfo, name: str, count: int, offset: int
) -> dict[str, Any]:
    from aiida import orm

    code = orm.load_code(f"bash-installed@{name}")
    log_offset = profile.daemon_log_offset()
    cpu_before = cpu_sample(profile, stack)
    started = time.monotonic()
    submitted = submit_additions(code, count, offset=offset)
    submit_seconds = time.monotonic() - started
    pks = [node.pk for node, _ in submitted]
    while True:
        now = states(pks)
        done = sum(state in ("finished", "excepted", "killed") for state, _ in now.values())
        paused = sum(paused for _, paused in now.values())
        if done == len(pks) or paused:
            break
        time.sleep(0.5)
    wall = time.monotonic() - started
    cpu_after = cpu_sample(profile, stack)
    cpu_ms = {part: 1000 * (cpu_after[part] - cpu_before[part]) / count for part in cpu_after}
    cpu_ms["total"] = sum(cpu_ms.values())
    failures = profile.task_failures(since=log_offset)
    ok = 0
    for node, expected in submitted:
        node = orm.load_node(node.pk)
        ok += bool(node.is_finished_ok and node.outputs.sum.value == expected)
    transport, scheduler, backend = CONFIGS[name]
    return {
        "config": name,
        "transport": transport,
        "scheduler": scheduler,
        "backend": backend,
        "count": count,
        "ok": ok,
        "failed": count - ok,
        "paused": paused,
        "submit_seconds": round(submit_seconds, 2),
        "wall_seconds": round(wall, 2),
        "calcs_per_minute": round(60 * count / wall, 1),
        "cpu_ms_per_calc": {part: round(ms, 1) for part, ms in cpu_ms.items()},
        "task_retries": dict(Counter(f"{task}: {error}" for task, error in failures)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", help="stack.json of a running stack (default: start one)")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--poll-interval", type=float, default=2.0, help="seconds")
    parser.add_argument("--ssh-safe-interval", type=float, default=0.0, help="seconds")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument(
        "--warmup", type=int, default=2, help="unmeasured calculations per configuration first"
    )
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    names = args.configs.split(",")
    unknown = set(names) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown configs {sorted(unknown)}; known: {sorted(CONFIGS)}")

    directory = None
    if args.stack:
        stack = StackInfo.load(Path(args.stack))
    else:
        directory = new_stack_dir()
        stack, _ = stack_up(directory)
    home = Path(tempfile.mkdtemp(prefix="fcbench-home-"))
    profile = new_profile("fcbench")
    os.environ["AIIDA_PATH"] = str(profile.aiida_path)  # before aiida is imported
    results: list[dict[str, Any]] = []
    try:
        ssh_home(stack, home)
        profile.env["HOME"] = str(home)
        profile.env["PATH"] = f"{home / 'bin'}:{profile.env['PATH']}"
        profile.create()
        setup_computers(profile, stack, names, args.ssh_safe_interval)
        profile.remote_dirs.append(f"{stack.users['alice'].home}/aiida-bench")
        with loaded(profile):
            from aiida import orm

            for name in names:
                orm.load_computer(name).set_minimum_job_poll_interval(args.poll_interval)
            profile.start_daemon(args.workers)
            print(
                f"{args.count} core.arithmetic.add per configuration, {args.workers} daemon "
                f"workers, poll interval {args.poll_interval:g} s, ssh safe_interval "
                f"{args.ssh_safe_interval:g} s, stack {stack.url}\n"
            )
            # Not measured: the workers import the plugins and warm their caches on the first
            # calculations, which would count against whichever configuration runs first.
            for i, name in enumerate(names):
                if args.warmup:
                    run_batch(profile, stack, name, args.warmup, offset=-(i + 1) * args.warmup)
            print(
                f"{'config':<10} {'ok':>5} {'failed':>6} {'wall s':>8} {'calcs/min':>10}   "
                "CPU ms per calculation: daemon + API server = total"
            )
            for i, name in enumerate(names):
                row = run_batch(profile, stack, name, args.count, offset=i * args.count)
                results.append(row)
                retries = sum(row["task_retries"].values())
                cpu = row["cpu_ms_per_calc"]
                print(
                    f"{name:<10} {row['ok']:>5} {row['failed']:>6} "
                    f"{row['wall_seconds']:>8.1f} {row['calcs_per_minute']:>10.1f}   "
                    f"{cpu['daemon']:.0f} + {cpu['api_server']:.0f} = {cpu['total']:.0f}"
                    + (f"  ({retries} task retries)" if retries else "")
                    + (f"  ({row['paused']} PAUSED)" if row["paused"] else ""),
                    flush=True,
                )
    finally:
        problems = profile.destroy()
        shutil.rmtree(home, ignore_errors=True)
        if directory is not None:
            stack_down(directory)
            shutil.rmtree(directory, ignore_errors=True)
        for problem in problems:
            print(f"cleanup: {problem}", file=sys.stderr)
    by_name = {row["config"]: row for row in results}
    ratios = {
        f"firecrest/{other}": round(
            by_name["firecrest"]["calcs_per_minute"] / by_name[other]["calcs_per_minute"], 2
        )
        for other in by_name
        if other != "firecrest" and "firecrest" in by_name
    }
    cpu_ratios = {
        f"firecrest/{other}": round(
            by_name["firecrest"]["cpu_ms_per_calc"]["total"]
            / by_name[other]["cpu_ms_per_calc"]["total"],
            2,
        )
        for other in by_name
        if other != "firecrest" and "firecrest" in by_name
    }
    for label, ratio in ratios.items():
        print(f"calcs/min {label}: {ratio:.2f}x; CPU per calculation: {cpu_ratios[label]:.2f}x")
    if args.json:
        summary = {
            "benchmark": "aiida_calcjobs",
            "count": args.count,
            "workers": args.workers,
            "poll_interval": args.poll_interval,
            "ssh_safe_interval": args.ssh_safe_interval,
            "results": results,
            "ratios": ratios,
            "cpu_ratios": cpu_ratios,
        }
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if all(row["failed"] == 0 for row in results) else 1


if __name__ == "__main__":
    sys.exit(main())
