"""The main job on the local stack, for now: a short session through the API server.

Run by `dev/demo`; prints each step and what came back: authenticate, list systems, make a
directory, upload an input, submit a Slurm job that reads it, wait for it, read its output,
clean up. (The AiiDA plugin will turn this into a real AiiDA workflow run.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx


def main(stack_json: str) -> int:
    stack = json.loads(Path(stack_json).read_text())
    url, system, alice = stack["url"], stack["system"], stack["users"]["alice"]
    t0 = time.monotonic()

    def step(message: str) -> None:
        print(f"[{time.monotonic() - t0:5.2f}s] {message}", flush=True)

    # token_command is a shell command by contract (as in pyfirecrest's TokenCommandAuth)
    token = subprocess.run(  # noqa: S602
        alice["token_command"],
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    step(f"got an access token for alice from {stack['token_url']} ({len(token)} bytes)")
    workdir = f"{alice['home']}/demo-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as api:
        systems = api.get("/status/systems").raise_for_status()
        described = systems.json()["systems"][0]
        step(
            f"GET /status/systems -> {systems.status_code}: system {described['name']!r}, "
            f"FirecREST API {systems.headers['f7t-appversion']}, "
            f"server {described['server']['version']}, "
            f"extensions {described['server']['capabilities']}"
        )
        forged = api.get("/status/systems", headers={"Authorization": "Bearer not.a.jwt"})
        step(f"same with a bad token -> {forged.status_code}: {forged.json()['message']}")

        fs = f"/filesystem/{system}/ops"
        made = api.post(f"{fs}/mkdir", json={"path": workdir}).raise_for_status()
        step(f"POST mkdir {workdir} -> {made.status_code}")
        files = {"file": ("numbers.txt", b"".join(f"{i}\n".encode() for i in range(1, 101)))}
        uploaded = api.post(f"{fs}/upload", params={"path": workdir}, files=files)
        step(f"POST upload numbers.txt -> {uploaded.raise_for_status().status_code}")
        listing = api.get(f"{fs}/ls", params={"path": workdir}).raise_for_status()
        names = [f"{e['name']} ({e['size']} B)" for e in listing.json()["output"]]
        step(f"GET ls -> {names}")

        script = "#!/bin/bash\nawk '{s += $1} END {print \"sum =\", s}' numbers.txt\n"
        job = {"job": {"workingDirectory": workdir, "script": script, "name": "demo-sum"}}
        submitted = api.post(f"/compute/{system}/jobs", json=job).raise_for_status()
        job_id = submitted.json()["jobId"]
        step(f"POST /compute/{system}/jobs -> {submitted.status_code}: job {job_id}")
        state = ""
        while state not in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"):
            time.sleep(0.5)
            jobs = api.get(f"/compute/{system}/jobs/{job_id}").raise_for_status().json()["jobs"]
            state = jobs[0]["status"]["state"]
        step(f"job {job_id} {state} with exit code {jobs[0]['status']['exitCode']}")
        output = api.get(f"{fs}/view", params={"path": f"{workdir}/slurm-{job_id}.out"})
        step(f"GET view slurm-{job_id}.out -> {output.json()['output'].strip()!r}")
        removed = api.delete(f"{fs}/rm", params={"path": workdir})
        step(f"DELETE rm {workdir} -> {removed.status_code}")
    ok = (
        forged.status_code == 401
        and state == "COMPLETED"
        and output.json()["output"].strip() == "sum = 5050"
        and removed.status_code == 204
    )
    step("demo run " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
