"""The published aiida-firecrest, from the package registry, in a venv of its own.

It has this repository's distribution name and entry points, so it can never share the
project's venv: it goes into a cached venv per version (made once, ~45 s; CI pays it once per
machine), and everything of it runs there, as subprocesses.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

# What the test runs against; a newer release gets its own venv beside this one.
VERSION = "1.0.0"


def cache_root() -> Path:
    """``FIRECREST_TEST_CACHE``, else ``$XDG_CACHE_HOME`` or ``~/.cache``, + our folder."""
    explicit = os.environ.get("FIRECREST_TEST_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "firecrest-server-tests"


def _python() -> str:
    # The interpreter under the one running the tests (aiida-core supports it, as ours does).
    return getattr(sys, "_base_executable", sys.executable)


def published_venv(version: str = VERSION) -> Path:
    """The venv with ``aiida-firecrest==version`` installed; made on first use, under a lock
    (sessions in parallel wait for one install), and only reused once complete."""
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    venv = cache_root() / f"aiida-firecrest-{version}-{tag}"
    done = venv / ".installed"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return venv
        # A venv is not relocatable (its scripts name its path): build it in place, and mark
        # it complete last; a half-made one is removed and made again.
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([_python(), "-m", "venv", str(venv)], check=True, timeout=300)
        install = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", f"aiida-firecrest=={version}"],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if install.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            raise RuntimeError(f"pip install aiida-firecrest=={version} failed:\n{install.stderr}")
        freeze = subprocess.run(
            [str(venv / "bin" / "pip"), "freeze"], capture_output=True, text=True, check=True
        )
        done.write_text(freeze.stdout)
    return venv


class Verdi:
    """``verdi`` of the published plugin's venv, with its own AIIDA_PATH and HOME (aiida-firecrest
    may write ``~/.firecrest``) in ``workdir``."""

    def __init__(self, venv: Path, workdir: Path) -> None:
        self.venv = venv
        self.workdir = workdir
        self.env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("AIIDA_", "VIRTUAL_ENV", "PYTHON"))
            },
            "AIIDA_PATH": str(workdir),
            "HOME": str(workdir),
            "TMPDIR": str(workdir / "tmp"),
            "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        (workdir / "tmp").mkdir(exist_ok=True)

    def __call__(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / "verdi"), *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.workdir,
            timeout=timeout,
        )


@contextlib.contextmanager
def verdi_in(venv: Path, parent: Path) -> Iterator[Verdi]:
    """A ``Verdi`` with a fresh directory under ``parent``, removed afterwards."""
    workdir = parent / "published-aiida"
    workdir.mkdir()
    try:
        yield Verdi(venv, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
