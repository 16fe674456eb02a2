"""Repository-wide checks that belong in the test suite: lint, formatting, types and the docs
build."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SYS_PATH_EDIT = re.compile(r"\s*sys\.path\.(insert|append|extend)\(|\s*sys\.path\s*[+]?=")


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True)


def test_ruff_check_is_clean() -> None:
    result = _run(str(BIN / "ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = _run(str(BIN / "ruff"), "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    # Both products, strictly, as configured in pyproject.toml ([tool.mypy]).
    result = _run(str(BIN / "mypy"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


def test_docs_build_without_warnings(tmp_path: Path) -> None:
    result = _run(str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(tmp_path / "site"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").exists()


def test_no_file_edits_sys_path() -> None:
    """Tools import the developer tooling (dev/firecrest_dev, installed editable) by name: a
    script that puts the repository on sys.path would import whatever lies there instead."""
    tracked = _run("git", "ls-files", "*.py", "dev/stack").stdout.split()
    assert "dev/stack" in tracked
    edits = [
        f"{path}:{number}"
        for path in tracked
        for number, line in enumerate((REPO / path).read_text().splitlines(), start=1)
        if SYS_PATH_EDIT.match(line)
    ]
    assert not edits, edits


# The contracts of .importlinter, each checked on its own so a failure names it.
_IMPORT_CONTRACTS = [
    "server-layers",
    "server-acyclic",
    "server-no-http-below-api",
    "plugin-layers",
    "plugin-acyclic",
]


def test_every_import_contract_is_checked() -> None:
    config = (REPO / ".importlinter").read_text()
    declared = set(re.findall(r"^\[importlinter:contract:([\w-]+)\]", config, re.MULTILINE))
    assert declared == set(_IMPORT_CONTRACTS)


@pytest.mark.parametrize("contract", _IMPORT_CONTRACTS)
def test_imports_follow_the_layers(contract: str) -> None:
    """No circles, and no module importing one above it (.importlinter, CONTRIBUTING.md)."""
    result = _run(str(BIN / "lint-imports"), "--no-cache", "--contract", contract)
    assert result.returncode == 0, result.stdout + result.stderr
