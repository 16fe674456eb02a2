"""Calculations through the AiiDA daemon (PostgreSQL, RabbitMQ, two workers) on the real stack,
with the ``firecrest`` transport and scheduler: many at once, aiida-shell with every way files
reach a calculation, tar stashing, and the API server crashing while calculations run."""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import tarfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from firecrest_dev.aiida_env import states, submit_additions, wait_terminated
from firecrest_dev.running import restart_server

from .conftest import E2E

pytestmark = [pytest.mark.stack, pytest.mark.slow]

COUNT = 50
BIG = 20 * 1024 * 1024


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_sums(submitted: list[tuple[Any, int]]) -> list[str]:
    from aiida import orm

    wrong = []
    for node, expected in submitted:
        node = orm.load_node(node.pk)
        if not node.is_finished_ok:
            wrong.append(f"{node.pk}: {node.process_state} exit status {node.exit_status}")
        elif node.outputs.sum.value != expected:
            wrong.append(f"{node.pk}: sum {node.outputs.sum.value} != {expected}")
    return wrong


def test_fifty_additions_through_the_daemon(e2e: E2E) -> None:
    log_offset = e2e.profile.daemon_log_offset()
    submitted = submit_additions(e2e.code, COUNT)
    wall = wait_terminated(e2e.profile, [n.pk for n, _ in submitted], timeout=900)
    wrong = _check_sums(submitted)
    assert not wrong, "\n".join(wrong)
    # Nothing failed and was quietly retried.
    assert e2e.profile.task_failures(since=log_offset) == []
    print(f"\n{COUNT} core.arithmetic.add in {wall:.1f} s ({60 * COUNT / wall:.0f}/min)")


# ---------------------------------------------------------------------------- aiida-shell

SCRIPT = """\
set -eu
sha256sum empty.bin big.bin r-empty.txt r-small.txt sub/nested.txt \\
    indir/a.txt indir/empty.txt indir/deep/b.txt
for name in r-empty.txt r-small.txt sub; do
    if [ -L "$name" ]; then echo "kind $name symlink"; else echo "kind $name copy"; fi
done
cp big.bin big_out.bin
: > empty_out.bin
"""


def _remote_input(e2e: E2E, tmp_path: Path) -> tuple[Any, dict[str, bytes]]:
    """A directory on the cluster (put there through the transport) as a RemoteData."""
    from aiida import orm

    files = {
        "r-empty.txt": b"",
        "r-small.txt": b"remote input\n",
        "sub/nested.txt": b"nested remote input\n",
    }
    local = tmp_path / "remote-input"
    for name, data in files.items():
        (local / name).parent.mkdir(parents=True, exist_ok=True)
        (local / name).write_bytes(data)
    remote = f"{e2e.workdir.rstrip('/')}/inputs-{uuid.uuid4().hex[:8]}"
    with e2e.computer.get_transport() as transport:
        transport.makedirs(e2e.workdir, ignore_existing=True)
        transport.puttree(str(local), remote)
    return orm.RemoteData(computer=e2e.computer, remote_path=remote).store(), files


def _local_inputs(tmp_path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    from aiida import orm

    big = os.urandom(BIG)
    (tmp_path / "empty.bin").write_bytes(b"")
    (tmp_path / "big.bin").write_bytes(big)
    folder = tmp_path / "folder"
    (folder / "deep").mkdir(parents=True)
    folder_files = {"a.txt": b"folder file\n", "empty.txt": b"", "deep/b.txt": b"deep\n"}
    for name, data in folder_files.items():
        (folder / name).write_bytes(data)
    (tmp_path / "run.sh").write_text(SCRIPT)
    nodes = {
        "script": orm.SinglefileData(tmp_path / "run.sh"),
        "empty": orm.SinglefileData(tmp_path / "empty.bin"),
        "big": orm.SinglefileData(tmp_path / "big.bin"),
        "folder": orm.FolderData(tree=folder),
    }
    expected = {"empty.bin": b"", "big.bin": big}
    expected.update({f"indir/{name}": data for name, data in folder_files.items()})
    return nodes, expected


def _archive(node: Any, workdir_base: str) -> dict[str, tarfile.TarInfo | bytes]:
    """The stash archive on the cluster (read as root: the stack is on this machine), as
    {name relative to the calculation's directory: member info, or content for files}."""
    path = node.outputs.remote_stash.target_basepath
    assert os.path.isfile(path), f"no stash archive at {path}"
    assert os.stat(path).st_uid == pwd.getpwnam("alice").pw_uid, "archive not written by alice"
    prefix = os.path.relpath(node.get_remote_workdir(), workdir_base) + "/"
    content: dict[str, tarfile.TarInfo | bytes] = {}
    with tarfile.open(path) as archive:
        for member in archive.getmembers():
            name = member.name.removeprefix("./")
            if member.isdir() and prefix.startswith(f"{name}/"):
                continue  # the directories leading to the calculation's, as tar -C ROOT writes
            assert name.startswith(prefix), f"{name} is not under {prefix}"
            relative = name[len(prefix) :]
            if member.isfile():
                handle = archive.extractfile(member)
                assert handle is not None
                content[relative] = handle.read()
            else:
                content[relative] = member
    return content


def test_shell_job_with_every_kind_of_input_and_tar_stash(e2e: E2E, tmp_path: Path) -> None:
    from aiida import orm
    from aiida.plugins import CalculationFactory
    from aiida_shell import launch_shell_job

    log_offset = e2e.profile.daemon_log_offset()
    remote_data, remote_files = _remote_input(e2e, tmp_path)
    local_nodes, local_files = _local_inputs(tmp_path)
    stash_base = f"{e2e.workdir.rstrip('/')}/stash-{uuid.uuid4().hex[:8]}"
    with e2e.computer.get_transport() as transport:
        transport.makedirs(stash_base)
    stashed = ["big_out.bin", "empty_out.bin", "r-small.txt", "indir"]

    jobs = {}
    for use_symlinks, mode in ((False, "tar"), (True, "tar.gz")):
        # The pre-made core.code.installed bash; and a ShellCode made without `which` (which a
        # REST transport cannot run: resolve_command=False).
        command = e2e.code if not use_symlinks else "bash"
        _, node = launch_shell_job(
            command,
            arguments=["{script}"],
            nodes={**local_nodes, "remote": remote_data},
            filenames={"folder": "indir"},
            outputs=["big_out.bin", "empty_out.bin"],
            resolve_command=False,
            submit=True,
            metadata={
                "computer": e2e.computer,
                "options": {
                    "use_symlinks": use_symlinks,
                    "resources": {"num_machines": 1},
                    "stash": {
                        "source_list": stashed,
                        "target_base": stash_base,
                        "stash_mode": mode,
                        "dereference": use_symlinks,
                    },
                },
            },
        )
        jobs[use_symlinks] = node

    # FolderData through the engine's local_copy_list (aiida-shell writes its FolderData inputs
    # into the sandbox instead): core.transfer, which only uploads and retrieves.
    transfer = CalculationFactory("core.transfer")
    builder = transfer.get_builder()
    builder.metadata.computer = e2e.computer
    builder.source_nodes = {"folder": local_nodes["folder"], "blobs": _blob_folder(tmp_path)}
    builder.instructions = orm.Dict(
        {
            "retrieve_files": True,
            "local_files": [
                ("folder", "a.txt", "single/a.txt"),
                ("folder", ".", "tree"),
                ("blobs", ".", "blobs"),
            ],
        }
    )
    from aiida.engine import submit

    transfer_node = submit(builder)

    pks = [node.pk for node in jobs.values()] + [transfer_node.pk]
    wait_terminated(e2e.profile, pks, timeout=600)

    workdir_base = e2e.workdir.rstrip("/")
    for use_symlinks, node in jobs.items():
        node = orm.load_node(node.pk)
        assert node.is_finished_ok, (node.process_state, node.exit_status, node.exit_message)
        stdout = node.outputs.stdout.get_content()
        sums = dict(reversed(line.split(maxsplit=1)) for line in stdout.splitlines()[:8])
        for name, data in {**local_files, **remote_files}.items():
            assert sums[name] == _sha256(data), f"{name} arrived changed ({use_symlinks=})"
        kinds = dict(re.findall(r"^kind (\S+) (\S+)$", stdout, re.MULTILINE))
        expected_kind = "symlink" if use_symlinks else "copy"
        assert kinds == dict.fromkeys(("r-empty.txt", "r-small.txt", "sub"), expected_kind)
        # Outputs retrieved: 20 MiB and 0 B.
        big_out = node.outputs.big_out_bin.get_content("rb")
        assert _sha256(big_out) == _sha256(local_files["big.bin"])
        assert node.outputs.empty_out_bin.get_content("rb") == b""
        # The stash archive, on the cluster.
        assert node.outputs.remote_stash.target_basepath.endswith(
            ".tar.gz" if use_symlinks else ".tar"
        )
        archive = _archive(node, workdir_base)
        assert archive["big_out.bin"] == local_files["big.bin"]
        assert archive["empty_out.bin"] == b""
        for name in ("a.txt", "empty.txt", "deep/b.txt"):
            assert archive[f"indir/{name}"] == local_files[f"indir/{name}"]
        # A copy; or a symlink stashed with dereference=True: the target's content, as a file.
        assert archive["r-small.txt"] == remote_files["r-small.txt"]

    transfer_node = orm.load_node(transfer_node.pk)
    assert transfer_node.is_finished_ok, (transfer_node.process_state, transfer_node.exit_status)
    retrieved = transfer_node.outputs.retrieved
    folder_node = local_nodes["folder"]
    # A retrieve_list name with a directory in it is stored under its base name.
    assert retrieved.get_object_content("a.txt", "rb") == b"folder file\n"
    for name in ("a.txt", "empty.txt", "deep/b.txt"):
        assert retrieved.get_object_content(f"tree/{name}", "rb") == folder_node.get_object_content(
            name, "rb"
        )
    assert retrieved.get_object_content("blobs/empty.bin", "rb") == b""
    assert _sha256(retrieved.get_object_content("blobs/big.bin", "rb")) == _sha256(
        local_files["big.bin"]
    )
    assert e2e.profile.task_failures(since=log_offset) == []


def _blob_folder(tmp_path: Path) -> Any:
    from aiida import orm

    blobs = tmp_path / "blobs"
    blobs.mkdir()
    (blobs / "empty.bin").write_bytes(b"")
    (blobs / "big.bin").write_bytes((tmp_path / "big.bin").read_bytes())
    return orm.FolderData(tree=blobs)


# ------------------------------------------------------------------------- server crash


def test_calculations_survive_a_server_crash(e2e: E2E) -> None:
    """SIGKILL the API server (and its workers) a few seconds into 50 calculations, start it
    again on the same configuration: the plugin's retries and AiiDA's exponential backoff must
    carry every calculation through."""
    log_offset = e2e.profile.daemon_log_offset()
    submitted = submit_additions(e2e.code, COUNT, offset=1000)
    pks = [n.pk for n, _ in submitted]
    time.sleep(4)
    before = states(pks)
    running = [pk for pk, (state, _) in before.items() if state not in ("finished", "excepted")]
    t_kill = time.monotonic()
    old_pid = e2e.stack.pids["server"]
    new_pid = restart_server(e2e.stack, down=3)
    downtime = time.monotonic() - t_kill
    wall = wait_terminated(e2e.profile, pks, timeout=1200)
    wrong = _check_sums(submitted)
    failures = Counter(
        (task, re.sub(r"/home/\S+", "PATH", error))
        for task, error in e2e.profile.task_failures(log_offset)
    )
    retries = e2e.profile.plugin_retries(log_offset)
    print(
        f"\nserver killed with {len(running)}/{COUNT} calculations not finished, down "
        f"{downtime:.1f} s; all terminated {wall:.1f} s later; requests retried by the "
        f"plugin: {retries}; transport tasks retried by AiiDA's exponential backoff: "
        f"{sum(failures.values())}"
    )
    for (task, error), count in failures.most_common():
        print(f"  {count:3d} x {task}: {error}")
    assert running, "every calculation had finished before the server was killed"
    assert new_pid != old_pid
    # The outage must have been met: by the plugin's own retries (which may hide it from
    # AiiDA entirely) or by transport tasks failing over to AiiDA's backoff.
    assert retries or failures, "nothing was retried: the calculations never met the dead server"
    assert not wrong, "\n".join(wrong)
