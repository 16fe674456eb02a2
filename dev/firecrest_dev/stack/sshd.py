"""sshd on loopback that accepts only user certificates signed by the stack's CA."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from .processes import Stack, run
from .render import render, write_file


def start_sshd(stack: Stack) -> None:
    d, port = stack.dir, stack.ports["ssh"]
    host_key, ca = d / "ssh" / "ssh_host_ed25519_key", d / "ssh" / "user_ca"
    for key, comment in ((host_key, "stack-host"), (ca, "stack-user-ca")):
        if not key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)])
        key.chmod(0o600)
        Path(f"{key}.pub").chmod(0o644)
    host_pub = " ".join(Path(f"{host_key}.pub").read_text().split()[:2])
    write_file(
        d / "ssh" / "known_hosts", f"[127.0.0.1]:{port} {host_pub}\n[localhost]:{port} {host_pub}\n"
    )
    config = render("sshd_config", dir=d, port=port, host_key=host_key, ca=ca)
    sshd_config = write_file(d / "ssh" / "sshd_config", config)
    # OpenSSH >= 9.8 penalises failing sources; negative tests all come from 127.0.0.1.
    if (
        run(
            ["/usr/sbin/sshd", "-t", "-f", str(sshd_config), "-o", "PerSourcePenalties=no"],
            check=False,
        ).returncode
        == 0
    ):
        with sshd_config.open("a") as fh:
            fh.write("PerSourcePenalties no\n")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    run(["/usr/sbin/sshd", "-t", "-f", str(sshd_config)])
    stack.start("sshd", ["/usr/sbin/sshd", "-D", "-e", "-f", str(sshd_config)])


def ssh_probe(stack: Stack, user: str) -> bool:
    """A real certificate login that runs a Slurm command: proves sshd, the CA and Slurm agree."""
    d = stack.dir
    with _temporary_dir() as tmp:
        key = tmp / "k"
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
        run(
            [
                "ssh-keygen",
                "-q",
                "-s",
                str(d / "ssh" / "user_ca"),
                "-I",
                "dev-stack-probe",
                "-n",
                user,
                "-V",
                "-1m:+2m",
                f"{key}.pub",
            ]
        )
        result = run(
            [
                "ssh",
                "-p",
                str(stack.ports["ssh"]),
                "-i",
                str(key),
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                f"UserKnownHostsFile={d}/ssh/known_hosts",
                "-o",
                "ConnectTimeout=5",
                f"{user}@127.0.0.1",
                "sinfo -h -o %T",
            ],
            check=False,
        )
        return "idle" in result.stdout


@contextlib.contextmanager
def _temporary_dir():
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="stack-probe-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
