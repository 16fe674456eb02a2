"""Who the health probes run as, and with which limits (pure functions of the configuration)."""

from __future__ import annotations

import logging

import pytest

from firecrest_server.config import SystemConfig
from firecrest_server.runtime import _probe_identity, _probe_ssh


def system(credentials: dict | None = None, **overrides) -> SystemConfig:
    config = {
        "name": "cluster",
        "ssh": {
            "host": "login",
            "known_hosts": "/dev/null",
            "credentials": credentials or {"type": "static_keys", "keys": {}},
            "max_channels_per_connection": 64,
            "max_connections_per_user": 4,
        },
        "file_systems": [{"path": "/home"}, {"path": "/scratch"}],
    } | overrides
    return SystemConfig.model_validate(config)


def test_the_probe_identity_is_the_configured_probe_user(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        assert _probe_identity(system(probe_user="svc")) == "svc"
    assert caplog.records == []


def test_without_a_probe_user_there_is_no_identity_and_a_warning(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        assert _probe_identity(system()) is None
    assert "systems.cluster.probe_user is not set" in caplog.text


def test_key_service_systems_have_no_probe_identity(caplog) -> None:
    credentials = {"type": "key_service", "url": "http://keys.example"}
    with caplog.at_level(logging.WARNING):
        assert _probe_identity(system(credentials, probe_user="svc")) is None
    assert "systems.cluster.probe_user is ignored" in caplog.text


def test_key_service_systems_probe_with_a_service_account_token(caplog) -> None:
    token = {"token_url": "https://idp/token", "client_id": "svc", "client_secret": "x"}
    credentials = {"type": "key_service", "url": "http://keys.example", "probe_token": token}
    with caplog.at_level(logging.WARNING):
        assert _probe_identity(system(credentials, probe_user="svc")) == "svc"
    assert caplog.records == []


def test_a_probe_token_without_a_probe_user_is_refused() -> None:
    token = {"token_url": "https://idp/token", "client_id": "svc", "client_secret": "x"}
    credentials = {"type": "key_service", "url": "http://keys.example", "probe_token": token}
    with pytest.raises(ValueError, match="probe_token needs probe_user"):
        system(credentials)


@pytest.mark.parametrize(("channels", "expected"), [(64, 5), (3, 3)])
def test_the_probe_pool_has_one_connection_with_a_channel_per_probe(
    channels: int, expected: int
) -> None:
    config = system(probe_user="svc")
    config = config.model_copy(
        update={"ssh": config.ssh.model_copy(update={"max_channels_per_connection": channels})}
    )
    limits = _probe_ssh(config)
    assert limits.max_connections_per_user == 1
    # SFTP's slot, the SSH probe, the scheduler and two file systems; never above the callers'
    # cap, which is kept below the login node's MaxSessions.
    assert limits.max_channels_per_connection == expected
    assert (limits.host, limits.port, limits.credentials) == (
        config.ssh.host,
        config.ssh.port,
        config.ssh.credentials,
    )
