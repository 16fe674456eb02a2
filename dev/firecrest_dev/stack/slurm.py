"""munged, MariaDB, slurmdbd, slurmctld, slurmd and slurmrestd, and clearing up the stack's jobs."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
from pathlib import Path

from .processes import Process, Stack, log, run, wait_for
from .render import render, write_file
from .settings import ACCOUNT, CLEAN_PATH, NODE, RESTD_API_VERSION, RESTD_USER, TEST_USERS
from .web import http_get


def start_munge(stack: Stack) -> Path:
    d = stack.dir
    key = d / "munge" / "munge.key"
    if not key.exists() or key.stat().st_size == 0:
        key.write_bytes(os.urandom(1024))
    shutil.chown(key, "munge", "munge")
    key.chmod(0o400)
    sock = d / "munge" / "munge.sock"
    for stale in (sock, Path(f"{sock}.lock")):
        stale.unlink(missing_ok=True)
    stack.start(
        "munged",
        [
            "/usr/sbin/munged",
            "-F",
            "--num-threads=10",
            f"--key-file={key}",
            f"--socket={sock}",
            f"--pid-file={d}/munge/munged.pid",
            f"--seed-file={d}/munge/munged.seed",
        ],
        user="munge",
    )

    def munge_ok() -> bool:
        cred = run(["munge", "-S", str(sock), "-n"]).stdout
        return run(["unmunge", "-S", str(sock)], input=cred).returncode == 0

    wait_for("munged", munge_ok, stack=stack)
    return sock


def write_slurm_conf(stack: Stack, munge_sock: Path) -> Path:
    d, p = stack.dir, stack.ports
    mem_mb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1]) // 1024
    mem_mb = mem_mb - 512 if mem_mb > 1536 else 1024
    text = render(
        "slurm.conf",
        dir=d,
        slurmctld_port=p["slurmctld"],
        slurmd_port=p["slurmd"],
        slurmdbd_port=p["slurmdbd"],
        munge_sock=munge_sock,
        node=NODE,
        mem_mb=mem_mb,
    )
    return write_file(d / "etc" / "slurm.conf", text)


def start_accounting(stack: Stack, munge_sock: Path, slurm_env: dict) -> None:
    d, p = stack.dir, stack.ports
    data = d / "mysql"
    data.mkdir(exist_ok=True)
    shutil.chown(data, "mysql", "mysql")
    data.chmod(0o750)
    my_cnf = write_file(
        d / "etc" / "my.cnf",
        render("my.cnf", data=data, dir=d, port=p["mysql"]),
    )
    if not (data / "data" / "mysql").exists():
        run(
            [
                "mariadb-install-db",
                f"--defaults-file={my_cnf}",
                "--user=mysql",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ]
        )
        log("mariadb datadir initialised")
    err = d / "log" / "mariadb.err"
    err.touch()
    shutil.chown(err, "mysql", "mysql")
    stack.start("mariadbd", ["/usr/sbin/mariadbd", f"--defaults-file={my_cnf}", "--user=mysql"])
    sock = data / "mysqld.sock"
    wait_for(
        "mariadbd",
        lambda: (
            run(
                ["mariadb-admin", "--no-defaults", "-S", str(sock), "-u", "root", "ping"],
                check=False,
            ).returncode
            == 0
        ),
        stack=stack,
    )
    dbpass_file = d / "etc" / "dbpass"
    if not dbpass_file.exists():
        write_file(dbpass_file, secrets.token_urlsafe(18), 0o600)
    dbpass = dbpass_file.read_text().strip()
    run(
        ["mariadb", "--no-defaults", "-S", str(sock), "-u", "root"],
        input=(
            "CREATE DATABASE IF NOT EXISTS slurm_acct_db;\n"
            f"CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '{dbpass}';\n"
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';\n"
        ),
    )
    write_file(
        d / "etc" / "slurmdbd.conf",
        render(
            "slurmdbd.conf",
            munge_sock=munge_sock,
            dir=d,
            slurmdbd_port=p["slurmdbd"],
            mysql_port=p["mysql"],
            dbpass=dbpass,
        ),
        0o600,
        owner="slurm",  # slurmdbd refuses a config that others can read or that it does not own
    )
    stack.start("slurmdbd", ["/usr/sbin/slurmdbd", "-D"], env=slurm_env)
    wait_for(
        "slurmdbd",
        lambda: (
            run(["sacctmgr", "-n", "list", "cluster"], env=slurm_env, check=False).returncode == 0
        ),
        stack=stack,
    )


def start_slurm(stack: Stack, slurm_env: dict, extra_users: list[str]) -> None:
    d = stack.dir
    conf = slurm_env["SLURM_CONF"]
    stack.start("slurmctld", ["/usr/sbin/slurmctld", "-D", "-f", conf])
    wait_for(
        "slurmctld",
        lambda: "is UP" in run(["scontrol", "ping"], env=slurm_env, check=False).stdout,
        stack=stack,
    )
    # Accounts before the node comes up: with AccountingStorageEnforce=associations a job
    # needs an association. Each sacctmgr add costs ~0.5 s, so only once per DIR.
    marker = d / "slurm" / "accounts.done"
    # A DIR made before a user was added to TEST_USERS gets only the missing associations.
    known = marker.read_text().split() if marker.exists() else []
    associated = [*TEST_USERS, *extra_users]
    missing = [user for user in associated if user not in known]
    if not marker.exists():
        run(["sacctmgr", "-i", "-Q", "add", "cluster", "stack"], env=slurm_env, check=False)
        run(
            [
                "sacctmgr",
                "-i",
                "-Q",
                "add",
                "account",
                ACCOUNT,
                "Description=stack",
                "Organization=stack",
            ],
            env=slurm_env,
            check=False,
        )
    if missing:
        run(
            [
                "sacctmgr",
                "-i",
                "-Q",
                "add",
                "user",
                ",".join(missing),
                f"DefaultAccount={ACCOUNT}",
            ],
            env=slurm_env,
            check=False,
        )
        marker.write_text(" ".join(dict.fromkeys([*known, *associated])))
        log(f"accounting: account {ACCOUNT} with {len(missing)} more user(s)")
    # sacct -c opens the jobcomp file for append even to read it; slurmctld resets its mode
    # whenever it opens it, so this must follow slurmctld's start.
    jobcomp = d / "log" / "jobcomp.txt"
    if jobcomp.exists():
        jobcomp.chmod(0o666)
    stack.start("slurmd", ["/usr/sbin/slurmd", "-D", "-N", NODE, "-f", conf])
    wait_for(
        f"node {NODE} idle",
        lambda: (
            run(["sinfo", "-h", "-n", NODE, "-o", "%T"], env=slurm_env, check=False).stdout.strip()
            == "idle"
        ),
        stack=stack,
    )


def start_slurmrestd(stack: Stack, slurm_env: dict) -> str:
    """slurmrestd on loopback, authenticating each request by the caller's token (rest_auth/jwt).
    It refuses to run as root or SlurmUser, so it runs as its own system account."""
    port = stack.ports["slurmrestd"]
    stack.start(
        "slurmrestd",
        [
            "/usr/sbin/slurmrestd",
            "-f",
            slurm_env["SLURM_CONF"],
            "-a",
            "rest_auth/jwt",
            "-s",
            f"openapi/v{RESTD_API_VERSION},openapi/dbv{RESTD_API_VERSION}",
            f"127.0.0.1:{port}",
        ],
        # SLURM_JWT=daemon: its own connections to slurmctld carry the caller's token, not one
        # of its own.
        env={**slurm_env, "SLURM_JWT": "daemon"},
        user=RESTD_USER,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for("slurmrestd", lambda: restd_answers(port), stack=stack)
    return url


def restd_answers(port: int) -> bool:
    # Without a token slurmrestd answers 401: any HTTP answer means it serves.
    try:
        status, _ = http_get(f"http://127.0.0.1:{port}/slurm/v{RESTD_API_VERSION}/ping")
    except OSError:
        return False
    return status in (200, 401)


def cancel_leftover_jobs(d: Path, processes: list[Process]) -> None:
    if not any(p.name == "slurmctld" and p.alive() for p in processes):
        return
    env = {"PATH": CLEAN_PATH, "SLURM_CONF": str(d / "etc" / "slurm.conf")}
    jobs = run(["squeue", "-h", "-o", "%A"], env=env, check=False, timeout=10).stdout.split()
    if not jobs:
        return
    log(f"cancelling {len(jobs)} leftover job(s)")
    run(["scancel", *sorted(set(jobs))], env=env, check=False, timeout=10)
    # slurmstepd outlives slurmd; wait until Slurm has really ended the jobs.
    wait_for(
        "jobs to end",
        lambda: (
            not run(["squeue", "-h", "-o", "%A"], env=env, check=False, timeout=5).stdout.strip()
        ),
        timeout=15,
    )


def kill_job_leftovers(d: Path) -> None:
    """Kill what this stack's jobs left running: with proctrack/linuxproc, a process a job
    started escapes once slurmstepd is gone (seen: an S3 staging waiter, waiting 6 h for a
    test's abandoned upload). Only job processes (SLURM_JOB_ID set) whose environment names this
    stack's slurm.conf: other stacks on the machine share the users alice and bob, and a shell
    that merely exported SLURM_CONF is not a job."""
    marker = f"SLURM_CONF={d / 'etc' / 'slurm.conf'}".encode()
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in environment and any(v.startswith(b"SLURM_JOB_ID=") for v in environment):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
    if killed:
        log(f"killed {killed} process(es) left by this stack's jobs")
