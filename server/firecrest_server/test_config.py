"""Configuration parsing: valid files load, and errors name the key path."""

from pathlib import Path

import pytest

from .config import ConfigError, load_settings, parse_settings


def _minimal(**system_overrides) -> dict:
    system = {
        "name": "Cluster",
        "ssh": {
            "host": "login.example.org",
            "known_hosts": "/etc/known_hosts",
            "credentials": {"type": "ca", "ca_key": "-----BEGIN OPENSSH PRIVATE KEY-----"},
        },
    } | system_overrides
    return {"auth": {"jwks_url": "https://idp/jwks"}, "systems": [system]}


def test_minimal_config_loads_with_defaults() -> None:
    settings = parse_settings(_minimal())
    system = settings.system("CLUSTER")
    assert system is not None
    assert system.name == "cluster"
    assert system.ssh.port == 22
    assert settings.auth.algorithms == ["RS256"]


def test_error_names_the_key_path() -> None:
    data = _minimal()
    data["systems"][0]["ssh"]["port"] = 70000
    with pytest.raises(ConfigError, match=r"systems\.0\.ssh\.port: "):
        parse_settings(data)


def test_unknown_keys_are_errors() -> None:
    data = _minimal()
    data["systems"][0]["ssh"]["max_chanels"] = 4
    with pytest.raises(ConfigError, match=r"systems\.0\.ssh\.max_chanels"):
        parse_settings(data)


def test_symmetric_and_none_algorithms_are_refused() -> None:
    data = _minimal()
    data["auth"]["algorithms"] = ["HS256", "none"]
    with pytest.raises(ConfigError, match=r"auth\.algorithms"):
        parse_settings(data)


def test_secret_from_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "ca"
    key_file.write_text("KEY-FROM-FILE")
    monkeypatch.setenv("F7T_TEST_PASSPHRASE", "from-env")
    creds = {
        "type": "ca",
        "ca_key": {"file": str(key_file)},
        "ca_key_passphrase": {"env": "F7T_TEST_PASSPHRASE"},
    }
    data = _minimal()
    data["systems"][0]["ssh"]["credentials"] = creds
    credentials = parse_settings(data).systems[0].ssh.credentials
    assert credentials.ca_key.get_secret_value() == "KEY-FROM-FILE"
    assert credentials.ca_key_passphrase.get_secret_value() == "from-env"
    assert "KEY-FROM-FILE" not in repr(credentials)


def test_missing_secret_file_is_reported_at_its_key(tmp_path: Path) -> None:
    data = _minimal()
    data["systems"][0]["ssh"]["credentials"]["ca_key"] = {"file": str(tmp_path / "missing")}
    with pytest.raises(
        ConfigError, match=r"systems\.0\.ssh\.credentials\.ca\.ca_key: .*cannot read"
    ):
        parse_settings(data)


def test_duplicate_system_names_are_refused() -> None:
    data = _minimal()
    data["systems"].append(dict(data["systems"][0], name="cluster"))
    with pytest.raises(ConfigError, match="duplicate system names"):
        parse_settings(data)


def test_file_system_paths_must_be_absolute() -> None:
    with pytest.raises(ConfigError, match=r"systems\.0\.file_systems\.0\.path"):
        parse_settings(_minimal(file_systems=[{"path": "home"}]))


def test_load_settings_reports_unreadable_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("auth: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)


def test_state_redis_url_is_optional_and_validated() -> None:
    assert parse_settings(_minimal()).state.redis_url is None
    data = _minimal() | {"state": {"redis_url": "redis://127.0.0.1:6380/2"}}
    assert parse_settings(data).state.redis_url == "redis://127.0.0.1:6380/2"
    for bad in ("127.0.0.1:6379", "http://redis:6379/0", "redis://host:port/0", "redis://"):
        data = _minimal() | {"state": {"redis_url": bad}}
        with pytest.raises(ConfigError, match=r"state\.redis_url: "):
            parse_settings(data)
    with pytest.raises(ConfigError, match=r"state\.slot_lease: "):
        parse_settings(_minimal() | {"state": {"slot_lease": 1}})
