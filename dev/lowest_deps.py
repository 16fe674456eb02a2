"""dev/lowest_deps.py - run each distribution's unit tests with its dependencies at their floors.

    .venv/bin/python dev/lowest_deps.py [--only server|plugin] [--keep DIR] [-- PYTEST ARGS...]

For the server (server/) and the plugin (the root), each in a virtualenv of its own in a temporary
directory (so neither lends the other a newer release):

1. `uv pip install --resolution lowest-direct` the distribution and the test tools (the
   plugin's `test` extra): every requirement they declare at the oldest release it allows;
2. check that each declared floor is what got installed. When another requirement lifts one
   (fastapi's starlette range, say), the floor promises something nothing tests: raise it;
3. run that distribution's unit tests (tests/server/unit, tests/plugin/unit).

The temporary directory is removed at the end (`--keep DIR` uses DIR instead and leaves it).
uv comes from the `dev` extra (next to this interpreter) and keeps its download cache where it
always does. .ci/run runs this after the test suite.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Distribution:
    name: str
    source: Path
    unit_tests: str


# The repository's test helpers, once they are a distribution of their own (dev/pyproject.toml):
# the tests' conftest modules import them. Installed beside each distribution, floors unchecked.
TEST_HELPERS = REPO / "dev"

DISTRIBUTIONS = {
    "server": Distribution("server", REPO / "server", "tests/server/unit"),
    "plugin": Distribution("plugin", REPO, "tests/plugin/unit"),
}


def log(message: str) -> None:
    print(f"[lowest-deps] {message}", flush=True)


def uv() -> str:
    beside = Path(sys.executable).parent / "uv"
    found = str(beside) if beside.exists() else shutil.which("uv")
    if not found:
        sys.exit("dev/lowest_deps.py: uv not found; install the dev extra (dev/stack install)")
    return found


def declared(source: Path, extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((source / "pyproject.toml").read_text())["project"]
    listed = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return [Requirement(line) for line in listed]


def floor(requirement: Requirement) -> Version | None:
    bounds = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==")]
    return max(bounds) if bounds else None


def installed_versions(python: Path) -> dict[str, Version]:
    out = subprocess.run(
        [uv(), "pip", "list", "--python", str(python), "--format", "json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {canonicalize_name(p["name"]): Version(p["version"]) for p in json.loads(out)}


def floors_not_installed(
    requirements: list[Requirement], versions: dict[str, Version]
) -> list[str]:
    problems = []
    for requirement in requirements:
        wanted = floor(requirement)
        got = versions.get(canonicalize_name(requirement.name))
        if wanted is None:
            problems.append(f"{requirement}: no floor")
        elif got != wanted:
            problems.append(f"{requirement}: the lowest resolvable release is {got}, not {wanted}")
    return problems


def run(dist: Distribution, workdir: Path, pytest_args: list[str]) -> bool:
    venv = workdir / f"venv-{dist.name}"
    python = venv / "bin" / "python"
    started = time.monotonic()
    subprocess.run([uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    test_tools = declared(REPO, "test")
    requirements = declared(dist.source)
    # A plain install (not editable), as users get it: built metadata, entry points, package data.
    subprocess.run(
        [
            uv(),
            "pip",
            "install",
            "--quiet",
            "--python",
            str(python),
            "--resolution",
            "lowest-direct",
            str(dist.source),
            *(str(r) for r in test_tools),
            *([str(TEST_HELPERS)] if (TEST_HELPERS / "pyproject.toml").exists() else []),
        ],
        check=True,
    )
    log(f"{dist.name}: installed in {time.monotonic() - started:.0f} s")
    versions = installed_versions(python)
    for requirement in requirements + test_tools:
        name = canonicalize_name(requirement.name)
        log(f"{dist.name}:   {requirement}  ->  {versions.get(name)}")
    problems = floors_not_installed(requirements + test_tools, versions)
    for problem in problems:
        log(f"{dist.name}: FLOOR NOT TESTED: {problem}")
    started = time.monotonic()
    tests = subprocess.run(
        [
            str(python),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            dist.unit_tests,
            *pytest_args,
        ],
        cwd=REPO,
    )
    log(f"{dist.name}: unit tests exited {tests.returncode} in {time.monotonic() - started:.0f} s")
    return tests.returncode == 0 and not problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(DISTRIBUTIONS), help="one distribution")
    parser.add_argument("--keep", type=Path, help="make the venvs in DIR and leave them there")
    parser.add_argument("pytest_args", nargs="*", help="after --: passed to pytest")
    args = parser.parse_args()
    chosen = [DISTRIBUTIONS[args.only]] if args.only else list(DISTRIBUTIONS.values())
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        workdir = args.keep
    else:
        workdir = Path(tempfile.mkdtemp(prefix="firecrest-lowest-deps-"))
    try:
        failed = [d.name for d in chosen if not run(d, workdir, args.pytest_args)]
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if failed:
        log(f"FAILED: {', '.join(failed)}")
        return 1
    log(f"passed: {', '.join(d.name for d in chosen)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
