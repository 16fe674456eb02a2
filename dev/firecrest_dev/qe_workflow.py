"""An equation of state of silicon with Quantum ESPRESSO's pw.x, the way an AiiDA user runs one:
a pseudopotential family installed with ``aiida-pseudo`` from the UPF files Debian packages
(offline), a ``pw.x`` code on the computer, one ``PwBaseWorkChain`` SCF per volume, and a
Birch-Murnaghan fit of E(V).

Used by ``dev/qe_demo.py`` (``dev/demo --workflow si-eos``), ``tests/e2e/test_qe_eos.py`` and
``benchmarks/qe_eos.py``, so that all three run the same inputs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PSEUDO_DIR = Path("/usr/share/espresso/pseudo")  # Debian's quantum-espresso-data
PSEUDO_FILE = "Si.pz-vbc.UPF"  # norm-conserving, LDA (Perdew-Zunger), von Barth-Car
PW_X = "/usr/bin/pw.x"
FAMILY = "Debian/QE-6.7/Si.pz-vbc"
EV_PER_A3_IN_GPA = 160.21766208
A_GUESS = 5.40  # Å, the centre of the volumes scanned

# What pw.x 6.7 gives with these inputs when run directly (no AiiDA, no transport): the "known
# values" the demo prints beside its fit, from `.venv/bin/python -m firecrest_dev.qe_workflow` (pw.x
# 6.7 of Debian 12, on the same machine). Experiment (room temperature): a = 5.431 Å, B = 98-99
# GPa; LDA underestimates a by about 1 %.
REFERENCE = {"a": 5.4082, "bulk_modulus": 96.6}
EXPERIMENT = {"a": 5.431, "bulk_modulus": 98.8}


@dataclass(frozen=True)
class EosInputs:
    """What one EOS run computes: the volumes (as factors of the volume at ``A_GUESS``), the
    plane-wave cutoff and the Monkhorst-Pack mesh (shifted by half a step)."""

    volume_factors: tuple[float, ...]
    ecutwfc: float  # Ry
    kmesh: int

    @property
    def lattice_constants(self) -> list[float]:
        return [A_GUESS * f ** (1 / 3) for f in self.volume_factors]


# The demo: 7 volumes from -9 % to +9 %, a cutoff at which Si.pz-vbc's total energy differences
# are converged to about a meV per atom, 4x4x4 k-points; a few seconds of pw.x each.
DEMO = EosInputs(volume_factors=(0.91, 0.94, 0.97, 1.00, 1.03, 1.06, 1.09), ecutwfc=16.0, kmesh=4)
# CI: 3 volumes at a low cutoff and 2x2x2 k-points (below a second of pw.x each).
SHORT = EosInputs(volume_factors=(0.94, 1.00, 1.06), ecutwfc=10.0, kmesh=2)


# ---------------------------------------------------------------------------------- setup


def install_family(env: dict[str, str], label: str = FAMILY) -> str:
    """``aiida-pseudo install family DIR LABEL -P pseudo.upf`` with a directory holding only
    Debian's silicon UPF file (a family wants one file per element, nothing else); returns the
    command's output. No network: the file comes from the quantum-espresso-data package."""
    source = PSEUDO_DIR / PSEUDO_FILE
    if not source.is_file():
        raise FileNotFoundError(f"{source} (install quantum-espresso-data: dev/stack install)")
    folder = Path(tempfile.mkdtemp(prefix="fc-upf-"))
    try:
        shutil.copy(source, folder / PSEUDO_FILE)
        aiida_pseudo = str(Path(sys.executable).parent / "aiida-pseudo")
        result = subprocess.run(
            [aiida_pseudo, "install", "family", str(folder), label, "-P", "pseudo.upf"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if result.returncode != 0:
        raise RuntimeError(f"aiida-pseudo install family failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def code_create_args(computer: str, label: str = "pw") -> list[str]:
    """``verdi code create`` arguments for pw.x on ``computer``: serial (the stack's node has
    no MPI launcher configured for Slurm), one OpenMP thread (the machine is shared)."""
    return [
        "code", "create", "core.code.installed", "-n", "--label", label,
        "--computer", computer, "--filepath-executable", PW_X,
        "--default-calc-job-plugin", "quantumespresso.pw",
        "--prepend-text", PREPEND, "--append-text", APPEND,
    ]  # fmt: skip


# Debian's pw.x is built with Open MPI, which makes its session directory under /tmp even for a
# serial run: two of a user's jobs starting at once raced for /tmp/ompi.<host>.<uid> and one
# failed ("A call to mkdir was unable to create the desired directory ... File exists"). Each
# job gets a short directory of its own (sockets live there: the path must stay short).
PREPEND = "\n".join(
    [
        "export OMP_NUM_THREADS=1",
        'export OMPI_MCA_orte_tmpdir_base="$(mktemp -d /tmp/ompi-job-XXXXXX)"',
    ]
)
APPEND = 'rm -rf -- "$OMPI_MCA_orte_tmpdir_base"'


def silicon(a: float) -> Any:
    """Diamond silicon in its 2-atom fcc primitive cell, lattice constant ``a`` (Å)."""
    from aiida import orm

    cell = [[-a / 2, 0.0, a / 2], [0.0, a / 2, a / 2], [-a / 2, a / 2, 0.0]]
    structure = orm.StructureData(cell=cell)
    structure.append_atom(position=(0.0, 0.0, 0.0), symbols="Si")
    structure.append_atom(position=(a / 4, a / 4, a / 4), symbols="Si")
    return structure


def options(max_wallclock_seconds: int = 900) -> dict[str, Any]:
    return {
        "resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1},
        "max_wallclock_seconds": max_wallclock_seconds,
        "withmpi": False,
    }


def scf_builder(code: Any, a: float, inputs: EosInputs, family: str = FAMILY) -> Any:
    """A PwBaseWorkChain running one SCF of silicon at lattice constant ``a``."""
    from aiida import orm
    from aiida.plugins import GroupFactory, WorkflowFactory

    structure = silicon(a)
    pseudos = (
        orm.QueryBuilder()
        .append(GroupFactory("pseudo.family"), filters={"label": family})
        .one()[0]
        .get_pseudos(structure=structure)
    )
    builder = WorkflowFactory("quantumespresso.pw.base").get_builder()
    builder.pw.code = code
    builder.pw.structure = structure
    builder.pw.pseudos = pseudos
    builder.pw.parameters = orm.Dict(
        {
            "CONTROL": {"calculation": "scf"},
            "SYSTEM": {"ecutwfc": inputs.ecutwfc},
            "ELECTRONS": {"conv_thr": 1e-8},
        }
    )
    kpoints = orm.KpointsData()
    kpoints.set_kpoints_mesh([inputs.kmesh] * 3, offset=[0.5, 0.5, 0.5])
    builder.kpoints = kpoints
    builder.pw.metadata.options = options()
    return builder


def submit_eos(code: Any, inputs: EosInputs, family: str = FAMILY) -> list[Any]:
    """One PwBaseWorkChain per volume, submitted to the daemon; the nodes, in volume order."""
    from aiida.engine import submit

    return [submit(scf_builder(code, a, inputs, family)) for a in inputs.lattice_constants]


# ---------------------------------------------------------------------------------- waiting


def wait(
    pks: Iterable[int], timeout: float, progress: Callable[[str], None] | None = None
) -> float:
    """Wait until every process has terminated (or ``timeout`` s); returns the seconds waited.
    ``progress`` gets a line whenever the count of finished or paused ones changes (how many
    run flips with every poll: a work chain waits on its calculation most of the time)."""
    from aiida import orm

    pks = list(pks)
    t0 = time.monotonic()
    last = None
    while True:
        rows = (
            orm.QueryBuilder()
            .append(
                orm.ProcessNode,
                filters={"id": {"in": pks}},
                project=["attributes.process_state", "attributes.paused"],
            )
            .all()
        )
        done = sum(state in ("finished", "excepted", "killed") for state, _ in rows)
        paused = sum(bool(p) for _, p in rows)
        now = (done, paused)
        if progress and now != last:
            progress(f"{done}/{len(pks)} done" + (f", {paused} PAUSED" if paused else ""))
            last = now
        if done == len(pks) or paused or time.monotonic() - t0 > timeout:
            return time.monotonic() - t0
        time.sleep(1)


def energies(nodes: Iterable[Any]) -> tuple[list[float], list[float], list[str]]:
    """(volumes in Å^3, total energies in eV, problems) of finished work chains."""
    from aiida import orm

    volumes, values, problems = [], [], []
    for node in nodes:
        node = orm.load_node(node.pk)
        if not node.is_finished_ok:
            calcs = [
                f"{c.process_label} {c.pk}: {c.process_state.value} {c.exit_status} "
                f"{c.exit_message or ''}".strip()
                for c in node.called
            ]
            problems.append(
                f"PwBaseWorkChain {node.pk}: {node.process_state} {node.exit_status} "
                f"{node.exit_message or ''}; {'; '.join(calcs) or 'no calculation'}"
            )
            continue
        volumes.append(node.inputs.pw.structure.get_cell_volume())
        values.append(node.outputs.output_parameters["energy"])
    return volumes, values, problems


# ---------------------------------------------------------------------------------- the fit


@dataclass(frozen=True)
class EosFit:
    volume: float  # Å^3 per cell (2 atoms)
    energy: float  # eV
    bulk_modulus: float  # GPa
    coefficients: tuple[float, ...]  # E as a polynomial in V^(-2/3), highest power first

    @property
    def a(self) -> float:
        """The cubic lattice constant (Å): the fcc primitive cell holds a quarter of it."""
        return (4 * self.volume) ** (1 / 3)

    def energy_at(self, volume: Any) -> Any:
        return np.polyval(self.coefficients, np.asarray(volume) ** (-2 / 3))


class FitError(ValueError):
    pass


def fit_birch_murnaghan(volumes: list[float], energies: list[float]) -> EosFit:
    """The Birch-Murnaghan equation of state is a polynomial in x = V^(-2/3): third order
    (E0, V0, B0, B0') for 5 or more volumes; second order (B0' = 4) for 3 or 4. Fails unless
    the minimum lies inside the volumes given and the curvature there is positive."""
    if len(volumes) != len(energies) or len(volumes) < 3:
        raise FitError(f"need at least 3 (volume, energy) pairs, got {len(volumes)}")
    v = np.asarray(volumes, dtype=float)
    x = v ** (-2 / 3)
    degree = 3 if len(v) >= 5 else 2
    coefficients = np.polyfit(x, np.asarray(energies, dtype=float), degree)
    derivative = np.polyder(coefficients)
    inside = [
        r.real for r in np.roots(derivative) if abs(r.imag) < 1e-12 and x.min() <= r.real <= x.max()
    ]
    curvatures = [np.polyval(np.polyder(derivative), r) for r in inside]
    minima = [r for r, c in zip(inside, curvatures, strict=True) if c > 0]
    if len(minima) != 1:
        raise FitError(f"no single minimum inside V = {v.min():.2f}..{v.max():.2f} Å^3")
    x0 = minima[0]
    v0 = x0 ** (-3 / 2)
    # At the minimum dE/dx = 0, so d2E/dV2 = d2E/dx2 (dx/dV)^2 with dx/dV = -2/3 V^(-5/3).
    d2e_dv2 = np.polyval(np.polyder(derivative), x0) * (2 / 3 * v0 ** (-5 / 3)) ** 2
    return EosFit(
        volume=float(v0),
        energy=float(np.polyval(coefficients, x0)),
        bulk_modulus=float(v0 * d2e_dv2 * EV_PER_A3_IN_GPA),
        coefficients=tuple(float(c) for c in coefficients),
    )


def plot(volumes: list[float], energies: list[float], fit: EosFit, path: Path, title: str) -> None:
    """E(V) with the fit, as a PNG (matplotlib, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(min(volumes) * 0.99, max(volumes) * 1.01, 200)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(grid, fit.energy_at(grid), "-", label="Birch-Murnaghan fit")
    ax.plot(volumes, energies, "o", label="pw.x SCF (PwBaseWorkChain)")
    ax.axvline(fit.volume, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("volume per cell (Å³)")
    ax.set_ylabel("total energy (eV)")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------- the direct reference

RY_IN_EV = 13.605693122994


def direct_energy(a: float, inputs: EosInputs, workdir: Path) -> float:
    """pw.x run here, without AiiDA, on the input PwCalculation writes for ``scf_builder``."""
    c = a / 2
    text = f"""&CONTROL
  calculation = 'scf', pseudo_dir = '{PSEUDO_DIR}', outdir = '{workdir}'
/
&SYSTEM
  ibrav = 0, nat = 2, ntyp = 1, ecutwfc = {inputs.ecutwfc}
/
&ELECTRONS
  conv_thr = 1e-8
/
ATOMIC_SPECIES
Si 28.0855 {PSEUDO_FILE}
CELL_PARAMETERS angstrom
{-c} 0 {c}
0 {c} {c}
{-c} {c} 0
ATOMIC_POSITIONS angstrom
Si 0 0 0
Si {a / 4} {a / 4} {a / 4}
K_POINTS automatic
{inputs.kmesh} {inputs.kmesh} {inputs.kmesh} 1 1 1
"""
    out = subprocess.run(
        [PW_X], input=text, capture_output=True, text=True, check=True,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    ).stdout  # fmt: skip
    found = re.search(r"^!\s+total energy\s+=\s+(\S+) Ry", out, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no total energy in pw.x's output:\n{out[-2000:]}")
    return float(found.group(1)) * RY_IN_EV


def main() -> int:
    """Print the direct pw.x reference of DEMO and SHORT (what REFERENCE records)."""
    for name, inputs in (("DEMO", DEMO), ("SHORT", SHORT)):
        workdir = Path(tempfile.mkdtemp(prefix="fc-pw-reference-"))
        try:
            values = [direct_energy(a, inputs, workdir) for a in inputs.lattice_constants]
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        fit = fit_birch_murnaghan([a**3 / 4 for a in inputs.lattice_constants], values)
        print(f"{name}: a = {fit.a:.4f} Å, B = {fit.bulk_modulus:.1f} GPa, E(V) = {values}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
