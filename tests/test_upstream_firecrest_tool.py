"""The pure parts of dev/upstream_firecrest.py (running it needs a FirecREST v2 checkout, which
CI does not fetch): the FirecREST v2 configuration it writes for the stack, the venv it refuses,
and how it reads pytest's summary."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from firecrest_server.upstream_config import ConvertOptions, convert

SCRIPT = Path(__file__).resolve().parent.parent / "dev" / "upstream_firecrest.py"

STACK = {
    "token_url": "http://127.0.0.1:1/token",
    "issuer": "http://127.0.0.1:1",
    "system": "cluster",
    "account": "testacct",
    "ssh": {"host": "127.0.0.1", "port": 2222},
    "users": {"alice": {"client_id": "alice-client", "client_secret": "s3cret"}},
}


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("upstream_firecrest", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_stack_config_is_a_firecrest_v2_config_of_the_stack(tool) -> None:
    upstream = tool.firecrest_v2_config(STACK, "http://127.0.0.1:2")
    # Read back through our own model of FirecREST's settings: every key is one FirecREST
    # knows (no "not a FirecREST v2 key" warning), and it describes the same cluster.
    conversion = convert(upstream, ConvertOptions(issuer=STACK["issuer"], audience=["f"]))
    assert not [w for w in conversion.warnings if "not a FirecREST v2 key" in w]
    system = conversion.config["systems"][0]
    assert (system["ssh"]["host"], system["ssh"]["port"]) == ("127.0.0.1", 2222)
    assert system["ssh"]["credentials"] == {"type": "key_service", "url": "http://127.0.0.1:2"}
    assert system["data_operation"]["transfer_job_directives"] == ["#SBATCH --account=testacct"]
    assert conversion.config["auth"]["jwks_url"] == "http://127.0.0.1:1/jwks"


def test_a_venv_inside_the_repository_is_refused(tool, tmp_path: Path) -> None:
    checkout = tmp_path / "firecrest-v2"
    checkout.mkdir()
    (checkout / "requirements.txt").write_text("fastapi\n")
    with pytest.raises(SystemExit, match="outside the repository"):
        tool.build_venv(checkout, tool.REPO / ".upstream-venv")
    assert not (tool.REPO / ".upstream-venv").exists()


def test_pytest_summary_is_found(tool) -> None:
    output = "...\nFAILED x::y\n===== 10 failed, 89 passed, 3 warnings in 189.91s =====\n"
    assert tool.pytest_counts(output) == "10 failed, 89 passed, 3 warnings in 189.91s"
    assert tool.pytest_counts("collected 0 items\n").startswith("no summary")


def test_only_new_firecrest_v2_logs_are_removed(tool, tmp_path: Path) -> None:
    upstream_log = ".f7t_file_handling_job_6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b.log"
    upstream_error = ".f7t_file_handling_job_error_6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b.log"
    ours = ".f7t_file_handling_job_6f1c2a3b4d5e4f608a7b9c0d1e2f3a4b.log"  # this server's names
    earlier = ".f7t_file_handling_job_00000000-0000-0000-0000-000000000000.log"
    (tmp_path / earlier).write_text("")
    before = {tmp_path: {earlier}}
    for name in (upstream_log, upstream_error, ours, "results.txt"):
        (tmp_path / name).write_text("")
    assert tool.remove_upstream_logs([tmp_path], before) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([earlier, ours, "results.txt"])
