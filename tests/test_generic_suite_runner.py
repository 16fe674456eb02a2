"""The pure parts of dev/aiida_generic_suite.py (running it needs a checkout of aiida-core,
which CI cannot download): how it swaps the transport fixture, and how strictly it accepts an
expected failure."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "dev" / "aiida_generic_suite.py"


@pytest.fixture(scope="module")
def runner():
    spec = importlib.util.spec_from_file_location("aiida_generic_suite", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _checkout(tmp_path: Path, text: str) -> Path:
    suite = tmp_path / "checkout" / "tests" / "transports" / "test_all_plugins.py"
    suite.parent.mkdir(parents=True)
    suite.write_text(text)
    return tmp_path / "checkout"


def test_only_the_transport_fixture_is_renamed(runner, tmp_path: Path) -> None:
    original = (
        "@pytest.fixture(params=['core.local'])\n"
        "def custom_transport(request):\n    return None\n\n\n"
        "def test_is_open(custom_transport):\n    assert custom_transport\n"
    )
    runner._prepare_suite(_checkout(tmp_path, original), tmp_path / "suite")
    copied = (tmp_path / "suite" / "test_all_plugins.py").read_text()
    assert copied == original.replace("def custom_transport(", "def aiida_core_custom_transport(")
    assert "def custom_transport():" in (tmp_path / "suite" / "conftest.py").read_text()


def test_a_suite_without_the_fixture_is_refused(runner, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="custom_transport"):
        runner._prepare_suite(_checkout(tmp_path, "def test_x():\n    pass\n"), tmp_path / "s")


def test_an_expected_failure_must_fail_the_expected_way(runner) -> None:
    tar_block = (
        "Failed: DID NOT RAISE OSError\n"
        ">       with pytest.raises(OSError, match='Error while extracting the tar archive.'):\n"
    )
    earlier = (
        "OSError: The relative root / does not exist\n"
        ">       transport.compress('tar', src, dst, '/')\n"
    )
    assert runner._as_expected("test_extract[file_hierarchy0-tar]", tar_block)
    assert not runner._as_expected("test_compress_error_handling", earlier)
    assert runner._as_expected("test_exec_with_stdin_string", "NotImplementedError: no shell")
    assert not runner._as_expected("test_put_and_get", "NotImplementedError: no shell")
