"""`config convert`: a FirecREST v2 configuration translated into ours, and what is reported."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from firecrest_server import cli
from firecrest_server.config import ConfigError, parse_settings
from firecrest_server.upstream_config import ConvertOptions, convert, load_upstream

# Written for these tests from the keys of FirecREST v2's settings model (not copied).
EXAMPLE = Path(__file__).resolve().parents[2] / "data" / "firecrest-v2.yaml"


@pytest.fixture
def upstream() -> dict[str, Any]:
    return load_upstream(EXAMPLE)


def _minimal_upstream(**credentials: Any) -> dict[str, Any]:
    return {
        "auth": {
            "authentication": {
                "token_url": "https://idp/realms/r/protocol/openid-connect/token",
                "public_certs": ["https://idp/realms/r/protocol/openid-connect/certs"],
            }
        },
        "ssh_credentials": credentials or {"type": "SSHService", "url": "http://keys:5010"},
        "clusters": [
            {
                "name": "c",
                "ssh": {"host": "login", "port": 22},
                "scheduler": {"type": "slurm", "version": "24.05"},
                "service_account": {"client_id": "probe-client", "secret": "s"},
                "probing": {"interval": 60, "services": {"ssh": None}},
            }
        ],
    }


def test_example_keys_land_on_ours(upstream: dict[str, Any]) -> None:
    config = convert(upstream).config
    assert config["server"] == {"root_path": "/firecrest"}
    auth = config["auth"]
    assert auth["jwks_url"].endswith("/realms/hpc/protocol/openid-connect/certs")
    assert auth["issuer"] == "https://idp.example.org/auth/realms/hpc"  # from Keycloak's tokenUrl
    assert auth["token_url"].endswith("/openid-connect/token")
    assert (auth["algorithms"], auth["min_token_ttl"]) == (["RS256"], 60)
    # The PBS cluster is left out; names are lower-cased as FirecREST does.
    assert [s["name"] for s in config["systems"]] == ["eiger", "daint-rest"]
    eiger = config["systems"][0]
    assert eiger["ssh"]["proxy"] == {"host": "jump.example.org", "port": 2222}
    # connection + login bound one step here; the rest one to one.
    assert eiger["ssh"]["connect_timeout"] == 10
    assert (eiger["ssh"]["command_timeout"], eiger["ssh"]["idle_timeout"]) == (20, 60)
    assert eiger["ssh"]["keepalive_interval"] == 5
    assert eiger["ssh"]["credentials"] == {
        "type": "key_service",
        "url": "http://sshkeys.example.org:5010",
    }
    assert eiger["scheduler"] == {"type": "slurm", "version": "24.05.4", "command_timeout": 15}
    assert eiger["file_systems"][0] == {
        "path": "/users",
        "data_type": "users",
        "default_work_dir": True,
    }
    assert [fs["path"] for fs in eiger["file_systems"]] == ["/users", "/capstor/scratch", "/store"]
    assert eiger["data_operation"] == {
        "max_ops_file_size": 10485760,
        "transfer_job_directives": ["#SBATCH --partition=xfer", "#SBATCH --account={account}"],
        "staging_url_ttl": 604800,
        "staging_part_size": 1073741824,
    }
    assert eiger["probe_interval"] == 90  # the old name `interval`
    daint = config["systems"][1]
    assert daint["data_operation"] == {"max_ops_file_size": 5242880}
    assert daint["probe_interval"] == 120
    # No timeouts in the source: ours keep their defaults rather than FirecREST's 5 s.
    assert not [key for key in daint["ssh"] if key.endswith("_timeout")]


def test_each_untranslatable_part_is_a_warning(upstream: dict[str, Any]) -> None:
    warnings = convert(upstream).warnings
    text = "\n".join(warnings)
    for expected in (
        "auth.authorization: OpenFGA",
        "clusters.0 (Eiger).data_operation.data_transfer: the external S3 storage is not used",
        "clusters.1 (daint-rest).scheduler: connection_mode rest",
        "clusters.1 (daint-rest).data_operation.data_transfer: service_type wormhole",
        "clusters.2 (pbs-cluster): scheduler type pbs is not supported",
        "clusters.0 (Eiger).ssh: FirecREST v2 does not verify the login node's host key",
        "auth.audience: FirecREST v2 does not check",
        "auth.issuer: FirecREST v2 does not check a token's issuer",
        "clusters.0 (Eiger).ssh.max_clients",
        "clusters.0 (Eiger).probing: the probes here run as a login of the server's own",
        "logger: the tracing log has no counterpart",
        "doc_servers:",
    ):
        assert expected in text, expected
    # The S3 keys are named, their values (an access key, internal URLs) never shown.
    assert "access_key_id" in text
    assert "multipart.parallel_runs" in text
    for secret in ("EIGERACCESSKEY", "s3.internal.example.org", "inline-secret-value"):
        assert secret not in text


def test_round_trip_output_passes_check(
    upstream: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca_key = tmp_path / "user_ca"
    ca_key.write_text("KEY")
    ca_key.chmod(0o600)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    options = ConvertOptions(
        issuer="https://idp.example.org/auth/realms/hpc",
        audience=["firecrest-api"],
        known_hosts=str(known_hosts),
        ca_key=str(ca_key),
        probe_user="firecrest-probe",
    )
    conversion = convert(upstream, options)
    output = tmp_path / "ours.yaml"
    output.write_text(conversion.to_yaml(str(EXAMPLE)))
    assert cli.main(["--config", str(output), "--check"]) == 0
    assert "is valid (2 system(s))" in capsys.readouterr().out
    settings = parse_settings(yaml.safe_load(output.read_text()))
    assert settings.auth.audience == ["firecrest-api"]
    assert settings.systems[0].ssh.credentials.type == "ca"
    assert settings.systems[0].probe_user == "firecrest-probe"
    assert settings.systems[0].ssh.known_hosts == known_hosts
    # What the options answered is no longer warned about.
    text = "\n".join(conversion.warnings)
    for answered in ("auth.audience", "host key", "--probe-user"):
        assert answered not in text


def test_output_without_options_passes_check_and_keeps_upstream_trust(
    upstream: dict[str, Any],
) -> None:
    # key_service reads no file at start: the default output is valid as it is, and keeps
    # FirecREST's behaviour (no audience check) visibly, rather than inventing an audience.
    settings = parse_settings(convert(upstream).config)
    assert settings.auth.verify_audience is False
    assert settings.auth.issuer == "https://idp.example.org/auth/realms/hpc"
    assert str(settings.systems[0].ssh.known_hosts) == "/etc/firecrest/known_hosts"
    assert settings.systems[0].probe_user is None


def test_static_keys_read_secret_files_and_round_trip(tmp_path: Path) -> None:
    key = tmp_path / "alice.key"
    key.write_text("PRIVATE")
    upstream = _minimal_upstream(
        type="SSHStaticKeys",
        keys={
            "alice": {
                "privateKey": f"secret_file:{key}",
                "publicCert": "ssh-ed25519-cert-v01 AAAA",
            },
            "bob": {"private_key": "INLINE", "passphrase": "secret_file:/run/pass"},
        },
    )
    credentials = convert(upstream).config["systems"][0]["ssh"]["credentials"]
    assert credentials == {
        "type": "static_keys",
        "keys": {
            "alice": {
                "private_key": {"file": str(key)},
                "certificate": "ssh-ed25519-cert-v01 AAAA",
            },
            "bob": {"private_key": "INLINE", "passphrase": {"file": "/run/pass"}},
        },
    }
    del credentials["keys"]["bob"]  # its passphrase file does not exist here
    settings = parse_settings(convert_with(upstream, credentials))
    assert (
        settings.systems[0].ssh.credentials.keys["alice"].private_key.get_secret_value()
        == "PRIVATE"
    )


def convert_with(upstream: dict[str, Any], credentials: dict[str, Any]) -> dict[str, Any]:
    config = convert(upstream).config
    config["systems"][0]["ssh"]["credentials"] = credentials
    return config


def test_deic_sshca_becomes_the_built_in_ca_with_a_warning() -> None:
    conversion = convert(_minimal_upstream(type="SSHCA", url="https://sshca.example.org"))
    credentials = conversion.config["systems"][0]["ssh"]["credentials"]
    assert credentials == {"type": "ca", "ca_key": {"file": "/etc/firecrest/user_ca"}}
    assert any("SSHCA (https://sshca.example.org" in w for w in conversion.warnings)


def test_key_service_probe_token_from_the_service_account() -> None:
    upstream = _minimal_upstream()
    upstream["clusters"][0]["service_account"]["secret"] = "secret_file:/run/secrets/probe"
    conversion = convert(upstream, ConvertOptions(probe_user="firecrest-probe"))
    system = conversion.config["systems"][0]
    assert system["probe_user"] == "firecrest-probe"
    assert system["ssh"]["credentials"]["probe_token"] == {
        "token_url": "https://idp/realms/r/protocol/openid-connect/token",
        "client_id": "probe-client",
        "client_secret": {"file": "/run/secrets/probe"},
    }
    # FirecREST's default client_secret_basic is not how ours asks: said, naming the client.
    assert any("client_secret_post" in w and "probe-client" in w for w in conversion.warnings)
    upstream["auth"]["authentication"]["token_endpoint_auth_method"] = "client_secret_post"
    conversion = convert(upstream, ConvertOptions(probe_user="firecrest-probe"))
    assert not any("client_secret_post" in w for w in conversion.warnings)


def test_issuer_not_derivable_is_left_unchecked_with_a_warning() -> None:
    upstream = _minimal_upstream()
    upstream["auth"]["authentication"]["token_url"] = "https://login.example.org/oauth/token"
    conversion = convert(upstream)
    assert conversion.config["auth"]["verify_issuer"] is False
    assert "issuer" not in conversion.config["auth"]
    assert any("cannot be derived" in w for w in conversion.warnings)
    given = convert(upstream, ConvertOptions(issuer="https://login.example.org"))
    assert given.config["auth"]["issuer"] == "https://login.example.org"


def test_symmetric_jwk_algorithm_is_not_carried_over() -> None:
    upstream = _minimal_upstream()
    upstream["auth"]["authentication"]["jwkAlgorithm"] = "HS256"
    conversion = convert(upstream)
    assert "algorithms" not in conversion.config["auth"]
    assert any("jwk_algorithm: HS256 is not accepted" in w for w in conversion.warnings)


def test_unknown_keys_are_reported_with_their_path() -> None:
    upstream = _minimal_upstream()
    upstream["startup_grace_period"] = 10
    upstream["clusters"][0]["ssh"]["maxClient"] = 3
    upstream["clusters"][0]["data_operation"] = {"maxOpsFileSize": 1}  # snake_case only there
    warnings = convert(upstream).warnings
    assert any(w.startswith("startup_grace_period: not a FirecREST v2 key") for w in warnings)
    assert any(w.startswith("clusters.0.ssh.maxClient:") for w in warnings)
    assert any(w.startswith("clusters.0.data_operation.maxOpsFileSize:") for w in warnings)


def test_clusters_from_a_directory(tmp_path: Path) -> None:
    upstream = _minimal_upstream()
    (tmp_path / "clusters").mkdir()
    for name in ("b", "a"):
        cluster = copy.deepcopy(upstream["clusters"][0]) | {"name": name}
        (tmp_path / "clusters" / f"{name}.yaml").write_text(yaml.safe_dump(cluster))
    upstream["clusters"] = "path:clusters"  # relative to the file's own directory
    (tmp_path / "f7t.yaml").write_text(yaml.safe_dump(upstream))
    config = convert(load_upstream(tmp_path / "f7t.yaml")).config
    assert [s["name"] for s in config["systems"]] == ["a", "b"]
    upstream["clusters"] = "path:missing"
    (tmp_path / "f7t.yaml").write_text(yaml.safe_dump(upstream))
    with pytest.raises(ConfigError, match="is not a directory"):
        load_upstream(tmp_path / "f7t.yaml")


def test_invalid_upstream_and_our_own_config_are_refused() -> None:
    upstream = _minimal_upstream()
    del upstream["clusters"][0]["ssh"]["host"]
    with pytest.raises(ConfigError, match=r"clusters\.0\.ssh\.host: Field required"):
        convert(upstream)
    ours = {"auth": {"jwks_url": "x"}, "systems": []}
    with pytest.raises(ConfigError, match="already a firecrest-server configuration"):
        convert(ours)


def test_cli_convert_prints_yaml_and_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["config", "convert", str(EXAMPLE), "--audience", "api"]) == 0
    captured = capsys.readouterr()
    assert yaml.safe_load(captured.out)["auth"]["audience"] == ["api"]
    assert "firecrest-server: warning: auth.authorization: OpenFGA" in captured.err
    assert "2 system(s)" in captured.err
    output = tmp_path / "ours.yaml"
    assert cli.main(["config", "convert", str(EXAMPLE), "-o", str(output)]) == 0
    assert output.stat().st_mode & 0o777 == 0o600
    # The serving form parses as before, options in either order.
    assert cli.main(["--check", "--config", str(output)]) == 0
    assert cli.main(["config", "convert", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert cli.main(["config", "frobnicate"]) == 2


def test_serving_a_firecrest_v2_file_points_at_convert(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--config", str(EXAMPLE), "--check"]) == 2
    error = capsys.readouterr().err
    assert "is a FirecREST v2 configuration (it has clusters, ssh_credentials" in error
    assert f"firecrest-server config convert {EXAMPLE}" in error
    # Not a wall of unknown-key errors.
    assert "Extra inputs" not in error
