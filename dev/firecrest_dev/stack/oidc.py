"""The OIDC provider (dev/oidc, the npm package oidc-provider) and its clients."""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path

from .processes import Stack, StackError, run, wait_for
from .render import write_file
from .settings import EXTRA_USERS_CLIENT, OIDC_DIR, TEST_USERS
from .web import http_get


def oidc_clients(d: Path) -> dict[str, dict]:
    secrets_file = d / "oidc" / "clients.json"
    known = json.loads(secrets_file.read_text()) if secrets_file.exists() else {}
    # A DIR made before a user was added to TEST_USERS keeps its clients and gets the new ones.
    clients = {
        user: known.get(user)
        or {"client_id": f"{user}-client", "client_secret": secrets.token_urlsafe(24)}
        for user in TEST_USERS
    }
    if clients != known:
        write_file(secrets_file, json.dumps(clients, indent=1), 0o600)
    return clients


def extra_users_client(d: Path) -> dict:
    """The one client that may ask for a token naming any extra user; its secret is kept per
    DIR like the test users' clients."""
    secret_file = d / "oidc" / "extra-users-client.json"
    if secret_file.exists():
        return json.loads(secret_file.read_text())
    client = {"client_id": EXTRA_USERS_CLIENT, "client_secret": secrets.token_urlsafe(24)}
    write_file(secret_file, json.dumps(client), 0o600)
    return client


def start_oidc(stack: Stack, extra_users: list[str]) -> tuple[str, dict]:
    d, port = stack.dir, stack.ports["oidc"]
    if not (OIDC_DIR / "node_modules").exists():
        raise StackError("dev/oidc/node_modules is missing: run `dev/stack install` first")
    key = d / "oidc" / "signing-key.pem"
    if not key.exists():
        run(
            [
                "openssl",
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                str(key),
            ]
        )
    key.chmod(0o600)
    issuer = f"http://127.0.0.1:{port}"
    clients = oidc_clients(d)
    config = {
        "host": "127.0.0.1",
        "port": port,
        "issuer": issuer,
        "audience": "firecrest",
        "token_ttl": 600,
        "signing_key_file": str(key),
        "clients": [{**c, "username": user} for user, c in clients.items()],
    }
    if extra_users:
        config["extra_users"] = {**extra_users_client(d), "usernames": extra_users}
    config_file = write_file(d / "oidc" / "config.json", json.dumps(config, indent=1), 0o600)
    stack.start(
        "oidc",
        [shutil.which("node") or "node", str(OIDC_DIR / "server.mjs"), str(config_file)],
        cwd=OIDC_DIR,
    )
    discovery = f"{issuer}/.well-known/openid-configuration"
    wait_for("the OIDC provider", lambda: http_get(discovery)[0] == 200, stack=stack)
    return issuer, clients


def write_jwks(stack: Stack, issuer: str) -> Path:
    """The OIDC provider's public keys, in the file Slurm's auth/jwt reads (``jwks=``): Slurm
    cannot fetch a JWKS URL, so a key rotation needs this file rewritten and Slurm reconfigured."""
    status, body = http_get(f"{issuer}/jwks")
    if status != 200:
        raise StackError(f"the OIDC provider's JWKS answered {status}")
    return write_file(stack.dir / "etc" / "jwks.json", body.decode(), 0o644)
