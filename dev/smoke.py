"""The main job on the local stack, for now: a short session through the API server.

Run by `dev/demo`; prints each step and what came back. (The AiiDA plugin will turn this into
a real AiiDA workflow run.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx


def main(stack_json: str) -> int:
    stack = json.loads(Path(stack_json).read_text())
    url, alice = stack["url"], stack["users"]["alice"]
    t0 = time.monotonic()

    def step(message: str) -> None:
        print(f"[{time.monotonic() - t0:5.2f}s] {message}", flush=True)

    # token_command is a shell command by contract (as in pyfirecrest's TokenCommandAuth)
    token = subprocess.run(  # noqa: S602
        alice["token_command"], shell=True, capture_output=True, text=True, check=True
    ).stdout.strip()
    step(f"got an access token for alice from {stack['token_url']} ({len(token)} bytes)")
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as api:
        response = api.get("/status/systems")
        response.raise_for_status()
        systems = response.json()["systems"]
        for system in systems:
            step(
                f"GET /status/systems -> {response.status_code}: system {system['name']!r}, "
                f"ssh {system['ssh']['host']}:{system['ssh']['port']}, "
                f"scheduler {system['scheduler']['type']}, "
                f"FirecREST API {response.headers['f7t-appversion']}, "
                f"server {system['server']['version']}"
            )
        forged = api.get("/status/systems", headers={"Authorization": "Bearer not.a.jwt"})
        message = forged.json()["message"]
        step(f"GET /status/systems with a bad token -> {forged.status_code}: {message}")
    ok = response.status_code == 200 and forged.status_code == 401
    step("smoke run " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
