"""Both distributions build (sdist, then the wheel from that sdist) and ship what they should.

`python -m build` runs without build isolation, with the setuptools of this environment (the `dev`
extra requires the version the `[build-system]` tables ask for), so the test needs no network and
takes seconds. Building the wheel from the sdist shows that the sdist carries everything the
wheel needs, LICENSE included.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path, PurePosixPath

import pytest

REPO = Path(__file__).resolve().parent.parent

# (distribution, source directory, import package)
DISTRIBUTIONS = [
    ("aiida_firecrest", REPO, "aiida_firecrest"),
    ("firecrest_server", REPO / "server", "firecrest_server"),
]


def _build(source: Path, outdir: Path) -> tuple[Path, Path]:
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(outdir), str(source)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = outdir.glob("*.whl")
    (sdist,) = outdir.glob("*.tar.gz")
    return wheel, sdist


def _is_test(name: str) -> bool:
    path = PurePosixPath(name)
    in_tests = "tests" in path.parts[:-1] or (name.endswith("/") and path.name == "tests")
    test_module = path.name.startswith("test_") and path.suffix == ".py"
    return in_tests or test_module or path.name == "conftest.py"


def _test_files(names: list[str]) -> list[str]:
    """Members that are tests: test modules, conftest.py, or anything under a tests/ folder."""
    return [name for name in names if _is_test(name)]


@dataclass
class Built:
    dist: str
    package: str
    wheel: Path
    sdist: Path


@pytest.fixture(scope="module", params=DISTRIBUTIONS, ids=[d[0] for d in DISTRIBUTIONS])
def built(request, tmp_path_factory) -> Built:
    dist, source, package = request.param
    wheel, sdist = _build(source, tmp_path_factory.mktemp(f"build-{dist}"))
    return Built(dist, package, wheel, sdist)


@pytest.mark.slow
def test_wheel_has_no_tests(built: Built) -> None:
    names = zipfile.ZipFile(built.wheel).namelist()
    assert _test_files(names) == []
    assert any(name.endswith(".py") for name in names)  # it did find the modules


@pytest.mark.slow
def test_wheel_ships_license_and_py_typed(built: Built) -> None:
    wheel = built.wheel
    names = set(zipfile.ZipFile(wheel).namelist())
    (dist_info,) = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
    assert f"{dist_info}/licenses/LICENSE" in names
    assert f"{built.package}/py.typed" in names
    assert (
        zipfile.ZipFile(wheel).read(f"{dist_info}/licenses/LICENSE")
        == (REPO / "LICENSE").read_bytes()
    )


@pytest.mark.slow
def test_wheel_metadata_names_the_license_by_spdx(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as archive:
        (metadata_name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    classifiers = metadata.get_all("Classifier")
    assert "Typing :: Typed" in classifiers
    # PEP 639: a license expression replaces the License :: classifiers.
    assert not [c for c in classifiers if c.startswith("License ::")]
    if built.dist == "aiida_firecrest":
        assert "Framework :: AiiDA" in classifiers


@pytest.mark.slow
def test_sdist_carries_the_license_and_no_tests(built: Built) -> None:
    with tarfile.open(built.sdist) as archive:
        names = archive.getnames()
    top = names[0].split("/")[0]
    assert f"{top}/LICENSE" in names
    assert f"{top}/{built.package}/__init__.py" in names
    assert _test_files(names) == []


def test_server_license_is_the_repository_license() -> None:
    """server/LICENSE is a copy (license-files may not reach outside server/): keep them equal."""
    assert (REPO / "server" / "LICENSE").read_bytes() == (REPO / "LICENSE").read_bytes()


def test_test_file_detection() -> None:
    """The wheel check above would pass on an empty list; show that it does find tests."""
    assert _test_files(
        [
            "pkg/__init__.py",
            "pkg/test_x.py",
            "pkg/conftest.py",
            "tests/",
            "tests/data.json",
            "pkg/tests/helpers.py",
            "pkg/attest.py",
        ]
    ) == ["pkg/test_x.py", "pkg/conftest.py", "tests/", "tests/data.json", "pkg/tests/helpers.py"]
