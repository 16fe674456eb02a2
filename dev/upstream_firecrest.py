"""Run the real FirecREST v2 on the local stack, and our clients' tests against it.

    .venv/bin/python dev/upstream_firecrest.py FIRECREST_V2_CHECKOUT --stack DIR/stack.json
        [--venv DIR] [--keep] [-- PYTEST_ARGS...]

Not part of `dev/test` or CI: it needs a checkout of eth-cscs/firecrest-v2 (never committed
here; `git clone https://github.com/eth-cscs/firecrest-v2 /tmp/firecrest-v2`) and installs its
requirements from the package registry into a venv outside this repository (default
`~/.cache/firecrest-server-tests/firecrest-v2-<hash of requirements.txt>`, reused while the
requirements are the same).

What it does, on a running `dev/stack up DIR`:

1. starts `dev/key_service.py` (FirecREST's SSHService protocol, signing with the stack's CA):
   FirecREST v2 logs in with keys from such a service;
2. writes a FirecREST v2 configuration for the stack's cluster (identity provider, sshd, Slurm,
   file systems; health checks with alice's client as FirecREST's service account) and starts
   FirecREST v2 from the checkout with uvicorn, as its Dockerfile does;
3. writes `DIR/stack-firecrest-v2.json`, the stack's description with FirecREST's URL as `url`,
   and runs with it (FIRECREST_STACK) the tests that use only the API: pyfirecrest's
   conformance tests (`tests/server/test_pyfirecrest_ops.py`) and our AiiDA plugin's transport
   and scheduler tests (`tests/plugin/test_transport_contract.py`, `test_scheduler.py`), or the
   pytest arguments given after `--`;
4. prints the upstream commit, the date and pytest's counts, stops what it started and removes
   the files it wrote, with FirecREST's transfer-job logs in the test users' homes (`--keep`
   keeps the configuration, FirecREST's log and pytest's whole output).

Results and what they mean are kept in docs/interop.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
KEY_SERVICE = REPO / "dev" / "key_service.py"
DEFAULT_TESTS = [
    "tests/server/test_pyfirecrest_ops.py",
    "tests/plugin/test_transport_contract.py",
    "tests/plugin/test_scheduler.py",
]
# FirecREST pins aiobotocore<=2.26.0, which needs botocore<1.41.6, and leaves boto3 open: pip
# then walks back through hundreds of boto3 releases (each a download) to find one that fits.
# Pinned here to the range aiobotocore 2.26.0 declares, so the resolver goes straight to it.
CONSTRAINTS = "boto3<1.41.6\nbotocore<1.41.6\n"
# FirecREST v2 names its transfer jobs' logs with a dashed uuid4 (this server with a plain hex
# one), and writes them into the user's home: names of this form can only come from the
# FirecREST v2 this script runs, so they are removed after the tests. The test session does
# not clean homes when given FIRECREST_STACK.
UPSTREAM_LOG = re.compile(
    r"^\.f7t_file_handling_job_(error_)?[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\.log$"
)
CACHE = Path(os.environ.get("FIRECREST_TEST_CACHE", Path.home() / ".cache/firecrest-server-tests"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def upstream_commit(checkout: Path) -> str:
    result = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    if result.returncode == 0:
        return result.stdout.strip()
    # A tree from `git archive` has no .git; the commit is then what the caller says it is.
    return os.environ.get("FIRECREST_V2_COMMIT", "unknown")


def build_venv(checkout: Path, venv: Path | None) -> Path:
    requirements = checkout / "requirements.txt"
    digest = hashlib.sha256(requirements.read_bytes() + CONSTRAINTS.encode()).hexdigest()[:12]
    venv = venv or CACHE / f"firecrest-v2-{digest}"
    if REPO in venv.resolve().parents or venv.resolve() == REPO:
        sys.exit(f"{venv}: the venv must be outside the repository")
    marker = venv / ".installed"
    if marker.exists() and marker.read_text() == digest:
        return venv
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    constraints = venv / "constraints.txt"
    constraints.write_text(CONSTRAINTS)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "-r", str(requirements), "-c", str(constraints)], check=True)
    marker.write_text(digest)
    return venv


def wait_for(url: str, process: subprocess.Popen, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            tail = log.read_text()[-3000:] if log else ""
            sys.exit(f"{what} exited with status {process.returncode}\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            sys.exit(f"{what} did not answer {url} within 60 s")
        time.sleep(0.3)


@contextlib.contextmanager
def running(command: list[str], log: Path, **kwargs) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, **kwargs)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def firecrest_v2_config(stack: dict, key_service_url: str) -> dict:
    """FirecREST v2's settings for the stack's cluster (keys of its `Settings` model)."""
    alice = stack["users"]["alice"]
    return {
        "apis_root_path": "",
        "auth": {
            "authentication": {
                "token_url": stack["token_url"],
                "public_certs": [f"{stack['issuer']}/jwks"],
                "username_claim": "preferred_username",
                # The stack's tokens live 5 minutes; FirecREST's default floor (30 s) is fine.
            }
        },
        "ssh_credentials": {"type": "SSHService", "url": key_service_url},
        "clusters": [
            {
                "name": stack["system"],
                "ssh": {
                    "host": stack["ssh"]["host"],
                    "port": stack["ssh"]["port"],
                    "timeout": {"command_execution": 30},
                },
                "scheduler": {"type": "slurm", "version": "22.05"},
                # FirecREST's health checks log in as the service account's token's user.
                "service_account": {
                    "client_id": alice["client_id"],
                    "secret": alice["client_secret"],
                },
                "probing": {
                    "interval": 60,
                    "services": {"ssh": {}, "scheduler": {}, "filesystem": {}},
                },
                "file_systems": [
                    {"path": "/home", "data_type": "users", "default_work_dir": True},
                    {"path": "/tmp", "data_type": "scratch"},
                ],
                "data_operation": {
                    "max_ops_file_size": 5 * 1024 * 1024,
                    "datatransfer_jobs_directives": [f"#SBATCH --account={stack['account']}"],
                },
            }
        ],
    }


def remove_upstream_logs(homes: list[Path], before: dict[Path, set[str]]) -> int:
    removed = 0
    for home in homes:
        for name in {entry.name for entry in home.iterdir()} - before.get(home, set()):
            if UPSTREAM_LOG.match(name):
                (home / name).unlink(missing_ok=True)
                removed += 1
    return removed


def pytest_counts(output: str) -> str:
    lines = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    return lines[-1].strip("= ") if lines else "no summary (see the output above)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="a FirecREST v2 source tree")
    parser.add_argument("--stack", type=Path, required=True, help="DIR/stack.json of dev/stack")
    parser.add_argument("--venv", type=Path, help="where to install FirecREST's requirements")
    parser.add_argument("--keep", action="store_true", help="keep the config and logs")
    argv = sys.argv[1:]
    # Everything after `--` goes to pytest untouched (argparse would read its options).
    pytest_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    checkout = args.checkout.resolve()
    if not (checkout / "src" / "firecrest" / "main.py").exists():
        sys.exit(f"{checkout}: not a FirecREST v2 source tree (no src/firecrest/main.py)")
    stack = json.loads(args.stack.read_text())
    commit = upstream_commit(checkout)
    venv = build_venv(checkout, args.venv)
    work = Path(tempfile.mkdtemp(prefix="firecrest-v2-"))
    derived_stack = args.stack.parent / "stack-firecrest-v2.json"
    homes = [Path(user["home"]) for user in stack["users"].values()]
    before = {home: {entry.name for entry in home.iterdir()} for home in homes}
    try:
        key_port, api_port = free_port(), free_port()
        key_url = f"http://127.0.0.1:{key_port}"
        key_command = [sys.executable, str(KEY_SERVICE), str(args.stack), "--port", str(key_port)]
        with running(key_command, work / "key_service.log") as keys:
            wait_for(f"{key_url}/health", keys, "the key service")
            config = work / "f7t-api-config.yaml"
            config.write_text(yaml.safe_dump(firecrest_v2_config(stack, key_url)))
            env = {
                **os.environ,
                "YAML_CONFIG_FILE": str(config),
                "PYTHONPATH": str(checkout / "src"),
            }
            uvicorn = [str(venv / "bin" / "uvicorn"), "firecrest.main:app"]
            uvicorn += ["--host", "127.0.0.1", "--port", str(api_port)]
            log = work / "firecrest-v2.log"
            url = f"http://127.0.0.1:{api_port}"
            with running(uvicorn, log, env=env, cwd=work) as api:
                wait_for(f"{url}/status/liveness/", api, "FirecREST v2", log)
                derived = {**stack, "url": url}
                derived_stack.write_text(json.dumps(derived, indent=1))
                derived_stack.chmod(0o600)
                tests = pytest_args or DEFAULT_TESTS
                command = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider"]
                command += tests
                result = subprocess.run(
                    command,
                    cwd=REPO,
                    env={**os.environ, "FIRECREST_STACK": str(derived_stack)},
                    capture_output=True,
                    text=True,
                )
                (work / "pytest.log").write_text(result.stdout + result.stderr)
                sys.stdout.write(result.stdout[-20000:])
        today = datetime.date.today().isoformat()
        print(f"\nFirecREST v2 {commit} on {today}: {pytest_counts(result.stdout)}")
        if args.keep:
            print(f"configuration and logs kept in {work}")
        return 0 if result.returncode == 0 else 1
    finally:
        derived_stack.unlink(missing_ok=True)
        removed = remove_upstream_logs(homes, before)
        print(f"removed {removed} FirecREST v2 transfer-job logs from the test users' homes")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
