"""Names, ports and timings that the parts of the stack agree on."""

from __future__ import annotations

from pathlib import Path

# dev/firecrest_dev/stack/settings.py -> the repository
REPO = Path(__file__).resolve().parents[3]

# The entry point (what token_command in stack.json runs)
STACK_SCRIPT = REPO / "dev" / "stack"
VENV = REPO / ".venv"
OIDC_DIR = REPO / "dev" / "oidc"
SYSTEM_NAME = "cluster"
# Users with an OIDC client and a Slurm association. mallory is for the hostile-shell tests only
# (tests/security/test_fairness.py edits her dotfiles), so that alice's and bob's are never touched.
TEST_USERS = ("alice", "bob", "mallory")
HOSTILE_USER = "mallory"
# The server's own login for its health probes: no OIDC client (no token can name it), not a
# caller, so no caller's connections or shell can decide whether the system looks healthy.
PROBE_USER = "firecrest-probe"
ACCOUNT = "testacct"
# `up --users K` adds the logins user0001 ... userK (for benchmarks/users.py): real accounts
# (uid >= 1000, homes 0700, Slurm associations) that share one OIDC client of the stack's
# provider, which may name any of them in a token (dev/oidc/README.md "Extra users").
EXTRA_USER_PREFIX = "user"
EXTRA_USERS_CLIENT = "stack-extra-users"
MAX_EXTRA_USERS = 9999
NODE = "node1"
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_PORTS = {
    "ssh": 2222,
    "slurmctld": 6817,
    "slurmd": 6818,
    "slurmdbd": 6819,
    "mysql": 3307,
    "oidc": 18080,
    "api": 18000,
    "redis": 16379,
    "slurmrestd": 6820,
}

# slurmrestd refuses to run as root or as SlurmUser: it runs as this system account.
RESTD_USER = "slurmrestd"
# The OpenAPI plugin versions of Debian's Slurm 22.05 slurmrestd.
RESTD_API_VERSION = "0.0.38"

# A stopping replica answers /status/liveness with 503 this long before it stops accepting:
# longer than HAProxy needs to see it fail (HAPROXY_CHECK_MS x HAPROXY_FALL, plus one check).
REPLICA_DRAIN_SECONDS = 2.0
REPLICA_GRACE_SECONDS = 20.0
HAPROXY_CHECK_MS = 500
HAPROXY_FALL = 2
HAPROXY_RISE = 2

# Parts that lose nothing when SIGKILLed (a crash), the default for these. The others default to
# SIGTERM: a SIGKILLed slurmctld loses the job-id counter it had not saved yet, reuses ids that
# slurmd still runs, and drains the node ("Duplicate jobid").
CRASHABLE_PARTS = ("server", "sshd", "oidc")

PART_PORTS = {
    "server": "api",
    "sshd": "ssh",
    "oidc": "oidc",
    "slurmctld": "slurmctld",
    "haproxy": "api",
    "redis": "redis",
    "slurmrestd": "slurmrestd",
}
