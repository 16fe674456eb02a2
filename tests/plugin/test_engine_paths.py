"""The transport driven by AiiDA's own engine code (``aiida.engine.daemon.execmanager``): the
upload of a CalcJob (sandbox, local_copy_list, remote_copy_list with globs, remote symlinks,
lost+found on a re-upload) and the retrieval of its files, with the real calls in their real
order."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from aiida import orm
from aiida.common.datastructures import CalcInfo
from aiida.common.folders import SandboxFolder
from aiida.engine.daemon import execmanager

from .conftest import seed

pytestmark = pytest.mark.stack


@pytest.fixture
async def engine_setup(make_computer, stack):
    """A computer whose work directory is unique to the test, and an open transport."""
    workdir = f"{stack.users['alice'].home}/aiida-{uuid.uuid4().hex[:8]}"
    computer = make_computer()
    computer.set_workdir(f"{workdir}/{{username}}/")
    transport = computer.get_transport()
    await transport.open_async()
    try:
        yield computer, transport, f"{workdir}/alice"
    finally:
        await transport.rmtree_async(workdir)
        await transport.close_async()


def calc_info(node: orm.CalcJobNode, **lists) -> CalcInfo:
    info = CalcInfo()
    info.uuid = node.uuid
    info.codes_info = []
    info.retrieve_list = []
    for key, value in lists.items():
        setattr(info, key, value)
    return info


async def test_upload_calculation(engine_setup) -> None:
    computer, transport, work_root = engine_setup
    folder_data = orm.FolderData()
    folder_data.base.repository.put_object_from_bytes(b"pseudo", "pseudos/Si.upf")
    folder_data.base.repository.put_object_from_bytes(b"", "pseudos/empty.upf")
    folder_data.store()
    single = orm.SinglefileData.from_string("structure", filename="struct.xyz").store()
    source = f"{os.path.dirname(work_root)}/previous"
    seed(Path(source, "out/restart.dat"), "restart")
    seed(Path(source, "out/charge.dat"), "charge")
    seed(Path(source, "big.wfc"), "wfc")

    node = orm.CalcJobNode(computer=computer)
    node.store()
    info = calc_info(
        node,
        local_copy_list=[
            (folder_data.uuid, "pseudos", "pseudo_dir"),
            (single.uuid, "struct.xyz", "inputs/struct.xyz"),
        ],
        remote_copy_list=[
            (computer.uuid, f"{source}/out/*", "."),  # aiida-shell's RemoteData pattern
            (computer.uuid, f"{source}/missing", "ignored"),  # only warned about
        ],
        remote_symlink_list=[(computer.uuid, f"{source}/big.wfc", "links/big.wfc")],
    )
    with SandboxFolder() as sandbox:
        sandbox.create_file_from_filelike(_bytes(b"&control /\n"), "aiida.in")
        sandbox.create_file_from_filelike(_bytes(b""), "empty.in")
        sandbox.get_subfolder("sub", create=True).create_file_from_filelike(
            _bytes(b"nested"), "nested.txt"
        )
        remote = await execmanager.upload_calculation(node, transport, info, sandbox)

    workdir = Path(node.get_remote_workdir())
    assert remote.get_remote_path() == str(workdir)
    assert str(workdir).startswith(f"{work_root}/{node.uuid[:2]}/{node.uuid[2:4]}/")
    assert (workdir / "aiida.in").read_text() == "&control /\n"
    assert (workdir / "empty.in").stat().st_size == 0
    assert (workdir / "sub/nested.txt").read_text() == "nested"
    assert (workdir / "pseudo_dir/Si.upf").read_text() == "pseudo"
    assert (workdir / "pseudo_dir/empty.upf").stat().st_size == 0
    assert (workdir / "inputs/struct.xyz").read_text() == "structure"
    assert (workdir / "restart.dat").read_text() == "restart"
    assert (workdir / "charge.dat").read_text() == "charge"
    assert not (workdir / "ignored").exists()
    assert os.readlink(workdir / "links/big.wfc") == f"{source}/big.wfc"

    # A second upload of the same calculation finds the directory: lost+found, then afresh.
    node2 = orm.CalcJobNode(computer=computer)
    node2.store()
    info2 = calc_info(node2)
    info2.uuid = node.uuid
    with SandboxFolder() as sandbox:
        sandbox.create_file_from_filelike(_bytes(b"second"), "aiida.in")
        await execmanager.upload_calculation(node2, transport, info2, sandbox)
    assert (workdir / "aiida.in").read_text() == "second"
    assert not (workdir / "sub").exists()
    rescued = Path(work_root, "lost+found", node.uuid)
    assert (rescued / "sub/nested.txt").read_text() == "nested"


async def test_retrieve_files_from_list(engine_setup, tmp_path) -> None:
    computer, transport, work_root = engine_setup
    node = orm.CalcJobNode(computer=computer)
    node.store()
    workdir = Path(work_root, "calc")
    for name, text in {
        "aiida.out": "out",
        "data-file.xml": "<xml/>",
        "out/a.dat": "a",
        "out/sub/b.dat": "b",
        "empty.err": "",
    }.items():
        seed(workdir / name, text)
    node.set_remote_workdir(str(workdir))
    retrieved = tmp_path / "retrieved"
    retrieved.mkdir()
    await execmanager.retrieve_files_from_list(
        node,
        transport,
        str(retrieved),
        ["aiida.out", "*.xml", "empty.err", "missing.txt", ["out/sub/*.dat", "deep", 2], "out"],
    )
    assert (retrieved / "aiida.out").read_text() == "out"
    assert (retrieved / "data-file.xml").read_text() == "<xml/>"
    assert (retrieved / "empty.err").read_bytes() == b""
    assert (retrieved / "deep/sub/b.dat").read_text() == "b"
    assert (retrieved / "out/sub/b.dat").read_text() == "b"
    assert not (retrieved / "missing.txt").exists()


def _bytes(data: bytes):
    import io

    return io.BytesIO(data)
