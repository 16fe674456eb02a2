"""The pure parts of dev/lowest_deps.py: reading floors and telling which were not installed.
(The script itself runs in .ci/run: it installs from the package registry.)"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

SCRIPT = Path(__file__).resolve().parent.parent / "dev" / "lowest_deps.py"


@pytest.fixture(scope="module")
def lowest():
    spec = importlib.util.spec_from_file_location("lowest_deps", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def test_floor_is_the_lower_bound(lowest) -> None:
    assert lowest.floor(Requirement("redis>=6.0")) == Version("6.0")
    assert lowest.floor(Requirement("uvicorn[standard]>=0.36,<1")) == Version("0.36")
    assert lowest.floor(Requirement("pyfirecrest==3.10.0")) == Version("3.10.0")
    assert lowest.floor(Requirement("anything")) is None


def test_a_floor_lifted_by_another_requirement_is_reported(lowest) -> None:
    requirements = [Requirement("fastapi>=0.115"), Requirement("Redis>=6.0"), Requirement("x")]
    installed = {"fastapi": Version("0.115.2"), "redis": Version("6.0.0"), "x": Version("1")}
    problems = lowest.floors_not_installed(requirements, installed)
    assert problems == [
        "fastapi>=0.115: the lowest resolvable release is 0.115.2, not 0.115",
        "x: no floor",
    ]


def test_every_declared_requirement_has_a_floor(lowest) -> None:
    """What the lowest-versions job checks, for the declarations as they are now."""
    repo = SCRIPT.parent.parent
    for requirements in (
        lowest.declared(repo),
        lowest.declared(repo / "server"),
        lowest.declared(repo, "test"),
    ):
        assert requirements
        assert all(lowest.floor(r) is not None for r in requirements), requirements
