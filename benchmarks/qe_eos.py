"""A real materials workflow, side by side: the equation of state of silicon (Quantum ESPRESSO
``PwBaseWorkChain`` SCF runs, ``dev/firecrest_dev/qe_workflow.py``) through the `firecrest`
plugin and the API server, and through aiida-core's `core.ssh_async` (asyncssh) + `core.slurm`
straight to the stack's sshd, alternating, in one run.

    .venv/bin/python benchmarks/qe_eos.py [--stack DIR/stack.json] [--rounds 2] [--short]
        [--warmup 1] [--workers 2] [--poll-interval 2] [--json out.json] [--plot out.png]

One AiiDA profile (PostgreSQL + RabbitMQ), one daemon, two computers for alice. In each round
each configuration runs the whole EOS (7 volumes, or 3 with ``--short``) once; the order is
reversed every other round so that neither always runs first; before the first round, each
runs ``--warmup`` short EOS (3 volumes, unmeasured). Per batch it reports:

- the wall time from the first submission to the last work chain's end, and per calculation;
- the bytes moved between the daemon and the cluster's front door, both ways, counted by a TCP
  relay this script puts in front of each (the API server's port for `firecrest`, sshd's for
  `core.ssh_async`): what crosses the network, whatever the protocol (TLS would add a little to
  both); the token requests to the identity provider are not counted;
- requests per calculation: HTTP requests for `firecrest` (the API server's access log lines
  for alice in the batch), TCP connections for both (one SSH connection carries many channels,
  whose number is not visible from outside the encryption).

The energies of the two configurations are compared (same pw.x, same inputs: they must agree).
Without --stack a stack is started for the run and stopped afterwards. The machine is shared:
compare the two configurations of the same round, not absolute figures across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pwd
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from firecrest_dev import qe_workflow as qe
from firecrest_dev.aiida_env import HOST_ALIAS, AiidaProfile, loaded, new_profile, ssh_home
from firecrest_dev.info import StackInfo
from firecrest_dev.running import new_stack_dir, stack_down, stack_up

CONFIGS = ("firecrest", "asyncssh")


class CountingRelay:
    """A TCP relay on 127.0.0.1 in front of ``host:port``, counting bytes each way and
    connections; runs its own event loop in a thread."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.up = self.down = self.connections = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> int:
        self._thread.start()
        self._ready.wait(10)
        return self.port

    def snapshot(self) -> tuple[int, int, int]:
        return self.up, self.down, self.connections

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            target_reader, target_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
            try:
                while data := await src.read(65536):
                    if up:
                        self.up += len(data)
                    else:
                        self.down += len(data)
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, target_writer, True), pump(target_reader, writer, False))


def access_log_requests(stack: StackInfo, offset: int) -> tuple[int, int]:
    """(alice's HTTP requests in the server's access log after byte ``offset``, new offset)."""
    log = stack.dir / "log" / "server.out"
    with log.open("rb") as handle:
        handle.seek(offset)
        data = handle.read()
    count = 0
    for line in data.splitlines():
        if b'"firecrest_server.access"' not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        count += record.get("user") == "alice"
    return count, offset + len(data)


def setup(profile: AiidaProfile, stack: StackInfo, api_relay: int) -> None:
    alice = pwd.getpwnam("alice")
    credentials = stack.users["alice"]
    for name in CONFIGS:
        workdir = f"{credentials.home}/aiida-bench-qe/{name}/"
        for path in (Path(workdir).parent, Path(workdir)):
            path.mkdir(exist_ok=True)
            os.chown(path, alice.pw_uid, alice.pw_gid)
        if name == "firecrest":
            configure = {
                "url": f"http://127.0.0.1:{api_relay}",
                "token_uri": stack.token_url,
                "client_id": credentials.client_id,
                "client_secret": credentials.client_secret,
                "compute_resource": stack.system,
                "billing_account": stack.account,
                "temp_directory": f"{credentials.home}/.aiida-firecrest-tmp",
            }
            profile.add_computer(stack, name, workdir=workdir, configure=configure)
        else:
            profile.add_computer(
                stack, name, transport="core.ssh_async", scheduler="core.slurm",
                workdir=workdir,
                configure={"host": HOST_ALIAS, "backend": "asyncssh", "safe_interval": 0.0},
            )  # fmt: skip
        profile.verdi(*qe.code_create_args(name))
    profile.remote_dirs.append(f"{credentials.home}/aiida-bench-qe")
    qe.install_family(profile.env)


def run_batch(
    profile: AiidaProfile, stack: StackInfo, name: str, inputs: qe.EosInputs,
    relay: CountingRelay, log_offset: int,
) -> tuple[dict[str, Any], int]:  # fmt: skip
    from aiida import orm

    up0, down0, conns0 = relay.snapshot()
    t0 = time.monotonic()
    nodes = qe.submit_eos(orm.load_code(f"pw@{name}"), inputs)
    qe.wait([n.pk for n in nodes], 1800)
    wall = time.monotonic() - t0
    time.sleep(1)  # let the last responses' bytes through the relay
    up1, down1, conns1 = relay.snapshot()
    requests, log_offset = access_log_requests(stack, log_offset)
    volumes, energies, problems = qe.energies(nodes)
    count = len(nodes)
    row = {
        "config": name,
        "calculations": count,
        "ok": count - len(problems),
        "wall_s": round(wall, 2),
        "wall_per_calc_s": round(wall / count, 2),
        "kib_per_calc": round((up1 - up0 + down1 - down0) / 1024 / count, 1),
        "kib_up_per_calc": round((up1 - up0) / 1024 / count, 1),
        "kib_down_per_calc": round((down1 - down0) / 1024 / count, 1),
        "connections_per_calc": round((conns1 - conns0) / count, 2),
        "http_requests_per_calc": round(requests / count, 1) if name == "firecrest" else None,
        "problems": problems,
        "energies_ev": energies,
        "volumes": volumes,
    }
    if not problems:
        fit = qe.fit_birch_murnaghan(volumes, energies)
        row.update(a=round(fit.a, 4), bulk_modulus=round(fit.bulk_modulus, 1))
    return row, log_offset


def print_row(row: dict[str, Any]) -> None:
    for problem in row["problems"]:
        print(f"      {problem}", flush=True)
    http = row["http_requests_per_calc"]
    print(
        f"{row['round']:>5} {row['config']:<10} {row['ok']:>3}/{row['calculations']:<3} "
        f"{row['wall_s']:>8.1f} {row['wall_per_calc_s']:>8.1f} {row['kib_per_calc']:>10.1f} "
        f"({row['kib_up_per_calc']:.0f} up, {row['kib_down_per_calc']:.0f} down) "
        f"{row['connections_per_calc']:>6.2f} {'-' if http is None else f'{http:.1f}':>6}   "
        f"a0 {row.get('a', float('nan')):.4f} Å B0 {row.get('bulk_modulus', float('nan')):.1f} GPa",
        flush=True,
    )


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name in CONFIGS:
        mine = [r for r in rows if r["config"] == name]
        summary[name] = {
            key: statistics.median(r[key] for r in mine)
            for key in ("wall_s", "wall_per_calc_s", "kib_per_calc", "connections_per_calc")
        }
        if name == "firecrest":
            summary[name]["http_requests_per_calc"] = statistics.median(
                r["http_requests_per_calc"] for r in mine
            )
    pairs: dict[int, dict[str, Any]] = {}
    for row in rows:
        pairs.setdefault(row["round"], {})[row["config"]] = row
    # Energies can only be compared where both batches finished every calculation.
    complete = {
        n: p for n, p in pairs.items() if all(r["ok"] == r["calculations"] for r in p.values())
    }
    summary["wall_ratio_per_round"] = [
        round(p["firecrest"]["wall_s"] / p["asyncssh"]["wall_s"], 2) for p in pairs.values()
    ]
    summary["max_energy_difference_ev"] = max(
        (
            abs(a - b)
            for p in complete.values()
            for a, b in zip(
                p["firecrest"]["energies_ev"], p["asyncssh"]["energies_ev"], strict=True
            )
        ),
        default=float("nan"),
    )
    summary["failed"] = {name: sum(r["calculations"] - r["ok"] for r in rows if r["config"] == name)
                         for name in CONFIGS}  # fmt: skip
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", help="stack.json of a running stack (default: start one)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--short", action="store_true", help="3 volumes at 10 Ry (as in CI)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="unmeasured short EOS runs per configuration first"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--poll-interval", type=float, default=2.0, help="seconds")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--plot", help="also draw them into this PNG file")
    args = parser.parse_args()
    inputs = qe.SHORT if args.short else qe.DEMO

    directory = None
    if args.stack:
        stack = StackInfo.load(Path(args.stack))
    else:
        directory = new_stack_dir()
        stack, _ = stack_up(directory)
    host, port = stack.url.removeprefix("http://").split("/")[0].rsplit(":", 1)
    relays = {
        "firecrest": CountingRelay(host, int(port)),
        "asyncssh": CountingRelay(stack.ssh_host, stack.ssh_port),
    }
    ports = {name: relay.start() for name, relay in relays.items()}
    home = Path(tempfile.mkdtemp(prefix="fcbench-qe-home-"))
    profile = new_profile("fcbenchqe")
    os.environ["AIIDA_PATH"] = str(profile.aiida_path)  # before aiida is imported
    rows: list[dict[str, Any]] = []
    try:
        ssh_home(stack, home, port=ports["asyncssh"])
        profile.env["HOME"] = str(home)
        profile.env["PATH"] = f"{home / 'bin'}:{profile.env['PATH']}"
        profile.create()
        setup(profile, stack, ports["firecrest"])
        with loaded(profile):
            from aiida import orm

            for name in CONFIGS:
                orm.load_computer(name).set_minimum_job_poll_interval(args.poll_interval)
            profile.start_daemon(args.workers)
            print(
                f"Si EOS: {len(inputs.volume_factors)} PwBaseWorkChain SCF runs per batch "
                f"(ecutwfc {inputs.ecutwfc:g} Ry, k {inputs.kmesh}^3), {args.rounds} rounds, "
                f"{args.workers} daemon workers, poll interval {args.poll_interval:g} s, "
                f"{os.cpu_count()} CPUs, load average "
                f"{' '.join(Path('/proc/loadavg').read_text().split()[:3])}\n"
            )
            print(
                f"{'round':>5} {'config':<10} {'ok':>7} {'wall s':>8} {'s/calc':>8} "
                f"{'KiB/calc':>10} (up, down)      {'conn/c':>6} {'req/c':>6}"
            )
            # Not measured: the workers import aiida-quantumespresso and the transports' code
            # on their first calculations, which would count against whichever runs first.
            for _ in range(args.warmup):
                for name in CONFIGS:
                    qe.wait(
                        [n.pk for n in qe.submit_eos(orm.load_code(f"pw@{name}"), qe.SHORT)], 900
                    )
            log_offset = (stack.dir / "log" / "server.out").stat().st_size
            for number in range(1, args.rounds + 1):
                order = CONFIGS if number % 2 else CONFIGS[::-1]
                for name in order:
                    row, log_offset = run_batch(
                        profile, stack, name, inputs, relays[name], log_offset
                    )
                    row["round"] = number
                    rows.append(row)
                    print_row(row)
    finally:
        problems = profile.destroy()
        shutil.rmtree(home, ignore_errors=True)
        for relay in relays.values():
            relay.stop()
        if directory is not None:
            stack_down(directory)
            shutil.rmtree(directory, ignore_errors=True)
        for problem in problems:
            print(f"cleanup: {problem}", file=sys.stderr)
    ok = rows and all(r["ok"] == r["calculations"] for r in rows)
    document: dict[str, Any] = {
        "benchmark": "qe_eos",
        "inputs": {
            "volume_factors": inputs.volume_factors,
            "ecutwfc": inputs.ecutwfc,
            "kmesh": inputs.kmesh,
        },
        "rounds": args.rounds,
        "workers": args.workers,
        "poll_interval": args.poll_interval,
        "cpus": os.cpu_count(),
        "results": rows,
    }
    if rows:
        document.update(summarize(rows))
        print(
            f"\nmedian wall s: firecrest {document['firecrest']['wall_s']:.1f}, asyncssh "
            f"{document['asyncssh']['wall_s']:.1f}; firecrest/asyncssh per round "
            f"{document['wall_ratio_per_round']}; largest energy difference "
            f"{document['max_energy_difference_ev']:.2e} eV; failed {document['failed']}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    if args.plot and rows:
        from plots import qe_eos_figure

        qe_eos_figure(document, Path(args.plot))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
