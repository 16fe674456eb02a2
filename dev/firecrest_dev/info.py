"""What a running stack is: DIR/stack.json as typed values, and tokens for its users."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx


@dataclass(frozen=True)
class StackUser:
    name: str
    home: str
    client_id: str
    client_secret: str
    token_command: str


@dataclass(frozen=True)
class StackInfo:
    dir: Path
    url: str
    system: str
    token_url: str
    users: dict[str, StackUser]  # alice and bob; mallory for hostile-shell tests only
    probe_user: str | None  # the server's own login for health probes (no OIDC client)
    ssh_host: str
    ssh_port: int
    ca_key: Path
    known_hosts: Path
    slurm_conf: Path
    signing_key: str
    issuer: str
    audience: str
    account: str
    pids: dict[str, int]
    # The API servers behind ``url``: one named "server" directly on it, or with
    # `up --replicas N` server-1..N behind HAProxy, each with its own direct URL.
    replicas: tuple[dict[str, Any], ...] = ()
    redis_url: str | None = None
    # `up --users K`: user0001..userK, whose tokens come from one client of the provider that
    # names the user in its scope (dev/oidc/README.md "Extra users"); not in ``users``.
    extra_users: tuple[str, ...] = ()
    extra_users_client: dict[str, str] | None = None
    slurm_mode: str = "ssh"  # how the stack's server reaches Slurm: ssh or rest (slurmrestd)
    slurmrestd_url: str | None = None
    slurmrestd_api_version: str | None = None

    @classmethod
    def load(cls, stack_json: Path) -> StackInfo:
        raw = json.loads(stack_json.read_text())
        return cls(
            dir=stack_json.parent,
            url=raw["url"],
            system=raw["system"],
            token_url=raw["token_url"],
            users={name: StackUser(name=name, **u) for name, u in raw["users"].items()},
            probe_user=raw.get("probe_user"),
            ssh_host=raw["ssh"]["host"],
            ssh_port=raw["ssh"]["port"],
            ca_key=Path(raw["ssh"]["ca_key"]),
            known_hosts=Path(raw["ssh"]["known_hosts"]),
            slurm_conf=Path(raw["slurm_conf"]),
            signing_key=raw["signing_key"],
            issuer=raw["issuer"],
            audience=raw["audience"],
            account=raw["account"],
            pids=raw["pids"],
            replicas=tuple(raw.get("replicas", ())),
            redis_url=raw.get("redis_url"),
            extra_users=tuple(raw.get("extra_users", {}).get("usernames", ())),
            extra_users_client=raw.get("extra_users"),
            slurm_mode=raw.get("slurm_mode", "ssh"),
            slurmrestd_url=raw.get("slurmrestd", {}).get("url"),
            slurmrestd_api_version=raw.get("slurmrestd", {}).get("api_version"),
        )

    def fetch_token(self, user: str) -> str:
        """A fresh access token from the OIDC provider, through the client-credentials grant."""
        response = httpx.post(self.token_url, data=self.token_request(user), timeout=10)
        response.raise_for_status()
        return response.json()["access_token"]

    def token_request(self, user: str) -> dict[str, str]:
        """The form of a client-credentials token request for ``user`` (a test user or, with
        `up --users K`, an extra user)."""
        if user in self.users:
            u = self.users[user]
            return {
                "grant_type": "client_credentials",
                "client_id": u.client_id,
                "client_secret": u.client_secret,
            }
        if user not in self.extra_users or self.extra_users_client is None:
            raise KeyError(f"{user!r} is neither a test user nor an extra user of the stack")
        client = self.extra_users_client
        return {
            "grant_type": "client_credentials",
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
            "scope": f"{client['scope_prefix']}{user}",
        }
