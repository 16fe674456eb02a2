"""Configuration parsing: valid files load, and errors name the key path."""

from pathlib import Path

import pytest

from firecrest_server.config import ConfigError, load_settings, parse_settings


def _minimal(**system_overrides) -> dict:
    system = {
        "name": "Cluster",
        "ssh": {
            "host": "login.example.org",
            "known_hosts": "/etc/known_hosts",
            "credentials": {"type": "ca", "ca_key": "-----BEGIN OPENSSH PRIVATE KEY-----"},
        },
    } | system_overrides
    auth = {"jwks_url": "https://idp/jwks", "issuer": "https://idp", "audience": "firecrest"}
    return {"auth": auth, "systems": [system]}


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


def test_unknown_key_gets_the_closest_known_key_as_a_hint() -> None:
    data = _minimal(data_operation={"max_ops_filesize": 1}, probe_usr="p")
    data["systems"][0]["ssh"]["max_chanels_per_connection"] = 4
    data["systems"][0]["ssh"]["credentials"]["valdity"] = 60
    data["auth"]["isuer"] = "x"
    data["sever"] = {}
    with pytest.raises(ConfigError) as caught:
        parse_settings(data)
    lines = str(caught.value).splitlines()[1:]
    assert sorted(lines) == [
        "auth.isuer: Extra inputs are not permitted; did you mean 'issuer'?",
        "sever: Extra inputs are not permitted; did you mean 'server'?",
        # Through the discriminated union (the tag is in the path) and a list.
        "systems.0.data_operation.max_ops_filesize: Extra inputs are not permitted; "
        "did you mean 'max_ops_file_size'?",
        "systems.0.probe_usr: Extra inputs are not permitted; did you mean 'probe_user'?",
        "systems.0.ssh.credentials.ca.valdity: Extra inputs are not permitted; "
        "did you mean 'validity'?",
        "systems.0.ssh.max_chanels_per_connection: Extra inputs are not permitted; "
        "did you mean 'max_channels_per_connection'?",
    ]


def test_unknown_key_far_from_any_lists_the_known_keys() -> None:
    data = _minimal()
    data["systems"][0]["ssh"]["credentials"] = {
        "type": "static_keys",
        "keys": {"alice": {"private_key": "K", "zzz": "x"}},
    }
    with pytest.raises(ConfigError) as caught:
        parse_settings(data)
    # Through a dict of models keyed by user name.
    assert str(caught.value).splitlines()[1] == (
        "systems.0.ssh.credentials.static_keys.keys.alice.zzz: Extra inputs are not permitted; "
        "known keys here: certificate, passphrase, private_key"
    )


def test_a_firecrest_v2_file_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "f7t.yaml"
    path.write_text("auth: {authentication: {tokenUrl: x}}\nclusters: []\nssh_credentials: {}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert "is a FirecREST v2 configuration (it has clusters, ssh_credentials, " in message
    assert "auth.authentication)" in message
    assert f"firecrest-server config convert {path} > firecrest-server.yaml" in message
    # One of ours with a stray FirecREST key is ours: its errors are listed as usual.
    path.write_text(
        "auth: {jwks_url: x, issuer: i, audience: a}\nlogger: {}\n"
        "systems: [{name: c, ssh: {host: h, known_hosts: /k,\n"
        "  credentials: {type: ca, ca_key: K}}}]\n"
    )
    with pytest.raises(ConfigError, match="logger: Extra inputs are not permitted"):
        load_settings(path)


def test_symmetric_and_none_algorithms_are_refused() -> None:
    data = _minimal()
    data["auth"]["algorithms"] = ["HS256", "none"]
    with pytest.raises(ConfigError, match=r"auth\.algorithms"):
        parse_settings(data)


def test_secret_from_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "ca"
    key_file.write_text("KEY-FROM-FILE")
    key_file.chmod(0o600)
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


def test_trusted_proxies_without_public_url_are_refused_naming_both_keys() -> None:
    data = _minimal()
    data["server"] = {"trusted_proxies": ["10.0.0.0/8"]}
    with pytest.raises(ConfigError, match=r"server\.trusted_proxies.*server\.public_url"):
        parse_settings(data)
    data["server"]["public_url"] = "https://api.example.org/"
    server = parse_settings(data).server
    assert server.public_url == "https://api.example.org"  # no trailing slash to double up
    assert [str(n) for n in server.trusted_proxies] == ["10.0.0.0/8"]


@pytest.mark.parametrize("entry", ["10.0.0.1/8", "proxy.example.org", "10.0.0.300", ""])
def test_trusted_proxies_must_be_addresses_or_exact_networks(entry: str) -> None:
    data = _minimal()
    data["server"] = {"public_url": "https://api.example.org", "trusted_proxies": [entry]}
    with pytest.raises(ConfigError, match=r"server\.trusted_proxies"):
        parse_settings(data)


@pytest.mark.parametrize(
    "url",
    ["api.example.org", "ftp://api.example.org", "https://", "https://h/?a=1", "https://u:p@h"],
)
def test_public_url_must_be_a_plain_http_url(url: str) -> None:
    data = _minimal()
    data["server"] = {"public_url": url}
    with pytest.raises(ConfigError, match=r"server\.public_url"):
        parse_settings(data)


def test_a_missing_public_url_is_a_warning() -> None:
    assert any("server.public_url" in w for w in parse_settings(_minimal()).warnings())
    data = _minimal()
    data["server"] = {"public_url": "https://api.example.org"}
    assert parse_settings(data).warnings() == []


@pytest.mark.parametrize("key", ["issuer", "audience"])
def test_issuer_and_audience_are_required(key: str) -> None:
    data = _minimal()
    del data["auth"][key]
    with pytest.raises(ConfigError, match=rf"auth: .*auth\.{key} is required .*verify_{key}"):
        parse_settings(data)


def test_issuer_and_audience_checks_can_be_switched_off_explicitly() -> None:
    data = _minimal()
    data["auth"] = {"jwks_url": "https://idp/jwks", "verify_issuer": False}
    data["auth"]["verify_audience"] = False
    auth = parse_settings(data).auth
    assert (auth.verify_issuer, auth.verify_audience) == (False, False)
    # Switched off and configured at once is ambiguous: refused.
    data["auth"]["issuer"] = "https://idp"
    with pytest.raises(ConfigError, match=r"auth\.issuer is set but auth\.verify_issuer"):
        parse_settings(data)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o620])
def test_ca_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    key_file = tmp_path / "user_ca"
    key_file.write_text("KEY")
    key_file.chmod(mode)
    data = _minimal()
    data["systems"][0]["ssh"]["credentials"]["ca_key"] = {"file": str(key_file)}
    with pytest.raises(
        ConfigError,
        match=rf"systems\.0\.ssh\.credentials\.ca\.ca_key: .*group or others .*{mode:04o}",
    ):
        parse_settings(data)
    key_file.chmod(0o400)
    assert parse_settings(data).systems[0].ssh.credentials.ca_key.get_secret_value() == "KEY"


def test_principal_policy_defaults_and_errors() -> None:
    policy = parse_settings(_minimal()).auth.principals
    assert (policy.uid_source, policy.min_uid, policy.unknown_users) == ("nss", 1000, "refuse")
    assert "root" in policy.deny_users
    data = _minimal()
    data["auth"]["principals"] = {"uid_source": "claim"}
    with pytest.raises(ConfigError, match=r"auth\.principals: .*uid_claim"):
        parse_settings(data)
    data["auth"]["principals"] = {"allow_users": ["root"], "deny_users": []}
    with pytest.raises(ConfigError, match=r"auth\.principals: .*root can never be allowed"):
        parse_settings(data)
    data["auth"]["principals"] = {"min_uid": 0}
    with pytest.raises(ConfigError, match=r"auth\.principals\.min_uid"):
        parse_settings(data)


def test_edge_limits_have_safe_defaults_and_named_errors() -> None:
    limits = parse_settings(_minimal()).server.limits
    assert limits.max_json_body == 1024 * 1024
    assert 0 < limits.header_timeout <= 30
    assert limits.max_connections > 0
    data = _minimal()
    data["server"] = {"limits": {"header_timeout": 0}}
    with pytest.raises(ConfigError, match=r"server\.limits\.header_timeout: "):
        parse_settings(data)
    data["server"] = {"limits": {"max_body": 5}}
    with pytest.raises(ConfigError, match=r"server\.limits\.max_body: "):
        parse_settings(data)


def test_replica_keys_drain_grace_and_shared_state() -> None:
    data = _minimal() | {
        "server": {"drain_seconds": 2, "shutdown_grace_seconds": 20},
        "state": {"redis_url": "redis://127.0.0.1:6390/0"},
    }
    settings = parse_settings(data)
    assert (settings.server.drain_seconds, settings.server.shutdown_grace_seconds) == (2, 20)
    assert settings.state.redis_url == "redis://127.0.0.1:6390/0"
    assert parse_settings(_minimal()).state.redis_url is None
    with pytest.raises(ConfigError, match=r"server\.drain_seconds: "):
        parse_settings(_minimal() | {"server": {"drain_seconds": -1}})
    with pytest.raises(ConfigError, match=r"state\.redis_uri"):
        parse_settings(_minimal() | {"state": {"redis_uri": "redis://x"}})


def test_extract_limits_have_safe_defaults_and_are_validated() -> None:
    limits = parse_settings(_minimal()).systems[0].data_operation
    assert limits.max_extract_bytes == 16 * 1024**3
    assert limits.max_extract_files == 250_000
    for key in ("max_extract_bytes", "max_extract_files"):
        with pytest.raises(ConfigError, match=rf"systems\.0\.data_operation\.{key}: "):
            parse_settings(_minimal(data_operation={key: 0}))


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


def test_connection_bounds_have_defaults_and_named_errors() -> None:
    ssh = parse_settings(_minimal()).systems[0].ssh
    assert ssh.max_connections == 1024
    assert ssh.max_concurrent_logins == 4
    for key in ("max_connections", "max_concurrent_logins"):
        data = _minimal()
        data["systems"][0]["ssh"][key] = 0
        with pytest.raises(ConfigError, match=rf"systems\.0\.ssh\.{key}: "):
            parse_settings(data)


def test_the_issuer_alone_is_enough_with_discovery() -> None:
    data = _minimal()
    del data["auth"]["jwks_url"]
    auth = parse_settings(data).auth
    assert (auth.discovers_jwks, auth.discovers_token_url) == (True, True)
    data["auth"]["token_url"] = "https://idp/token"
    assert parse_settings(data).auth.discovers_token_url is False
    data["auth"]["discovery"] = False
    with pytest.raises(
        ConfigError, match=r"auth: .*auth\.jwks_url, auth\.public_keys, or auth\.issuer"
    ):
        parse_settings(data)
    data["auth"]["discovery"] = "sometimes"
    with pytest.raises(ConfigError, match=r"auth\.discovery"):
        parse_settings(data)


def test_the_scheduler_defaults_to_ssh_and_rest_takes_firecrests_keys() -> None:
    assert parse_settings(_minimal()).systems[0].scheduler.connection_mode == "ssh"
    rest = {
        "connection_mode": "rest",
        "api_url": "http://slurmrestd:6820/",
        "api_version": "0.0.38",
        "timeout": 5,
    }
    scheduler = parse_settings(_minimal(scheduler=rest)).systems[0].scheduler
    assert (scheduler.api_url, scheduler.timeout) == ("http://slurmrestd:6820", 5)


@pytest.mark.parametrize(
    ("scheduler", "message"),
    [
        ({"connection_mode": "rest", "api_version": "0.0.38"}, "needs api_url"),
        ({"connection_mode": "rest", "api_url": "http://r:6820"}, "needs api_version"),
        (
            {"connection_mode": "rest", "api_url": "http://r", "api_version": "0.0.41"},
            "0.0.38",
        ),
        ({"connection_mode": "hybrid"}, "connection_mode"),
        ({"api_url": "ftp://r"}, "api_url"),
        ({"api_url": "http://user:pw@r"}, "api_url"),
    ],
)
def test_scheduler_errors_name_the_key(scheduler: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"systems\.0\.scheduler.*{message}"):
        parse_settings(_minimal(scheduler=scheduler))
