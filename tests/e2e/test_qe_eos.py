"""A real materials workflow through the daemon: a short equation of state of silicon with
Quantum ESPRESSO (``PwBaseWorkChain``), through the ``firecrest`` plugin and the API server and,
with the same inputs in the same profile, through aiida-core's ``core.ssh_async`` + ``core.slurm``
straight to the stack's sshd; then what a materials workflow needs beyond single runs: pw.x's XML
retrieved and parsed, an NSCF run reading the SCF's charge density from a remote copy of its
``out`` folder (``parent_folder``), a restarted SCF reading it through a symlink instead, and
the NSCF's outputs stashed on the cluster.

The module makes a profile of its own rather than using the package's ``e2e`` one: its daemon
needs a HOME whose ``.ssh/config`` names the stack's sshd for ``core.ssh_async``.
pw.x's work is kept tiny (3 volumes, 10 Ry, 2x2x2 k-points: well below a second each); the time
goes into AiiDA's steps (upload, submit, poll, retrieve) on both transports.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firecrest_dev import qe_workflow as qe
from firecrest_dev.aiida_env import HOST_ALIAS, AiidaProfile, loaded, new_profile, ssh_home
from firecrest_dev.info import StackInfo

pytestmark = [pytest.mark.stack, pytest.mark.slow]

TRANSPORTS = ("firecrest", "ssh")
TIMEOUT = 900
# Same pw.x, same input file, same machine: the energies agree to pw.x's printed precision
# (1e-8 Ry); this allows for conv_thr (1e-8 Ry) should the SCF take a different path.
ENERGY_TOLERANCE_EV = 1e-5


class QeEnv:
    def __init__(self, profile: AiidaProfile, workdirs: dict[str, str]) -> None:
        self.profile = profile
        self.workdirs = workdirs
        self.eos: dict[str, list[Any]] = {}

    def code(self, transport: str) -> Any:
        from aiida import orm

        return orm.load_code(f"pw@{transport}")


@pytest.fixture(scope="module")
def qe_env(stack: StackInfo) -> Iterator[QeEnv]:
    profile = new_profile("fcqe")
    home = Path(tempfile.mkdtemp(prefix="fcqe-home-"))
    alice = pwd.getpwnam("alice")
    try:
        # core.ssh_async finds the host in $HOME/.ssh/config: the daemon's HOME is a temporary
        # one with a certificate for alice (never root's or alice's own ~/.ssh).
        ssh_home(stack, home)
        profile.env["HOME"] = str(home)
        profile.env["PATH"] = f"{home / 'bin'}:{profile.env['PATH']}"
        profile.create()
        workdirs = {}
        for transport in TRANSPORTS:
            workdir = f"{stack.users['alice'].home}/aiida-qe-{uuid.uuid4().hex[:8]}/"
            # Made beforehand, as in tests/e2e/conftest.py: uploads into a brand new work
            # directory race in aiida-core (path_exists, then makedirs), with any transport.
            os.mkdir(workdir)
            os.chown(workdir, alice.pw_uid, alice.pw_gid)
            ssh = {"host": HOST_ALIAS, "backend": "asyncssh", "safe_interval": 0.0}
            profile.add_computer(
                stack,
                transport,
                workdir=workdir,
                **(
                    {}
                    if transport == "firecrest"
                    else {
                        "transport": "core.ssh_async",
                        "scheduler": "core.slurm",
                        "configure": ssh,
                    }
                ),
            )
            profile.verdi(*qe.code_create_args(transport))
            workdirs[transport] = workdir
        qe.install_family(profile.env)
        with loaded(profile):
            from aiida import orm

            for transport in TRANSPORTS:
                orm.load_computer(transport).set_minimum_job_poll_interval(2.0)
            profile.start_daemon(2)
            yield QeEnv(profile, workdirs)
    finally:
        problems = profile.destroy()
        shutil.rmtree(home, ignore_errors=True)
        assert not problems, f"cleaning up the AiiDA profile {profile.name}: {problems}"


def _finished(profile: AiidaProfile, nodes: list[Any]) -> None:
    from aiida import orm

    qe.wait([n.pk for n in nodes], TIMEOUT)
    bad = [orm.load_node(n.pk) for n in nodes if not orm.load_node(n.pk).is_finished_ok]
    assert not bad, "\n".join(
        f"{n.pk} {n.process_label}: {n.process_state} {n.exit_status} {n.exit_message}"
        + "\n"
        + profile.verdi("process", "report", str(n.pk), check=False)
        for n in bad
    ) + (f"\n--- daemon log ---\n{profile.daemon_log_tail()}" if bad else "")


def test_eos_is_the_same_through_firecrest_and_ssh(qe_env: QeEnv) -> None:
    from aiida import orm

    offset = qe_env.profile.daemon_log_offset()
    for transport in TRANSPORTS:
        qe_env.eos[transport] = qe.submit_eos(qe_env.code(transport), qe.SHORT)
    _finished(qe_env.profile, [n for nodes in qe_env.eos.values() for n in nodes])
    fits, values = {}, {}
    for transport, nodes in qe_env.eos.items():
        volumes, energies, problems = qe.energies(nodes)
        assert problems == []
        values[transport] = energies
        fits[transport] = qe.fit_birch_murnaghan(volumes, energies)
        for node in nodes:
            calc = orm.load_node(node.pk).called[-1]
            # The parser read pw.x's XML (retrieved from out/aiida.save/): no XML, no result.
            assert (
                "data-file-schema.xml" in calc.outputs.retrieved.base.repository.list_object_names()
            )
            assert calc.outputs.output_parameters["convergence_info"]["scf_conv"]["n_scf_steps"] > 0
    for a, b in zip(values["firecrest"], values["ssh"], strict=True):
        assert a == pytest.approx(b, abs=ENERGY_TOLERANCE_EV)
    assert fits["firecrest"].a == pytest.approx(fits["ssh"].a, abs=1e-4)
    assert fits["firecrest"].bulk_modulus == pytest.approx(fits["ssh"].bulk_modulus, rel=1e-3)
    # pw.x run directly with the same input, without AiiDA: the transport changed nothing.
    workdir = Path(tempfile.mkdtemp(prefix="fcqe-direct-"))
    try:
        a = qe.SHORT.lattice_constants[1]
        direct = qe.direct_energy(a, qe.SHORT, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    assert values["firecrest"][1] == pytest.approx(direct, abs=1e-3)
    assert qe_env.profile.task_failures(since=offset) == []


def _restarts(qe_env: QeEnv, transport: str, stash_base: str) -> tuple[Any, Any]:
    """An NSCF on a remote copy of the middle volume's SCF output, with its outputs stashed, and
    a restarted SCF on a symlink to it (starting from the converged charge density)."""
    from aiida import orm
    from aiida.engine import submit
    from aiida.plugins import CalculationFactory

    base = orm.load_node(qe_env.eos[transport][1].pk)
    scf = base.called[-1]
    pw = CalculationFactory("quantumespresso.pw")
    nscf = pw.get_builder()
    nscf.code = qe_env.code(transport)
    nscf.structure = scf.inputs.structure
    nscf.pseudos = dict(scf.inputs.pseudos)
    nscf.kpoints = scf.inputs.kpoints
    nscf.parameters = orm.Dict(
        {"CONTROL": {"calculation": "nscf"}, "SYSTEM": {"ecutwfc": qe.SHORT.ecutwfc, "nbnd": 8}}
    )
    nscf.parent_folder = scf.outputs.remote_folder  # copied: PwCalculation's default
    nscf.metadata.options = {
        **qe.options(),
        "stash": {
            "source_list": ["aiida.out", "out/aiida.save/data-file-schema.xml"],
            "target_base": stash_base,
            "stash_mode": "copy",
        },
    }
    restart = pw.get_builder()
    restart.code = qe_env.code(transport)
    restart.structure = scf.inputs.structure
    restart.pseudos = dict(scf.inputs.pseudos)
    restart.kpoints = scf.inputs.kpoints
    restart.parameters = orm.Dict(
        {
            "CONTROL": {"calculation": "scf", "restart_mode": "from_scratch"},
            "SYSTEM": {"ecutwfc": qe.SHORT.ecutwfc},
            "ELECTRONS": {"conv_thr": 1e-8, "startingpot": "file"},
        }
    )
    restart.parent_folder = scf.outputs.remote_folder
    restart.settings = orm.Dict({"PARENT_FOLDER_SYMLINK": True})
    restart.metadata.options = qe.options()
    return submit(nscf), submit(restart)


def test_restarts_copy_or_link_the_parent_folder_and_stash(qe_env: QeEnv) -> None:
    from aiida import orm

    if not qe_env.eos:
        pytest.skip("needs the EOS of test_eos_is_the_same_through_firecrest_and_ssh")
    alice = pwd.getpwnam("alice")
    runs = {}
    for transport in TRANSPORTS:
        stash_base = f"{qe_env.workdirs[transport]}stash"
        os.mkdir(stash_base)
        os.chown(stash_base, alice.pw_uid, alice.pw_gid)
        runs[transport] = _restarts(qe_env, transport, stash_base)
    _finished(qe_env.profile, [n for pair in runs.values() for n in pair])
    results = {}
    for transport, (nscf, restart) in runs.items():
        nscf, restart = orm.load_node(nscf.pk), orm.load_node(restart.pk)
        scf = orm.load_node(qe_env.eos[transport][1].pk).called[-1]
        # Inspected as root: the stack is on this machine.
        nscf_out = Path(nscf.outputs.remote_folder.get_remote_path()) / "out"
        restart_out = Path(restart.outputs.remote_folder.get_remote_path()) / "out"
        density = "aiida.save/charge-density.dat"
        assert not nscf_out.is_symlink()
        assert (nscf_out / density).is_file()
        assert nscf_out.stat().st_uid == alice.pw_uid
        # PwCalculation links `parent/out/*` into `out/`: the save directory is the parent's.
        parent_save = Path(scf.outputs.remote_folder.get_remote_path()) / "out" / "aiida.save"
        assert (restart_out / "aiida.save").is_symlink()
        assert (restart_out / "aiida.save").resolve() == parent_save
        # pw.x read the SCF's density (pw.x 6.7's wording): the NSCF and the restart say so,
        # and the restart converges to the SCF's energy starting from it.
        nscf_text = nscf.outputs.retrieved.base.repository.get_object_content("aiida.out")
        assert "The potential is recalculated from file" in nscf_text
        restart_text = restart.outputs.retrieved.base.repository.get_object_content("aiida.out")
        assert "The initial density is read from file" in restart_text
        assert restart.outputs.output_parameters["energy"] == pytest.approx(
            scf.outputs.output_parameters["energy"], abs=ENERGY_TOLERANCE_EV
        )
        # The stash: both files copied, alice's, the XML intact.
        stash = nscf.outputs.remote_stash
        assert sorted(stash.source_list) == ["aiida.out", "out/aiida.save/data-file-schema.xml"]
        stashed = Path(stash.target_basepath)
        assert (stashed / "aiida.out").read_text() == nscf_text
        xml = (stashed / "out/aiida.save/data-file-schema.xml").read_text()
        assert xml.rstrip().endswith("</qes:espresso>")
        assert stashed.stat().st_uid == alice.pw_uid
        results[transport] = nscf.outputs.output_band.get_bands()
    # 2x2x2 shifted: 2 irreducible k-points in the NSCF, 8 bands asked for.
    assert results["firecrest"].shape == results["ssh"].shape == (2, 8)
    assert results["firecrest"] == pytest.approx(results["ssh"], abs=1e-4)
