"""The benchmark scripts run end to end on the stack, in a tiny mode (no timing is asserted).

They are run by hand for real numbers (docs/benchmarks.md); this keeps them working: each must
exit 0, write its JSON with the expected keys, see no failed request, and draw its PNG.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from firecrest_dev.info import StackInfo
from firecrest_dev.stack.settings import REPO

pytestmark = pytest.mark.stack

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run_script(
    script: str, stack: StackInfo, tmp_path: Path, *args: str, timeout: float = 120
) -> tuple[dict, str]:
    """The script's JSON summary and printed report, after checking that it exited 0."""
    out = tmp_path / f"{script}.json"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / f"{script}.py"),
            "--stack",
            str(stack.dir / "stack.json"),
            "--json",
            str(out),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(out.read_text()), result.stdout


def _run(
    script: str, stack: StackInfo, tmp_path: Path, *args: str, timeout: float = 120
) -> tuple[dict, Path]:
    png = tmp_path / f"{script}.png"
    summary, _ = _run_script(script, stack, tmp_path, "--plot", str(png), *args, timeout=timeout)
    assert png.read_bytes().startswith(PNG_MAGIC)
    assert png.stat().st_size > 10_000
    return summary, png


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is installed by dev/stack install")
def test_api_benchmark(stack: StackInfo, tmp_path: Path) -> None:
    summary, _ = _run("api", stack, tmp_path, "--seconds", "1", "--clients", "1,4")
    assert summary["benchmark"] == "api"
    assert summary["errors"] == 0
    rows = {(r["endpoint"], r["clients"]): r for r in summary["rows"]}
    assert set(rows) == {(e, c) for e in ("stat", "ls", "systems") for c in (1, 4)}
    for (endpoint, _clients), row in rows.items():
        ways = ("api", "raw_exec", "raw_sftp") if endpoint != "systems" else ("api",)
        assert set(row) == {"endpoint", "clients", *ways}
        for way in ways:
            measured = row[way]
            assert {"rps", "p50_ms", "p95_ms", "p99_ms", "errors", "requests"} <= set(measured)
            assert measured["errors"] == 0, (endpoint, way, measured)
            assert measured["requests"] > 0
            assert measured["p50_ms"] <= measured["p95_ms"] <= measured["p99_ms"]
    assert summary["median_rps_ratio"] > 0


def test_transfer_benchmark(stack: StackInfo, tmp_path: Path) -> None:
    result, _ = _run(
        "transfer",
        stack,
        tmp_path,
        "--quick",
        "--size",
        "4M",
        "--big-repeat",
        "1",
        "--files",
        "30",
        "--tree-repeat",
        "1",
        "--concurrency",
        "4",
        "--workdir",
        str(tmp_path),
    )
    assert result["benchmark"] == "transfer"
    big = result["big_file"]
    assert big["size_bytes"] == 4 * 2**20
    ways = ("api", "api_curl", "raw_sftp") if shutil.which("curl") else ("api", "raw_sftp")
    for direction in ("up", "down"):
        assert set(ways) <= set(big[direction])
        for way in ways:
            measured = big[direction][way]
            assert measured["sha256_ok"], (direction, way)
            assert measured["mib_s"] > 0
            assert set(measured["cpu_s_per_gib"]) == {"client", "server", "sshd", "total"}
    trees = result["trees"]
    assert trees["files"] == 30
    assert set(trees["rows"]) == {
        f"{w}_{d}" for w in ("api", "raw", "files") for d in ("up", "down")
    }
    for key, row in trees["rows"].items():
        assert row["verified"] == "ok", key


def test_download_benchmark(stack: StackInfo, tmp_path: Path) -> None:
    home = Path(stack.users["alice"].home)
    job_logs_before = set(home.glob(".f7t_file_handling_job*"))
    result, _ = _run(
        "download", stack, tmp_path, "--size", "4M", "--rounds", "1", "--workdir", str(tmp_path)
    )
    # The staged run's transfer job wrote its logs to alice's home; the benchmark removed them.
    assert set(home.glob(".f7t_file_handling_job*")) == job_logs_before
    assert result["benchmark"] == "download"
    assert result["size_bytes"] == 4 * 2**20
    ways = result["ways"]
    assert set(ways) == {"direct", "staged", "raw"}
    for way, row in ways.items():
        assert row["sha256_ok"], way
        assert row["mib_s"] > 0
        assert set(row["cpu_s_per_gib"]) == {"client", "server", "sshd", "total"}
        assert 0 < row["client_rss_before_mib"] <= row["client_rss_peak_mib"]
    # The plugin's get went the way each server's limit allows: one ops/download, or the
    # 413, the transfer job and the staging URL.
    assert ways["direct"]["staged"] == [False]
    filesystem = f"/filesystem/{stack.system}"
    assert ways["direct"]["runs"][0]["requests"] == [f"GET {filesystem}/ops/download 200"]
    assert ways["staged"]["staged"] == [True]
    requests = ways["staged"]["runs"][0]["requests"]
    assert f"GET {filesystem}/ops/download 413" in requests
    assert f"POST {filesystem}/transfer/download 201" in requests
    assert ways["direct"]["over_raw_mib_s"] > 0


def test_job_listing_benchmark(stack: StackInfo, tmp_path: Path) -> None:
    summary, report = _run_script(
        "job_listing",
        stack,
        tmp_path,
        *("--history", "30", "--tracked", "5", "--repeat", "1"),
        timeout=300,
    )
    assert summary["benchmark"] == "job_listing"
    assert summary["jobs_in_window"] >= 30
    assert summary["median"]["by_id"]["jobs"] == 5
    assert summary["median"]["window"]["jobs"] >= 30
    assert set(summary["ratios"]) == {"wall_ms", "cpu_ms", "bytes"}
    assert "window / by id" in report


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is installed by dev/stack install")
def test_shared_limits_benchmark(stack: StackInfo, tmp_path: Path) -> None:
    summary, report = _run_script(
        "shared_limits", stack, tmp_path, "--seconds", "1", "--admissions", "200"
    )
    assert summary["benchmark"] == "shared_limits"
    assert set(summary["limiter"]) == {"at_once_1", "at_once_32"}
    for row in summary["limiter"].values():
        for way in ("local", "redis"):
            assert set(row[way]) == {"wall_us", "cpu_us", "redis_cpu_us"}
            assert row[way]["wall_us"] > 0
    for way in ("local", "redis"):
        assert summary["http"][way]["errors"] == 0
        assert summary["http"][way]["rps"] > 0
    assert "redis/local" in report


def test_users_benchmark(stack: StackInfo, tmp_path: Path) -> None:
    """Distinct users (the session stack's extra users) each with a request in flight: all
    served, one SSH connection each, reaped when idle. (The capped phase needs a second
    server, ~10 s more: the pool's cap is tested against sshd in tests/server/test_ssh_pool.py.)
    """
    if len(stack.extra_users) < 4:
        pytest.skip("this stack was started without `--users 4` or more")
    summary, _ = _run(
        "users",
        stack,
        tmp_path,
        *("--users", "2,4", "--idle-timeout", "1", "--capped", ""),
    )
    assert summary["benchmark"] == "users"
    assert [row["users"] for row in summary["steps"]] == [2, 4]
    for row in summary["steps"]:
        for wave in ("cold", "warm"):
            assert row[wave]["errors"] == 0, row[wave]
            assert row[wave]["statuses"] == {"200": row["users"]}
        assert row["floor_connections"] == 0
        assert row["connections_after_cold"] == row["users"]
        assert row["ssh_connections_per_user"] == 1.0
        assert row["pool_after_cold"]["users"] == row["users"]
        # The warm wave reused the connections: none was opened or reaped in between.
        assert row["connections_after_warm"] == row["users"]
        assert row["reaping"]["reached_floor"]
        assert row["sshd_processes_per_connection"] >= 2  # sshd's monitor + the session
        assert row["rss_after_mib"] > 0
    assert "capped" not in summary


def test_aiida_calcjobs_benchmark(stack: StackInfo, tmp_path: Path) -> None:
    """Needs PostgreSQL and RabbitMQ (`dev/services`), as tests/e2e/ does."""
    summary, _ = _run(
        "aiida_calcjobs",
        stack,
        tmp_path,
        *("--count", "2", "--warmup", "0", "--configs", "firecrest,asyncssh"),
        timeout=900,
    )
    assert summary["benchmark"] == "aiida_calcjobs"
    rows = {row["config"]: row for row in summary["results"]}
    assert set(rows) == {"firecrest", "asyncssh"}
    for row in rows.values():
        assert row["ok"] == 2, row
    # Counted from the server's access log and sshd's log: what each calculation asked.
    ours = rows["firecrest"]["operations_per_calc"]
    assert ours["http_requests"]["POST /compute/{system_name}/jobs"] == 1
    assert ours["http_requests"]["PUT /filesystem/{system_name}/ops/tree"] == 1
    assert ours["http_body_bytes"]["in"] > 0
    theirs = rows["asyncssh"]["operations_per_calc"]
    assert theirs["http_requests"] == {}
    assert theirs["sessions"]["command"] >= 1  # sbatch, at least
    assert theirs["connections"] > 0
    assert summary["wall_ratios"]["firecrest/asyncssh"][0] > 0


def test_cold_burst_benchmark(stack: StackInfo, tmp_path: Path) -> None:
    """Fresh servers, each sent a burst of first requests on new connections: all answered,
    with the Server-Timing breakdown read back (no timing is asserted)."""
    png = tmp_path / "cold_burst.png"
    # Each run starts a server: slower than the others on a loaded machine.
    summary, _ = _run_script(
        "cold_burst", stack, tmp_path, "--clients", "20", "--runs", "2", "--plot", str(png),
        timeout=400,
    )  # fmt: skip
    assert png.read_bytes().startswith(PNG_MAGIC)
    assert summary["benchmark"] == "cold_burst"
    assert len(summary["runs"]) == 2
    assert summary["runs_started"] == 2
    assert summary["errors"] == 0
    for run in summary["runs"]:
        assert run["statuses"] == {"200": 20}
        assert run["worker_restarts"] == 0
        assert run["workers_ready"] >= 1
        assert run["p50_ms"] <= run["p99_ms"] <= run["max_ms"]
        assert set(run["phases_tail_ms"]) == {"queue", "conn", "auth", "ssh", "handler"}
        # The slowest requests of a fresh server waited for alice's first SSH login.
        assert run["phases_tail_ms"]["ssh"] > 0
        assert run["warm"]["errors"] == 0
        assert run["cpu_ms_per_request"] > 0
        assert len(run["latencies_ms"]) == 20
