"""Run aiida-core's generic transport suite against the `firecrest` transport on the stack.

    .venv/bin/python dev/aiida_generic_suite.py AIIDA_CORE_CHECKOUT [--stack DIR/stack.json]
        [--keep] [-- PYTEST_ARGS...]

aiida-core keeps the tests every transport plugin should pass in
``tests/transports/test_all_plugins.py`` of its source tree (not in its wheel or sdist), so this
takes a checkout of aiida-core (its main branch, or the tag of the installed version). The
suite file is copied into a temporary directory and used unchanged except for one thing: its
``custom_transport`` fixture, which lists aiida-core's own plugins, is renamed, so that the
fixture of that name in the conftest written next to it, which opens `firecrest` for alice on
the stack, is used.

The suite makes files with the local process and looks at them through the transport, as one
user on one machine. The transport works as alice, so the suite runs as alice too (with an
interpreter she can read: a copy of the standard library when the virtualenv's base is in a
private home such as pyenv's under /root).

Some tests cannot pass on FirecREST, whatever the server: ``EXPECTED`` lists them with the
reason and the pattern its failure report must match. The script exits 0 when every other
test passed and each of those failed that way, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from defusedxml import ElementTree

from firecrest_dev.aiida_env import computer_settings
from firecrest_dev.running import running_stack

USER = "alice"
SUITE = Path("tests/transports/test_all_plugins.py")

# Each expected failure must fail the expected way: a pattern its failure report must match.
_NO_EXEC = (
    r"NotImplementedError",
    "FirecREST v2 runs no commands: exec_command_wait raises NotImplementedError",
)
_TAR_BY_EXEC = (
    # The failing line is the last block's: every earlier assertion of the test passed.
    r"^>\s+with pytest\.raises\(OSError, match='Error while (creating|extracting) the tar",
    "fakes a failing `tar` by replacing exec_command_wait; this transport's compress/extract "
    "call the API's ops/compress and ops/extract, which the fake does not reach",
)
EXPECTED: dict[str, tuple[str, str]] = {
    "test_exec_with_stdin_string": _NO_EXEC,
    "test_exec_with_stdin_bytes": _NO_EXEC,
    "test_exec_with_stdin_filelike": _NO_EXEC,
    "test_exec_with_stdin_filelike_bytes": _NO_EXEC,
    "test_exec_with_stdin_filelike_bytes_decoding": _NO_EXEC,
    "test_exec_with_wrong_stdin": _NO_EXEC,
    "test_transfer_big_stdout": _NO_EXEC,
    "test_asynchronous_execution": (_NO_EXEC[0], _NO_EXEC[1] + " (core.direct submits with it)"),
    "test_compress_error_handling": _TAR_BY_EXEC,
    "test_extract": _TAR_BY_EXEC,
}

CONFTEST = '''\
"""Written by dev/aiida_generic_suite.py: the transport under test and the helpers the suite
expects from aiida-core's own conftest."""

import json
import os
from pathlib import Path

import pytest
from aiida.plugins import TransportFactory
from aiida.tools.pytest_fixtures import (  # noqa: F401  (a temporary profile)
    aiida_config,
    aiida_config_factory,
    aiida_profile,
    aiida_profile_factory,
)


@pytest.fixture
def custom_transport():
    settings = json.loads(Path(os.environ["FC_SUITE_SETTINGS"]).read_text())
    return TransportFactory("firecrest")(**settings)


@pytest.fixture
def create_file_hierarchy():
    """create(mapping, directory): a dict of names -> text (a file) or dict (a directory)."""

    def create(mapping, directory):
        for name, content in mapping.items():
            if isinstance(content, dict):
                create(content, Path(directory) / name)
            else:
                Path(directory).mkdir(parents=True, exist_ok=True)
                (Path(directory) / name).write_text(content)

    return create


@pytest.fixture
def serialize_file_hierarchy():
    """serialize(directory, read_bytes=True): the files below directory as create() takes them
    (directories without files are left out)."""

    def serialize(directory, read_bytes=True):
        tree = {}
        for path in sorted(Path(directory).rglob("*")):
            if path.is_dir():
                continue
            node = tree
            for part in path.relative_to(directory).parts[:-1]:
                node = node.setdefault(part, {})
            node[path.name] = path.read_bytes() if read_bytes else path.read_text()
        return tree

    return serialize
'''


def _readable_by_everyone(path: Path) -> bool:
    return all(directory.stat().st_mode & stat.S_IXOTH for directory in [path, *path.parents])


def _interpreter_for(work: Path, venv_site: Path) -> tuple[Path, dict[str, str]]:
    """A Python alice can run that sees this virtualenv's packages (and the project's
    editable installs, through the .pth files of its site-packages)."""
    base = Path(sys.base_prefix)
    env: dict[str, str] = {}
    if not _readable_by_everyone(base):
        copy = work / "python"
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        shutil.copytree(base / "bin", copy / "bin", symlinks=True)
        shutil.copytree(
            base / "lib" / version,
            copy / "lib" / version,
            symlinks=True,
            ignore=shutil.ignore_patterns("site-packages", "test", "idlelib", "tkinter"),
        )
        for library in (base / "lib").glob("libpython*"):
            shutil.copy2(library, copy / "lib")
        if sysconfig.get_config_var("Py_ENABLE_SHARED"):
            env["LD_LIBRARY_PATH"] = str(copy / "lib")
        base = copy
    python = base / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    venv = work / "venv"
    subprocess.run(
        [str(python), "-m", "venv", "--without-pip", str(venv)],
        check=True,
        env={**os.environ, **env},
    )
    (next((venv / "lib").glob("python*")) / "site-packages" / "project.pth").write_text(
        f"import site; site.addsitedir({str(venv_site)!r})\n"
    )
    return venv / "bin" / "python", env


def _prepare_suite(checkout: Path, directory: Path) -> None:
    source = (checkout / SUITE).read_text()
    renamed, count = re.subn(
        r"^def custom_transport\(", "def aiida_core_custom_transport(", source, flags=re.M
    )
    if count != 1:
        raise SystemExit(f"{checkout / SUITE}: no `def custom_transport(` to replace")
    directory.mkdir(parents=True)
    (directory / SUITE.name).write_text(renamed)
    (directory / "conftest.py").write_text(CONFTEST)
    (directory / "pytest.ini").write_text("[pytest]\nfaulthandler_timeout = 300\n")


def _outcomes(junit: Path) -> dict[str, tuple[str, str]]:
    """test name -> (passed/failed/error/skipped, the failure's report)."""
    results = {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        outcome, report = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                report = f"{child.get('message', '')}\n{child.text or ''}"
        results[case.get("name", "")] = (outcome, report)
    return results


def _as_expected(name: str, report: str) -> bool:
    pattern, _reason = EXPECTED.get(name.split("[")[0], ("(?!)", ""))
    return re.search(pattern, report, flags=re.M) is not None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkout", type=Path, help="a source checkout of aiida-core")
    parser.add_argument("--stack", help="DIR/stack.json of a running stack (default: own)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    argv = sys.argv[1:]
    pytest_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if os.geteuid() != 0:
        raise SystemExit("run as root: the suite runs as alice, the stack's test user")
    account = pwd.getpwnam(USER)
    work = Path(tempfile.mkdtemp(prefix="fc-generic-suite-"))
    work.chmod(0o755)
    try:
        suite = work / "suite"
        _prepare_suite(args.checkout, suite)
        python, env = _interpreter_for(work, Path(sysconfig.get_paths()["purelib"]))
        with running_stack(args.stack) as stack:
            settings = {"machine": stack.system, **computer_settings(stack, USER)}
            home = work / "home"
            home.mkdir(mode=0o700)  # alice's client secret goes in here
            settings_file = home / "settings.json"
            settings_file.write_text(json.dumps(settings))
            for path in [home, settings_file, *suite.rglob("*"), suite]:
                os.chown(path, account.pw_uid, account.pw_gid)
            env.update(
                HOME=str(home),
                AIIDA_PATH=str(home / "aiida"),
                FC_SUITE_SETTINGS=str(settings_file),
                PYTHONDONTWRITEBYTECODE="1",
                PATH="/usr/bin:/bin",
            )
            junit = home / "junit.xml"
            argv = [
                str(python), "-m", "pytest", SUITE.name, "-c", "pytest.ini", "--rootdir", ".",
                "-p", "no:cacheprovider", f"--basetemp={home / 'tmp'}", f"--junitxml={junit}",
                "-q", "-rfE", *pytest_args,
            ]  # fmt: skip
            # `env -i`: alice's process gets these variables and none of root's.
            command = f"cd {shlex.quote(str(suite))} && " + shlex.join(
                ["env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv]
            )
            run = subprocess.run(["su", USER, "-s", "/bin/bash", "-c", command])
            if not junit.exists():
                print(f"the suite did not run (exit {run.returncode})")
                return 1
            outcomes = _outcomes(junit)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    unexpected, expected = [], []
    for name, (outcome, report) in sorted(outcomes.items()):
        if outcome in ("failed", "error"):
            (expected if _as_expected(name, report) else unexpected).append(name)
    passed = sum(outcome == "passed" for outcome, _ in outcomes.values())
    print(f"\n{len(outcomes)} tests: {passed} passed, {len(expected)} failed as expected, "
          f"{len(unexpected)} failed otherwise")  # fmt: skip
    for name in expected:
        print(f"  expected: {name}: {EXPECTED[name.split('[')[0]][1]}")
    for name in unexpected:
        print(f"  FAILED: {name}: {outcomes[name][1].splitlines()[0]}")
    # An expected failure that now passes makes EXPECTED stale: say so, and fail, so that the
    # list is kept true. (A test the suite no longer has is only mentioned.)
    failing = {name.split("[")[0] for name in expected}
    present = {name.split("[")[0] for name in outcomes}
    stale = sorted((set(EXPECTED) & present) - failing)
    for function in stale:
        print(f"  PASSES NOW (remove it from EXPECTED): {function}")
    for function in sorted(set(EXPECTED) - present):
        print(f"  not in this suite: {function}")
    skipped = sorted(name for name, (outcome, _) in outcomes.items() if outcome == "skipped")
    if skipped:
        print(f"  skipped: {', '.join(skipped)}")
    return 1 if unexpected or stale else 0


if __name__ == "__main__":
    sys.exit(main())
