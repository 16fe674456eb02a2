"""The command line: what it hands to uvicorn."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from firecrest_server import cli


def minimal_config() -> dict:
    """The least a configuration needs: an identity provider and one system."""
    return {
        "auth": {"jwks_url": "https://idp/jwks", "issuer": "https://idp", "audience": "f7t"},
        "systems": [
            {
                "name": "c",
                "ssh": {
                    "host": "h",
                    "known_hosts": "/k",
                    "credentials": {"type": "ca", "ca_key": "K"},
                },
            }
        ],
    }


def test_idle_connections_outlive_client_keep_alive(tmp_path: Path, monkeypatch) -> None:
    config = minimal_config()
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))
    seen: dict = {}
    monkeypatch.setattr(cli.uvicorn, "run", lambda *args, **kwargs: seen.update(kwargs))
    monkeypatch.delenv(cli.CONFIG_ENV, raising=False)
    assert cli.main(["--config", str(path)]) == 0
    # Longer than httpx's (and so pyfirecrest's) pool expiry, with a wide margin: otherwise a
    # client reuses a connection the server is closing at that very moment.
    assert seen["timeout_keep_alive"] > 2 * httpx.Limits().keepalive_expiry
    # A response's head and body in one write; a bounded wait for requests in flight on stop.
    assert seen["http"] == "firecrest_server.edge_protocol:EdgeProtocol"
    assert seen["timeout_graceful_shutdown"] == 30
    assert seen["proxy_headers"] is False
    # Far above uvicorn's 5 s: workers starting on a loaded machine were killed in a loop.
    assert seen["timeout_worker_healthcheck"] == 60
    # server.event_loop chooses; uvloop with batched accepting by default (event_loop.py).
    assert seen["loop"] == "firecrest_server.event_loop:new_event_loop"
    config["server"] = {"event_loop": "asyncio"}
    path.write_text(json.dumps(config))
    assert cli.main(["--config", str(path)]) == 0
    assert seen["loop"] == "asyncio"


def test_check_exits_2_naming_the_key_of_a_shared_ca_key(tmp_path: Path, capsys) -> None:
    key_file = tmp_path / "user_ca"
    key_file.write_text("KEY")
    key_file.chmod(0o640)
    config = {
        "auth": {"jwks_url": "https://idp/jwks", "issuer": "https://idp", "audience": "f7t"},
        "systems": [
            {
                "name": "c",
                "ssh": {
                    "host": "h",
                    "known_hosts": "/k",
                    "credentials": {"type": "ca", "ca_key": {"file": str(key_file)}},
                },
            }
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))
    assert cli.main(["--config", str(path), "--check"]) == 2
    assert "systems.0.ssh.credentials.ca.ca_key:" in capsys.readouterr().err
    key_file.chmod(0o600)
    assert cli.main(["--config", str(path), "--check"]) == 0


@pytest.fixture(autouse=True)
def _restore_env(monkeypatch) -> None:
    monkeypatch.delenv(cli.SIGNING_KEY_ENV, raising=False)


def test_check_refuses_trusted_proxies_without_public_url(tmp_path: Path, capsys) -> None:
    config = {
        "server": {"trusted_proxies": ["10.0.0.0/8"]},
        "auth": {"jwks_url": "https://idp/jwks", "issuer": "https://idp", "audience": "f7t"},
        "systems": [
            {
                "name": "c",
                "ssh": {
                    "host": "h",
                    "known_hosts": "/k",
                    "credentials": {"type": "ca", "ca_key": "K"},
                },
            }
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))
    assert cli.main(["--config", str(path), "--check"]) == 2
    error = capsys.readouterr().err
    assert "server.trusted_proxies" in error
    assert "server.public_url" in error
    # Without proxies, a missing public_url is valid, with a warning.
    del config["server"]
    path.write_text(json.dumps(config))
    assert cli.main(["--config", str(path), "--check"]) == 0
    assert "warning: server.public_url is not set" in capsys.readouterr().err


def test_the_command_line_module_imports_nothing_of_the_server() -> None:
    """Each spawned worker imports cli.py again before it can answer its supervisor's health
    pings: the app (over a second of CPU) must not come with it (cli.py explains)."""
    import subprocess
    import sys

    code = (
        "import sys, firecrest_server.cli; "
        "print(sorted(m for m in sys.modules if m.startswith('firecrest_server.')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "['firecrest_server.cli', 'firecrest_server.worker_env']"


def test_workers_get_a_start_directory_that_is_removed_after(tmp_path: Path, monkeypatch) -> None:
    config = minimal_config()
    config["server"] = {"workers": 2}
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))
    seen: list[str | None] = []

    def run(*args, **kwargs) -> None:
        start_dir = cli.os.environ.get(cli.START_DIR_ENV)
        seen.append(start_dir)
        assert start_dir is not None
        assert Path(start_dir).is_dir()

    monkeypatch.setattr(cli.uvicorn, "run", run)
    monkeypatch.delenv(cli.START_DIR_ENV, raising=False)
    assert cli.main(["--config", str(path)]) == 0
    assert seen[0] is not None
    assert not Path(seen[0]).exists()
    assert cli.START_DIR_ENV not in cli.os.environ
    # One worker, or the wait switched off: nothing to wait for.
    monkeypatch.setattr(
        cli.uvicorn, "run", lambda *a, **k: seen.append(cli.os.environ.get(cli.START_DIR_ENV))
    )
    config["server"] = {"workers": 1}
    path.write_text(json.dumps(config))
    assert cli.main(["--config", str(path)]) == 0
    config["server"] = {"workers": 2, "worker_start_wait": 0}
    path.write_text(json.dumps(config))
    assert cli.main(["--config", str(path)]) == 0
    assert seen[1:] == [None, None]
