"""A real materials-science workflow through the API server: the equation of state of silicon.

    .venv/bin/python dev/qe_demo.py STACK_JSON [--workers 2] [--plot eos.png] [--keep DIR]

``dev/demo --workflow si-eos`` runs it on a stack of its own. With the commands an AiiDA user
would type:

1. ``verdi presto``: a fresh profile in a temporary AIIDA_PATH;
2. ``verdi computer setup -T firecrest -S firecrest`` + ``configure`` for alice;
3. ``aiida-pseudo install family``: silicon's UPF file from Debian's quantum-espresso-data
   (offline);
4. ``verdi code create core.code.installed`` for ``/usr/bin/pw.x`` on that computer;
5. 7 ``PwBaseWorkChain`` SCF runs of silicon, -9 % to +9 % in volume, submitted to the daemon;
   each one is uploaded, run under Slurm as alice, polled and retrieved (with pw.x's XML) by the
   plugin through the API server; progress is printed while they run;
6. a Birch-Murnaghan fit of E(V): the lattice constant and bulk modulus beside what pw.x gives
   for the same inputs run directly, and the wall time; ``--plot`` draws E(V) with the fit.

Exit status 0 only if every calculation finished OK and the fit succeeded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiida_demo import _verdi, configure_computer

from firecrest_dev import qe_workflow as qe
from firecrest_dev.homes import home_entries, remove_new_artefacts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stack_json")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--poll-interval", type=float, default=2.0, help="seconds")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for the whole EOS")
    parser.add_argument("--plot", help="draw E(V) and the fit into this PNG file")
    parser.add_argument("--keep", help="keep the AiiDA profile in this directory")
    args = parser.parse_args()
    stack = json.loads(Path(args.stack_json).read_text())
    alice = stack["users"]["alice"]
    home_before = home_entries(alice["home"])
    aiida_path = Path(args.keep or tempfile.mkdtemp(prefix="fc-qe-demo-"))
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    (aiida_path / "tmp").mkdir(exist_ok=True)
    os.environ.update(AIIDA_PATH=str(aiida_path), PATH=path, TMPDIR=str(aiida_path / "tmp"))
    env = dict(os.environ)
    t0 = time.monotonic()

    def step(message: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {message}", flush=True)

    try:
        profile = f"fcqe-{uuid.uuid4().hex[:6]}"
        _verdi(env, "presto", "--profile-name", profile, "--email", "demo@example.org")
        step(f"verdi presto: profile {profile!r} in {aiida_path}")
        label = "stack"
        configure_computer(env, stack, label, aiida_path)
        step(f"verdi computer setup/configure: {label!r} -> {stack['url']} ({stack['system']})")
        qe.install_family(env)
        step(f"aiida-pseudo install family: {qe.FAMILY!r} from {qe.PSEUDO_DIR / qe.PSEUDO_FILE}")
        _verdi(env, *qe.code_create_args(label))
        step(f"verdi code create: pw@{label} ({qe.PW_X}, serial)")

        from aiida import load_profile, orm

        load_profile(profile)
        orm.load_computer(label).set_minimum_job_poll_interval(args.poll_interval)
        _verdi(env, "daemon", "start", str(args.workers))
        step(f"verdi daemon start {args.workers}")
        inputs = qe.DEMO
        started = time.monotonic()
        nodes = qe.submit_eos(orm.load_code(f"pw@{label}"), inputs)
        step(
            f"submitted {len(nodes)} PwBaseWorkChain SCF runs of Si (ecutwfc "
            f"{inputs.ecutwfc:g} Ry, {inputs.kmesh}x{inputs.kmesh}x{inputs.kmesh} k-points, "
            f"a = {min(inputs.lattice_constants):.3f}..{max(inputs.lattice_constants):.3f} Å)"
        )
        qe.wait([n.pk for n in nodes], args.timeout, progress=step)
        wall = time.monotonic() - started
        volumes, energies, problems = qe.energies(nodes)
        for problem in problems:
            step(problem)
        for volume, energy in zip(volumes, energies, strict=True):
            print(f"    V = {volume:8.4f} Å^3   E = {energy:14.6f} eV")
        if problems:
            print(f"\nsummary: {len(problems)} of {len(nodes)} calculations failed: no fit")
            return 1
        try:
            fit = qe.fit_birch_murnaghan(volumes, energies)
        except qe.FitError as exc:
            print(f"\nsummary: the fit failed: {exc}")
            return 1
        ref, exp = qe.REFERENCE, qe.EXPERIMENT
        print(
            f"\nsummary: {len(nodes)} finished OK in {wall:.1f} s wall time "
            f"({args.workers} daemon workers, poll interval {args.poll_interval:g} s)\n"
            f"  lattice constant a0 = {fit.a:.4f} Å   (pw.x directly, same inputs: "
            f"{ref['a']:.4f} Å; experiment {exp['a']:.3f} Å)\n"
            f"  bulk modulus     B0 = {fit.bulk_modulus:.1f} GPa   (pw.x directly: "
            f"{ref['bulk_modulus']:.1f} GPa; experiment {exp['bulk_modulus']:.1f} GPa)\n"
            f"  equilibrium volume {fit.volume:.3f} Å^3, energy {fit.energy:.5f} eV per 2 atoms"
        )
        if args.plot:
            qe.plot(
                volumes, energies, fit, Path(args.plot),
                f"Si, {qe.PSEUDO_FILE}, {inputs.ecutwfc:g} Ry, through FirecREST: "
                f"a0 = {fit.a:.3f} Å, B0 = {fit.bulk_modulus:.0f} GPa",
            )  # fmt: skip
            step(f"E(V) plotted to {args.plot}")
        return 0
    finally:
        _verdi(env, "daemon", "stop", check=False)
        if not args.keep:
            shutil.rmtree(aiida_path, ignore_errors=True)
            remove_new_artefacts(alice["home"], home_before)


if __name__ == "__main__":
    sys.exit(main())
