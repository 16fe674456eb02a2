"""`dev/stack install`: the Debian packages, the virtualenv with the three distributions
(plugin, server, this tooling), and the OIDC provider's npm packages. Idempotent."""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from .processes import StackError, log, require_root, run
from .settings import OIDC_DIR, REPO, VENV

APT_PACKAGES = [
    "openssh-server",
    "openssh-client",
    "munge",
    "slurm-wlm",
    "slurmctld",
    "slurmd",
    "slurm-client",
    "slurmdbd",
    "mariadb-server",
    "mariadb-client",
    "openssl",
    "curl",
    "ca-certificates",
    "procps",
    "wrk",  # HTTP load generator for benchmarks/
    "haproxy",  # the balancer in front of `up --replicas N`
    "redis-server",  # the replicas' shared state (a stack's own instance, never the system's)
    "slurmrestd",  # the scheduler's REST API (`up --slurm-mode rest`)
    "slurm-wlm-jwt-plugin",  # auth/jwt: slurmrestd forwards the callers' OIDC tokens to Slurm
    "quantum-espresso",  # pw.x for dev/demo --workflow si-eos and the QE end-to-end test
    "quantum-espresso-data",  # its UPF pseudopotentials (/usr/share/espresso/pseudo)
]


def _missing_apt_packages(packages: list[str]) -> list[str]:
    missing = []
    for package in packages:
        result = run(["dpkg-query", "-W", "-f=${Status}", package], check=False)
        if "install ok installed" not in result.stdout:
            missing.append(package)
    return missing


def _node_major() -> int:
    if not shutil.which("node") or not shutil.which("npm"):
        return 0
    result = run(["node", "--version"], check=False)
    try:
        return int(result.stdout.strip().lstrip("v").split(".")[0])
    except ValueError:
        return 0


def _apt_install(packages: list[str]) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    lock = ["-o", "DPkg::Lock::Timeout=600"]
    # Keep the packages' postinst scripts from starting system-wide sshd/munge/slurm/mariadb
    # services: the stack runs its own instances with state under DIR.
    policy = Path("/usr/sbin/policy-rc.d")
    created_policy = not policy.exists()
    if created_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        log(f"apt-get install {' '.join(packages)}")
        install = ["apt-get", "install", "-y", "--no-install-recommends", *lock, *packages]
        if subprocess.run(install, env=env).returncode != 0:
            subprocess.run(["apt-get", "update", *lock], env=env, check=True)
            subprocess.run(install, env=env, check=True)
    finally:
        if created_policy:
            policy.unlink(missing_ok=True)


def _python_for_venv() -> str:
    for candidate in ("python3", "python3.13", "python3.12", "python3.11"):
        path = shutil.which(candidate)
        if not path:
            continue
        probe = run([path, "-c", "import sys; print(sys.version_info >= (3, 11))"], check=False)
        if probe.stdout.strip() == "True":
            return path
    raise StackError("Python >= 3.11 is required (none found on PATH)")


def cmd_install(_args: argparse.Namespace) -> None:
    t0 = time.monotonic()
    require_root()
    packages = _missing_apt_packages(APT_PACKAGES)
    if _node_major() < 18:
        packages += [p for p in ("nodejs", "npm") if p not in packages]
    if packages:
        _apt_install(packages)
    else:
        log("Debian packages already installed")
    if _node_major() < 18:
        raise StackError("Node.js >= 18 with npm is required for the OIDC provider")

    python = _python_for_venv()
    if not (VENV / "bin" / "python").exists():
        if subprocess.run([python, "-m", "venv", str(VENV)]).returncode != 0:
            _apt_install(["python3-venv"])
            subprocess.run([python, "-m", "venv", str(VENV)], check=True)
        log(f"created {VENV}")
    pip = [
        str(VENV / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    marker = VENV / ".installed"
    fingerprint = _install_fingerprint()
    if not marker.exists() or marker.read_text() != fingerprint:
        log("pip install -e '.[dev]' -e ./server -e ./dev")
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        editables = [f"{REPO}[dev]", str(REPO / "server"), str(REPO / "dev")]
        subprocess.run([*pip, *(arg for path in editables for arg in ("-e", path))], check=True)
        marker.write_text(fingerprint)
    else:
        log("Python packages already installed")

    lock = OIDC_DIR / "package-lock.json"
    node_marker = OIDC_DIR / "node_modules" / ".installed"
    if not node_marker.exists() or node_marker.read_text() != lock.read_text():
        log("npm ci (dev/oidc)")
        subprocess.run(
            ["npm", "ci", "--omit=dev", "--no-audit", "--no-fund"], cwd=OIDC_DIR, check=True
        )
        node_marker.write_text(lock.read_text())
    else:
        log("npm packages already installed")
    log(f"install done in {time.monotonic() - t0:.1f} s")


def _install_fingerprint() -> str:
    """Changes when any distribution's requirements change, so `install` reinstalls then."""
    digest = hashlib.sha256()
    for pyproject in (
        REPO / "pyproject.toml",
        REPO / "server" / "pyproject.toml",
        REPO / "dev" / "pyproject.toml",
    ):
        digest.update(pyproject.read_bytes())
    return digest.hexdigest()
