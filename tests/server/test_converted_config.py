"""A FirecREST v2 configuration of the stack, converted, serves the stack's users.

The FirecREST v2 file describes the stack's cluster the way a centre migrating to this server
would have it (its identity provider, login node, file systems, health checks);
`firecrest-server config convert` translates it with the options a migration gives (issuer,
audience, known_hosts, CA key, probe login), `--check` accepts the result, and a server started
from exactly that file authenticates alice, acts on the cluster as her and probes as its own
login — over real HTTP, sshd, Slurm and OIDC.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml

from firecrest_dev.info import StackInfo
from firecrest_dev.own_server import own_server

pytestmark = pytest.mark.stack

MAX_OPS_FILE_SIZE = 3 * 1024 * 1024


def _firecrest_v2_config(stack: StackInfo) -> dict[str, Any]:
    return {
        "apis_root_path": "",
        "auth": {
            "authentication": {
                "tokenUrl": stack.token_url,
                "publicCerts": [f"{stack.issuer}/jwks"],
                "usernameClaim": "preferred_username",
            },
            "authorization": {"url": "http://openfga.invalid:8080"},
        },
        # Replaced by the built-in CA (--ca-key), as a centre moving off a key service would.
        "ssh_credentials": {"type": "SSHService", "url": "http://sshkeys.invalid:5010"},
        "clusters": [
            {
                "name": stack.system.upper(),
                "ssh": {
                    "host": stack.ssh_host,
                    "port": stack.ssh_port,
                    "maxClients": 100,
                    "timeout": {"commandExecution": 30},
                },
                "scheduler": {"type": "slurm", "version": "22.05", "timeout": 30},
                "serviceAccount": {"clientId": "firecrest-health", "secret": "unused"},
                "probing": {
                    "interval": 600,
                    "services": {"ssh": {}, "scheduler": {}, "filesystem": {}},
                },
                "fileSystems": [
                    {"path": "/home", "dataType": "users", "defaultWorkDir": True},
                    {"path": "/tmp", "dataType": "scratch"},
                ],
                "data_operation": {
                    "max_ops_file_size": MAX_OPS_FILE_SIZE,
                    "datatransfer_jobs_directives": [f"#SBATCH --account={stack.account}"],
                },
            }
        ],
    }


def _re_signed(stack: StackInfo, genuine: str, claim: str) -> str:
    """``genuine`` signed again by the provider's own key, with ``claim`` naming someone else."""
    claims = jwt.decode(genuine, options={"verify_signature": False})
    claims[claim] = "https://another.example.org" if claim == "iss" else "another-application"
    kid = jwt.get_unverified_header(genuine)["kid"]
    return jwt.encode(claims, stack.signing_key, algorithm="RS256", headers={"kid": kid})


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "firecrest_server.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


async def test_converted_firecrest_v2_config_serves_the_stack(
    stack: StackInfo, token_for: Callable[[str], str], tmp_path: Path
) -> None:
    source = tmp_path / "f7t-api-config.yaml"
    source.write_text(yaml.safe_dump(_firecrest_v2_config(stack)))
    converted = tmp_path / "ours.yaml"
    result = _cli(
        "config",
        "convert",
        str(source),
        "--output",
        str(converted),
        "--issuer",
        stack.issuer,
        "--audience",
        stack.audience,
        "--known-hosts",
        str(stack.known_hosts),
        "--ca-key",
        str(stack.ca_key),
        "--probe-user",
        str(stack.probe_user),
    )
    assert result.returncode == 0, result.stderr
    assert "warning: auth.authorization: OpenFGA" in result.stderr
    # Given to the server as it is, the FirecREST file is recognised, not listed key by key.
    refused = _cli("--config", str(source), "--check")
    assert refused.returncode == 2
    assert "config convert" in refused.stderr
    check = _cli("--config", str(converted), "--check")
    assert check.returncode == 0, check.stderr

    config = yaml.safe_load(converted.read_text())
    with own_server(stack, tmp_path, base_config=config) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            alice = {"Authorization": f"Bearer {token_for('alice')}"}
            systems = (await http.get("/status/systems", headers=alice)).json()["systems"]
            assert [s["name"] for s in systems] == [stack.system]
            assert systems[0]["dataOperation"]["max_ops_file_size"] == MAX_OPS_FILE_SIZE
            assert [fs["path"] for fs in systems[0]["fileSystems"]] == ["/home", "/tmp"]
            listing = await http.get(
                f"/filesystem/{stack.system}/ops/ls",
                params={"path": stack.users["alice"].home},
                headers=alice,
            )
            assert listing.status_code == 200, listing.text
            jobs = await http.get(f"/compute/{stack.system}/jobs", headers=alice)
            assert jobs.status_code == 200, jobs.text
            userinfo = await http.get(f"/status/{stack.system}/userinfo", headers=alice)
            assert userinfo.json()["user"]["name"] == "alice"
            # FirecREST v2 checked neither; the issuer and audience the options gave are.
            for claim in ("aud", "iss"):
                other = {"Authorization": f"Bearer {_re_signed(stack, token_for('alice'), claim)}"}
                response = await http.get("/status/systems", headers=other)
                assert response.status_code == 401, claim

            # The probes run as --probe-user, every service healthy.
            deadline = time.monotonic() + 60
            while True:
                systems = (await http.get("/status/systems", headers=alice)).json()["systems"]
                health = systems[0].get("servicesHealth") or []
                if len(health) == 4 and all(h["healthy"] is not None for h in health):
                    break
                assert time.monotonic() < deadline, f"probes did not report: {health}"
                await asyncio.sleep(0.5)
            by_service = {(h["serviceType"], h.get("path")): h["healthy"] for h in health}
            assert by_service == {
                ("ssh", None): True,
                ("scheduler", None): True,
                ("filesystem", "/home"): True,
                ("filesystem", "/tmp"): True,
            }
