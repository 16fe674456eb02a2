"""AiiDA calculations through the `firecrest` plugin vs. aiida-core's `core.ssh_async` +
`core.slurm`, on the same stack, with the same daemon, measured side by side in one run.

    .venv/bin/python benchmarks/aiida_calcjobs.py [--stack DIR/stack.json] [--count 100]
        [--workers 2] [--poll-interval 2] [--ssh-safe-interval 0] [--warmup 2] [--slurm-mode ssh]
        [--configs firecrest,asyncssh,openssh] [--rounds 1] [--json out.json] [--plot out.png]

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
``--rounds`` rounds are run; in each, for each configuration in turn (the order reversed every
other round, so that neither always runs first), ``--count`` `core.arithmetic.add` calculations
are submitted at once and waited for. Printed per batch are the wall time from the first
submission to the last calculation's end, the part of it spent submitting (here, one by one),
calculations per minute, and the CPU time per
calculation of the daemon (with what it runs) and of the API server, from /proc, which depends
much less on the machine's load than the wall time (not sshd's: see ``cpu_sample``), how busy
the machine's CPUs were meanwhile (all processes: near 100 % the run is CPU-bound) and that busy
time per calculation (everything the configuration costs: sshd, Slurm, the databases, and other
users' work too); below it, the CPU per calculation by party (``PartySampler``, approximate:
sampled from /proc), and what each calculation asked of the cluster and of the API server,
counted in their logs (``operation_counts``): SSH connections and sessions (commands, SFTP) in
sshd's, HTTP requests by endpoint and their body bytes in the server's access log. Then the
median over the rounds and, per round, the ratios firecrest / other of the wall times, of the
time after the last submission (on a loaded machine this script's one-by-one submitting, the
same work for every configuration, can take most of the wall time), of the CPU times and of
the machine's busy time (>1: firecrest slower / costlier).

Where the time goes: while waiting, the script reads every calculation's state from the
database twice a second and times its phases (``PHASES``): queued (from its submission until a
worker picks it up), upload, submit, scheduler (the job with the scheduler, until the poll that
sees it end), retrieve, parse. Printed per batch are the median seconds a calculation spends in
each, and when the last calculation left it. ``--plot`` draws the rounds' wall times, CPU times and
phases (``plots.aiida_figure``).

Without --stack a stack is started for the run and stopped afterwards. This machine is shared:
absolute numbers drift; compare the ratios of the same round.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from operation_counts import AccessLogCounts, SshdCounts, per_calculation

from firecrest_dev.aiida_env import (
    HOST_ALIAS,
    AiidaProfile,
    loaded,
    new_profile,
    ssh_home,
    submit_additions,
)
from firecrest_dev.info import StackInfo
from firecrest_dev.running import new_stack_dir, stack_down, stack_up

CONFIGS = {
    "firecrest": ("firecrest", "firecrest", None),
    "asyncssh": ("core.ssh_async", "core.slurm", "asyncssh"),
    "openssh": ("core.ssh_async", "core.slurm", "openssh"),
}


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


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs so far, from /proc/stat (idle and iowait are not
    busy): the machine's load during a batch, whoever causes it (sshd's and the cluster's
    share of the work included, and other users' too)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(fields[:8])  # without guest time, which user time already counts
    return total - fields[3] - fields[4], total


class PartySampler(threading.Thread):
    """Every process's CPU time by party (daemon, API server, sshd, Slurm, databases, ...),
    sampled from /proc five times a second: processes that live shorter than a sample (a
    squeue, say) are missed unless their parent is sampled, but sshd's session processes,
    which ``cpu_sample`` must leave out, are counted while they live. Approximate; for telling
    where the extra CPU of one configuration goes, next to ``machine_ticks``' exact total."""

    PERIOD = 0.2

    def __init__(self, stack: StackInfo) -> None:
        super().__init__(daemon=True)
        self._server = set(_tree([stack.pids["server"]]))
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._start_cpu: dict[tuple[int, int], float] = {}
        self._last: dict[tuple[int, int], tuple[str, float]] = {}

    def _party(self, pid: int, name: str) -> str:
        if pid in self._server:
            return "api server"
        if name.startswith(("python", "verdi", "circus")):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                return "other"
            return "aiida daemon" if b"verdi" in command or b"circus" in command else "other"
        if name.startswith("sshd") or name == "sftp-server":
            return "sshd"
        if name.startswith(("slurm", "squeue", "sacct", "sbatch", "scontrol", "munged")):
            return "slurm"
        if name.startswith(("mariadbd", "mysqld")):
            return "mariadb (accounting)"
        if name.startswith("postgres"):
            return "postgresql (aiida)"
        if name in ("beam.smp", "erl_child_setup", "epmd"):
            return "rabbitmq"
        return "other"

    def _snapshot(self) -> dict[tuple[int, int], tuple[str, float]]:
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            key = (int(entry.name), int(fields[19]))  # (pid, start time): pids are reused
            found[key] = (name, sum(int(v) for v in fields[11:15]) / CLOCK_TICKS)
        return found

    def start_batch(self) -> None:
        snapshot = self._snapshot()
        with self._lock:
            self._start_cpu = {key: cpu for key, (_, cpu) in snapshot.items()}
            self._last = snapshot

    def run(self) -> None:
        while not self._stop_event.wait(self.PERIOD):
            snapshot = self._snapshot()
            with self._lock:
                self._last.update(snapshot)

    def batch_ms(self, count: int) -> dict[str, float]:
        """CPU milliseconds per calculation of each party since ``start_batch``."""
        with self._lock:
            parties: Counter[str] = Counter()
            for key, (name, cpu) in self._last.items():
                parties[self._party(key[0], name)] += cpu - self._start_cpu.get(key, 0.0)
        return {party: round(1000 * cpu / count, 1) for party, cpu in parties.most_common()}

    def stop(self) -> None:
        self._stop_event.set()


# ---------------------------------------------------------------------------------- the run


def bench_dir(profile: AiidaProfile, stack: StackInfo) -> str:
    """The run's own directory in alice's home, removed at its end: alice is every stack's
    user on this machine, so runs at the same time (and tests) must not share one."""
    return f"{stack.users['alice'].home}/aiida-bench-{profile.name}"


def setup_computers(
    profile: AiidaProfile, stack: StackInfo, names: list[str], safe_interval: float
) -> None:
    alice = pwd.getpwnam("alice")
    for name in names:
        transport, scheduler, backend = CONFIGS[name]
        workdir = f"{bench_dir(profile, stack)}/{name}/"
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


# A calculation's phases, in order, from its process state and its CalcJob state (the
# `state` attribute, which aiida-core sets when a transport task has *ended*: None while
# uploading, unstashing/submitting after the upload, withscheduler after the submission,
# stashing/retrieving after the last scheduler poll, parsing after the retrieval).
PHASES = ("queued", "upload", "submit", "scheduler", "retrieve", "parse")
_PHASE_OF_STATE = {
    None: "upload",
    "uploading": "upload",
    "unstashing": "submit",
    "submitting": "submit",
    "withscheduler": "scheduler",
    "stashing": "retrieve",
    "retrieving": "retrieve",
    "parsing": "parse",
}
TERMINAL = ("finished", "excepted", "killed")


def _observe(pks: list[int]) -> dict[int, tuple[str, bool]]:
    """pk -> (phase or "done", paused), straight from the database."""
    from aiida import orm

    query = orm.QueryBuilder().append(
        orm.ProcessNode,
        filters={"id": {"in": pks}},
        project=["id", "attributes.process_state", "attributes.paused", "attributes.state"],
    )
    seen = {}
    for pk, process_state, paused, state in query.all():
        if process_state in TERMINAL:
            phase = "done"
        elif process_state in (None, "created"):
            phase = "queued"
        else:
            phase = _PHASE_OF_STATE.get(state, "upload")
        seen[pk] = (phase, bool(paused))
    return seen


def phase_times(
    first_seen: dict[int, dict[str, float]], created: dict[int, float], started: float
) -> dict[str, dict[str, float]]:
    """Per phase: the median and 90th percentile of the seconds a calculation spent in it, and
    when (seconds after the first submission) the last calculation left it. A phase that
    began and ended between two looks counts 0 s (its time goes to the phase seen before)."""
    order = (*PHASES, "done")
    spent: dict[str, list[float]] = {phase: [] for phase in PHASES}
    left: dict[str, float] = {phase: 0.0 for phase in PHASES}
    for pk, seen in first_seen.items():
        seen = {**seen, "queued": created[pk]}
        if "done" not in seen:
            continue  # paused: not timed
        times = {}
        following = seen["done"]
        for phase in reversed(order):  # an unseen phase starts and ends where the next starts
            following = times[phase] = seen.get(phase, following)
        for phase, after in zip(PHASES, order[1:], strict=True):
            spent[phase].append(times[after] - times[phase])
            left[phase] = max(left[phase], times[after] - started)
    result = {}
    for phase in PHASES:
        values = sorted(spent[phase])
        if values:
            result[phase] = {
                "median_s": round(statistics.median(values), 2),
                "p90_s": round(values[min(len(values) - 1, int(0.9 * len(values)))], 2),
                "last_out_s": round(left[phase], 2),
            }
    return result


def run_batch(
    profile: AiidaProfile,
    stack: StackInfo,
    name: str,
    count: int,
    offset: int,
    parties: PartySampler | None = None,
) -> dict[str, Any]:
    from aiida import orm

    sshd = SshdCounts(stack.dir / "log" / "sshd.out", "alice")
    access = [AccessLogCounts(path, "alice") for path in sorted(stack.dir.glob("log/server*.out"))]

    code = orm.load_code(f"bash-installed@{name}")
    log_offset = profile.daemon_log_offset()
    cpu_before = cpu_sample(profile, stack)
    busy_before, total_before = machine_ticks()
    if parties is not None:
        parties.start_batch()
    started = time.monotonic()
    started_epoch = time.time()
    submitted = submit_additions(code, count, offset=offset)
    submit_seconds = time.monotonic() - started
    pks = [node.pk for node, _ in submitted]
    created = {node.pk: node.ctime.timestamp() for node, _ in submitted}
    first_seen: dict[int, dict[str, float]] = {pk: {} for pk in pks}
    while True:
        now = _observe(pks)
        looked = time.time()
        for pk, (phase, _) in now.items():
            first_seen[pk].setdefault(phase, looked)
        done = sum(phase == "done" for phase, _ in now.values())
        paused = sum(paused for _, paused in now.values())
        if done == len(pks) or paused:
            break
        time.sleep(0.5)
    wall = time.monotonic() - started
    cpu_after = cpu_sample(profile, stack)
    busy_after, total_after = machine_ticks()
    operations = _operations(sshd, access)
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
        # From the last submission to the last end: on a loaded machine the submitting (by this
        # script, the same for every configuration) can take most of the wall time.
        "after_submit_seconds": round(wall - submit_seconds, 2),
        "calcs_per_minute": round(60 * count / wall, 1),
        "cpu_ms_per_calc": {part: round(ms, 1) for part, ms in cpu_ms.items()},
        "machine_busy": round((busy_after - busy_before) / max(1, total_after - total_before), 2),
        # All CPUs' busy time (every process, whoever's) per calculation.
        "machine_cpu_ms_per_calc": round(
            1000 * (busy_after - busy_before) / CLOCK_TICKS / count, 1
        ),
        "cpu_ms_per_calc_by_party": parties.batch_ms(count) if parties is not None else {},
        "phases": phase_times(first_seen, created, started_epoch),
        "operations_per_calc": per_calculation(operations, count),
        "task_retries": dict(Counter(f"{task}: {error}" for task, error in failures)),
    }


def _operations(sshd: SshdCounts, access: list[AccessLogCounts]) -> dict[str, Any]:
    """What the batch asked of sshd and of the API server (``operation_counts``)."""
    operations = sshd.take()
    requests: Counter[str] = Counter()
    body = {"in": 0, "out": 0}
    for reader in access:
        counted = reader.take()
        requests.update(counted["http_requests"])
        for way in body:
            body[way] += counted["http_body_bytes"][way]
    operations["http_requests"] = dict(requests.most_common())
    operations["http_body_bytes"] = body
    return operations


def print_row(row: dict[str, Any]) -> None:
    retries = sum(row["task_retries"].values())
    cpu = row["cpu_ms_per_calc"]
    print(
        f"{row['round']:>5} {row['config']:<10} {row['ok']:>4} {row['failed']:>6} "
        f"{row['wall_seconds']:>8.1f} {row['submit_seconds']:>8.1f} "
        f"{row['calcs_per_minute']:>10.1f}   "
        f"{cpu['daemon']:>6.0f} + {cpu['api_server']:>4.0f} = {cpu['total']:>6.0f}"
        f"   {100 * row['machine_busy']:>4.0f}%, {row['machine_cpu_ms_per_calc']:>5.0f}"
        + (f"  ({retries} task retries)" if retries else "")
        + (f"  ({row['paused']} PAUSED)" if row["paused"] else ""),
        flush=True,
    )
    if by_party := row.get("cpu_ms_per_calc_by_party"):
        shown = ", ".join(f"{party} {ms:.0f}" for party, ms in by_party.items() if ms >= 1)
        print(f"{'':>17}CPU ms per calculation by party (sampled): {shown}", flush=True)
    if operations := row.get("operations_per_calc"):
        print(f"{'':>17}per calculation: {describe_operations(operations)}", flush=True)


def describe_operations(ops: dict[str, Any]) -> str:
    sessions = ", ".join(f"{kind} {n:g}" for kind, n in ops["sessions"].items())
    text = f"SSH connections {ops['connections']:g}, sessions: {sessions or 'none'}"
    if ops["http_requests"]:
        http = ops["http_requests"]
        text += f"; HTTP requests {sum(http.values()):g} (" + ", ".join(
            f"{endpoint} {n:g}" for endpoint, n in http.items()
        )
        text += f"), body bytes in {ops['http_body_bytes']['in']:g} out "
        text += f"{ops['http_body_bytes']['out']:g}"
    return text


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, float]:
    flat: dict[str, float] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def median_operations(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per counted quantity ("sessions.command", "http_requests.GET /filesystem/..."), its
    median per calculation over the rounds (0 where a round had none), and the totals of SSH
    sessions and HTTP requests."""
    flat = [_flatten(row) for row in rows]
    for row, original in zip(flat, rows, strict=True):
        row["total.ssh_sessions"] = sum(original["sessions"].values())
        row["total.http_requests"] = sum(original["http_requests"].values())
    keys = sorted({key for row in flat for key in row})
    return (
        {key: round(statistics.median(row.get(key, 0) for row in flat), 2) for key in keys}
        if flat
        else {}
    )


def summarize(results: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Per configuration: the per-round values and their medians; per round: the ratios
    firecrest / other of the wall time and of the CPU time per calculation."""
    per_config: dict[str, Any] = {}
    for name in names:
        rows = [row for row in results if row["config"] == name]
        if not rows:
            continue
        walls = [row["wall_seconds"] for row in rows]
        per_config[name] = {
            "wall_seconds": walls,
            "wall_seconds_median": round(statistics.median(walls), 2),
            "cpu_ms_per_calc": [row["cpu_ms_per_calc"] for row in rows],
            "cpu_ms_per_calc_median": {
                part: round(statistics.median(row["cpu_ms_per_calc"][part] for row in rows), 1)
                for part in rows[0]["cpu_ms_per_calc"]
            },
            "operations_per_calc_median": median_operations(
                [row["operations_per_calc"] for row in rows if "operations_per_calc" in row]
            ),
            "phases_median_s": {
                phase: round(
                    statistics.median(
                        row["phases"][phase]["median_s"] for row in rows if phase in row["phases"]
                    ),
                    2,
                )
                for phase in PHASES
                if any(phase in row["phases"] for row in rows)
            },
        }
    by_round: dict[tuple[int, str], dict[str, Any]] = {
        (row["round"], row["config"]): row for row in results
    }
    rounds = sorted({row["round"] for row in results})
    wall_ratios, cpu_ratios, machine_ratios, after_submit_ratios = {}, {}, {}, {}
    for other in names:
        if other == "firecrest" or "firecrest" not in names:
            continue
        pairs = [
            (by_round[(r, "firecrest")], by_round[(r, other)])
            for r in rounds
            if (r, "firecrest") in by_round and (r, other) in by_round
        ]
        wall_ratios[f"firecrest/{other}"] = [
            round(mine["wall_seconds"] / theirs["wall_seconds"], 2) for mine, theirs in pairs
        ]
        after_submit_ratios[f"firecrest/{other}"] = [
            round(mine["after_submit_seconds"] / max(0.01, theirs["after_submit_seconds"]), 2)
            for mine, theirs in pairs
        ]
        cpu_ratios[f"firecrest/{other}"] = [
            round(mine["cpu_ms_per_calc"]["total"] / theirs["cpu_ms_per_calc"]["total"], 2)
            for mine, theirs in pairs
        ]
        machine_ratios[f"firecrest/{other}"] = [
            round(mine["machine_cpu_ms_per_calc"] / theirs["machine_cpu_ms_per_calc"], 2)
            for mine, theirs in pairs
        ]
    return {
        "configs": per_config,
        "wall_ratios": wall_ratios,
        "after_submit_ratios": after_submit_ratios,
        "cpu_ratios": cpu_ratios,
        "machine_cpu_ratios": machine_ratios,
    }


def print_summary(summary: dict[str, Any], results: list[dict[str, Any]]) -> None:
    print(f"\n{'config':<10} {'median wall s':>13}   per round        median CPU ms/calc")
    for name, config in summary["configs"].items():
        walls = "  ".join(f"{w:.1f}" for w in config["wall_seconds"])
        cpu = config["cpu_ms_per_calc_median"]
        print(
            f"{name:<10} {config['wall_seconds_median']:>13.1f}   {walls:<16} "
            f"{cpu['daemon']:.0f} + {cpu['api_server']:.0f} = {cpu['total']:.0f}"
        )
    for label, ratios in summary["wall_ratios"].items():
        cpu = summary["cpu_ratios"][label]
        machine = summary["machine_cpu_ratios"][label]
        print(
            f"{label} per round: wall time "
            + "  ".join(f"{r:.2f}x" for r in ratios)
            + "; after the last submission "
            + "  ".join(f"{r:.2f}x" for r in summary["after_submit_ratios"][label])
            + "; CPU per calculation "
            + "  ".join(f"{r:.2f}x" for r in cpu)
            + "; machine CPU per calculation "
            + "  ".join(f"{r:.2f}x" for r in machine)
        )
    print(
        "\nper calculation, median over the rounds "
        "(SSH counted in sshd's log, HTTP in the server's)"
    )
    for name, config in summary["configs"].items():
        ops = config.get("operations_per_calc_median") or {}
        print(
            f"{name:<10} SSH connections {ops.get('connections', 0):g}, sessions "
            f"{ops.get('total.ssh_sessions', 0):g}, HTTP requests "
            f"{ops.get('total.http_requests', 0):g}, HTTP body bytes "
            f"{ops.get('http_body_bytes.in', 0):g} in / {ops.get('http_body_bytes.out', 0):g} out"
        )
    print(
        "\nseconds per calculation in each phase, median (last calculation out, s after the "
        "first submission)"
    )
    print(f"{'round':>5} {'config':<10} " + " ".join(f"{phase:>15}" for phase in PHASES))
    for row in results:
        cells = []
        for phase in PHASES:
            timed = row["phases"].get(phase)
            cells.append(
                f"{timed['median_s']:>6.1f} ({timed['last_out_s']:>5.0f})" if timed else "-"
            )
        print(f"{row['round']:>5} {row['config']:<10} " + " ".join(f"{c:>15}" for c in cells))


def write_document(
    args: argparse.Namespace,
    stack: StackInfo,
    load: dict[str, str],
    results: list[dict[str, Any]],
    names: list[str],
) -> dict[str, Any]:
    """The run's JSON document (written to ``--json`` if given) with the batches so far."""
    document = {
        "benchmark": "aiida_calcjobs",
        "count": args.count,
        "rounds": args.rounds,
        "workers": args.workers,
        "poll_interval": args.poll_interval,
        "ssh_safe_interval": args.ssh_safe_interval,
        "slurm_mode": stack.slurm_mode,
        "cpus": os.cpu_count(),
        "load_average": load,
        "results": results,
        **summarize(results, names),
    }
    if args.json:
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    return document


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


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
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="every configuration once per round (order alternates)",
    )
    parser.add_argument(
        "--slurm-mode",
        choices=("ssh", "rest"),
        default="ssh",
        help="how the stack started here reaches Slurm (with --stack: that stack's)",
    )
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--plot", help="also draw them into this PNG file (needs matplotlib)")
    args = parser.parse_args()
    names = args.configs.split(",")
    unknown = set(names) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown configs {sorted(unknown)}; known: {sorted(CONFIGS)}")
    if args.rounds < 1 or args.count < 1:
        parser.error("--rounds and --count must be at least 1")

    directory = None
    if args.stack:
        stack = StackInfo.load(Path(args.stack))
    else:
        directory = new_stack_dir()
        stack, _ = stack_up(directory, slurm_mode=args.slurm_mode)
    home = Path(tempfile.mkdtemp(prefix="fcbench-home-"))
    profile = new_profile("fcbench")
    os.environ["AIIDA_PATH"] = str(profile.aiida_path)  # before aiida is imported
    results: list[dict[str, Any]] = []
    load = {"start": load_average()}
    try:
        ssh_home(stack, home)
        profile.env["HOME"] = str(home)
        profile.env["PATH"] = f"{home / 'bin'}:{profile.env['PATH']}"
        profile.create()
        setup_computers(profile, stack, names, args.ssh_safe_interval)
        profile.remote_dirs.append(bench_dir(profile, stack))
        with loaded(profile):
            from aiida import orm

            for name in names:
                orm.load_computer(name).set_minimum_job_poll_interval(args.poll_interval)
            profile.start_daemon(args.workers)
            print(
                f"{args.count} core.arithmetic.add per configuration and round, {args.rounds} "
                f"rounds, {args.workers} daemon workers, poll interval {args.poll_interval:g} s, "
                f"ssh safe_interval {args.ssh_safe_interval:g} s, stack {stack.url} "
                f"(scheduler over {stack.slurm_mode}), "
                f"load average {load['start']} ({os.cpu_count()} CPUs)\n"
            )
            # Not measured: the workers import the plugins and warm their caches on the first
            # calculations, which would count against whichever configuration runs first.
            for i, name in enumerate(names):
                if args.warmup:
                    run_batch(profile, stack, name, args.warmup, offset=-(i + 1) * args.warmup)
            print(
                f"{'round':>5} {'config':<10} {'ok':>4} {'failed':>6} {'wall s':>8} "
                f"{'submit s':>8} "
                f"{'calcs/min':>10}   CPU ms per calculation: daemon + API server = total   "
                "machine CPU busy, its CPU ms per calculation"
            )
            parties = PartySampler(stack)
            parties.start()
            for number in range(1, args.rounds + 1):
                order = names if number % 2 else names[::-1]
                for position, name in enumerate(order):
                    batch = (number - 1) * len(names) + names.index(name)
                    row = {
                        "round": number,
                        "position": position,
                        **run_batch(profile, stack, name, args.count, batch * args.count, parties),
                    }
                    results.append(row)
                    print_row(row)
                    if args.json:  # so far: an interrupted run keeps what it measured
                        write_document(args, stack, load, results, names)
            parties.stop()
    finally:
        load["end"] = load_average()
        problems = profile.destroy()
        shutil.rmtree(home, ignore_errors=True)
        if directory is not None:
            stack_down(directory)
            shutil.rmtree(directory, ignore_errors=True)
        for problem in problems:
            print(f"cleanup: {problem}", file=sys.stderr)
    summary = summarize(results, names)
    print_summary(summary, results)
    print(f"\nload average: {load['start']} at the start, {load['end']} at the end")
    document = write_document(args, stack, load, results, names)
    if args.plot:
        from plots import aiida_figure

        aiida_figure(document, Path(args.plot))
    return 0 if all(row["failed"] == 0 for row in results) else 1


if __name__ == "__main__":
    sys.exit(main())
