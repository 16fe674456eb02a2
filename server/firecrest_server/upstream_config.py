"""`firecrest-server config convert`: translate a FirecREST v2 configuration into ours.

FirecREST v2 reads one YAML file into its pydantic settings (`Settings` in its
`src/firecrest/config.py`). The models below describe the keys that file may have, as
leniently as FirecREST reads them (camelCase or snake_case, unknown keys ignored), so that a
file FirecREST accepts is read here too. `convert` then maps each key to ours, and everything
that has no counterpart here (OpenFGA, an external S3, PBS, slurmrestd, DeiC's SSH CA, ...)
becomes a warning that says what was dropped and what to do instead. A warning never stops the
conversion: the operator reads them and edits the output, which `firecrest-server --config OUT
--check` then validates.

What FirecREST never needed but we require (host-key verification, the token's issuer and
audience, the probes' login) comes from command-line options; without them the output says
what it assumed, and a warning says so.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from .config import ConfigError, FileSystem, format_validation_error

# FirecREST's secret syntax: the value is read from this file.
SECRET_FILE_PREFIX = "secret_file:"  # noqa: S105 (a syntax, not a secret)
# The `clusters` value that loads one cluster per *.yaml file of a directory.
CLUSTERS_DIR_PREFIX = "path:"
# Keycloak's token endpoint; its issuer is the part before it.
KEYCLOAK_TOKEN_SUFFIX = "/protocol/openid-connect/token"  # noqa: S105 (a URL path)
# What --check needs when no option says otherwise (the files must then be created there).
DEFAULT_KNOWN_HOSTS = "/etc/firecrest/known_hosts"
DEFAULT_CA_KEY = "/etc/firecrest/user_ca"
# Our allow-list (config.AuthConfig): a jwk_algorithm outside it cannot be carried over.
ASYMMETRIC_ALGORITHMS = {
    *(f"{family}{bits}" for family in ("RS", "PS", "ES") for bits in (256, 384, 512)),
    "EdDSA",
}


class _SnakeCase(BaseModel):
    # FirecREST ignores unknown keys; they are kept here (model_extra) so that each is reported.
    model_config = ConfigDict(extra="allow")


class _Upstream(_SnakeCase):
    # Most of FirecREST's models (its CamelModel) take camelCase or snake_case.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class Oidc(_Upstream):
    token_url: str
    # How the service account's secret is sent to the token endpoint (names, not secrets).
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post"] = (
        "client_secret_basic"  # noqa: S105
    )
    public_certs: list[str] = []
    username_claim: str = "preferred_username"
    jwk_algorithm: str | None = None
    min_token_ttl: int = Field(default=30, ge=0)
    scopes: dict[str, Any] | None = None


class OpenFga(_Upstream):
    url: str


class Auth(_Upstream):
    authentication: Oidc
    authorization: OpenFga | None = None


class SshCredentials(_Upstream):
    """`ssh_credentials`: one of SSHService, SSHCA (DeiC's) or SSHStaticKeys, by `type`."""

    type: Literal["SSHService", "SSHCA", "SSHStaticKeys"]
    url: str | None = None
    max_connections: int | None = None
    keys: dict[str, dict[str, Any]] = {}


class SshTimeouts(_Upstream):
    connection: int = 5
    login: int = 5
    command_execution: int = 5
    idle_timeout: int = 60
    keep_alive: int = 5


class SshPool(_Upstream):
    host: str
    port: int
    proxy_host: str | None = None
    proxy_port: int | None = None
    max_clients: int | None = None
    timeout: SshTimeouts | None = None


class Scheduler(_Upstream):
    type: Literal["slurm", "pbs"]
    connection_mode: Literal["ssh", "rest", "hybrid"] = "ssh"
    version: str
    api_url: str | None = None
    api_version: str | None = None
    timeout: int | None = None


class ServiceAccount(_Upstream):
    client_id: str
    secret: str


class ProbingService(_Upstream):
    timeout: int | None = None


class Probing(_Upstream):
    # FirecREST still reads the old name `interval`.
    interval_check: int = Field(
        default=120, validation_alias=AliasChoices("interval_check", "intervalCheck", "interval")
    )
    services: dict[str, ProbingService | None] | None = None


class Multipart(_SnakeCase):
    max_part_size: int | None = None


class DataTransfer(_Upstream):
    """`data_transfer`: s3, wormhole or streamer, by `service_type`."""

    service_type: Literal["s3", "wormhole", "streamer"]
    ttl: int | None = None
    multipart: Multipart | None = None


class DataOperation(_SnakeCase):
    max_ops_file_size: int | None = None
    datatransfer_jobs_directives: list[str] = []
    data_transfer: DataTransfer | None = None


class Cluster(_Upstream):
    name: str
    ssh: SshPool
    scheduler: Scheduler
    service_account: ServiceAccount
    probing: Probing
    file_systems: list[dict[str, Any]] = []
    data_operation: DataOperation = DataOperation()
    # Written by FirecREST's health checker at run time; meaningless in a file.
    services_health: Any = Field(
        default=None, validation_alias=AliasChoices("servicesHealth", "services_health")
    )
    last_health_check: Any = None


class Logger(_Upstream):
    enable_tracing_log: bool = False
    loggable_request_headers: list[dict[str, Any]] | None = None


class UpstreamSettings(_SnakeCase):
    """A whole FirecREST v2 configuration file (its top level is snake_case only)."""

    app_debug: bool = False
    app_version: str | None = None
    apis_root_path: str = ""
    doc_servers: list[dict[str, Any]] | None = None
    auth: Auth
    ssh_credentials: SshCredentials
    clusters: list[Cluster] = []
    logger: Logger = Logger()


@dataclass(frozen=True)
class ConvertOptions:
    """What FirecREST v2 never asked for and we need; None: assume, and warn."""

    issuer: str | None = None
    audience: list[str] = field(default_factory=list)
    known_hosts: str | None = None
    ca_key: str | None = None  # use the built-in CA with this key, whatever ssh_credentials says
    probe_user: str | None = None


@dataclass
class Conversion:
    config: dict[str, Any]
    warnings: list[str]

    def to_yaml(self, source: str) -> str:
        header = (
            f"# Translated from the FirecREST v2 configuration {source}\n"
            "# by `firecrest-server config convert`; check it with `firecrest-server --config "
            "FILE --check`.\n"
        )
        return header + yaml.safe_dump(self.config, sort_keys=False, default_flow_style=False)


def load_upstream(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a FirecREST v2 file, with `clusters: "path:DIR"` expanded to DIR's *.yaml files."""
    data = _read_yaml(Path(path))
    clusters = data.get("clusters")
    if isinstance(clusters, str) and clusters.startswith(CLUSTERS_DIR_PREFIX):
        directory = Path(clusters[len(CLUSTERS_DIR_PREFIX) :]).expanduser()
        if not directory.is_absolute():
            # FirecREST resolves it against its working directory; the file's own directory is
            # what an operator converting a copy of the deployment means.
            directory = Path(path).parent / directory
        if not directory.is_dir():
            raise ConfigError(f"{path}: clusters: {directory} is not a directory")
        data["clusters"] = [_read_yaml(file) for file in sorted(directory.glob("*.yaml"))]
    return data


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def _secret(value: str) -> str | dict[str, str]:
    # "secret_file:/p" is FirecREST's file reference; ours is {file: /p}.
    if value.startswith(SECRET_FILE_PREFIX):
        return {"file": str(Path(value[len(SECRET_FILE_PREFIX) :]).expanduser())}
    return value


def _extra(model: BaseModel, where: str) -> list[str]:
    return [
        f"{where}{key}: not a FirecREST v2 key (FirecREST ignores it); dropped"
        for key in sorted(model.model_extra or {})
    ]


class _Converter:
    def __init__(self, upstream: UpstreamSettings, options: ConvertOptions) -> None:
        self.upstream = upstream
        self.options = options
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def run(self) -> dict[str, Any]:
        config: dict[str, Any] = {}
        server = self._server()
        if server:
            config["server"] = server
        config["auth"] = self._auth()
        systems = [
            system
            for index, cluster in enumerate(self.upstream.clusters)
            if (system := self._system(index, cluster)) is not None
        ]
        if not systems:
            self.warn("no cluster could be translated: the output has no systems and is invalid")
        config["systems"] = systems
        self._logger()
        self.warnings[:0] = _extra(self.upstream, "")
        return config

    def _server(self) -> dict[str, Any]:
        up = self.upstream
        server: dict[str, Any] = {}
        if up.apis_root_path:
            server["root_path"] = up.apis_root_path
        if up.app_debug:
            self.warn(
                "app_debug: FastAPI's debug mode has no counterpart (error bodies never carry "
                "tracebacks here); server.log_level: debug logs more"
            )
        if up.doc_servers:
            self.warn("doc_servers: the OpenAPI document lists no extra servers here; dropped")
        return server

    def _auth(self) -> dict[str, Any]:
        oidc = self.upstream.auth.authentication
        self.warnings += _extra(self.upstream.auth, "auth.")
        self.warnings += _extra(oidc, "auth.authentication.")
        auth: dict[str, Any] = {}
        if oidc.public_certs:
            auth["jwks_url"] = oidc.public_certs[0]
            if len(oidc.public_certs) > 1:
                self.warn(
                    f"auth.authentication.public_certs: only the first JWKS URL is used "
                    f"({oidc.public_certs[0]}); add the keys of {oidc.public_certs[1:]} as PEM "
                    "under auth.public_keys"
                )
        else:
            self.warn(
                "auth.authentication.public_certs is empty: no key to verify tokens with; "
                "set auth.jwks_url"
            )
        auth.update(self._issuer(oidc.token_url))
        if self.options.audience:
            auth["audience"] = list(self.options.audience)
        else:
            auth["verify_audience"] = False
            self.warn(
                "auth.audience: FirecREST v2 does not check a token's audience, so any token "
                "the provider issued to any application is accepted; the output keeps that "
                "(verify_audience: false). Give --audience (the `aud` of tokens meant for this "
                "API) to check it"
            )
        if oidc.username_claim != "preferred_username":
            auth["username_claim"] = oidc.username_claim
        if oidc.jwk_algorithm is not None:
            if oidc.jwk_algorithm in ASYMMETRIC_ALGORITHMS:
                auth["algorithms"] = [oidc.jwk_algorithm]
            else:
                self.warn(
                    f"auth.authentication.jwk_algorithm: {oidc.jwk_algorithm} is not accepted "
                    f"here (asymmetric algorithms only: {sorted(ASYMMETRIC_ALGORITHMS)}); "
                    "the default RS256 is used"
                )
        # FirecREST's default is 30 s, ours 0: keep what the deployment had.
        auth["min_token_ttl"] = oidc.min_token_ttl
        auth["token_url"] = oidc.token_url
        if oidc.scopes:
            self.warn("auth.authentication.scopes: only shown in FirecREST's OpenAPI page; dropped")
        if self.upstream.auth.authorization is not None:
            self.warn(
                f"auth.authorization: OpenFGA ({self.upstream.auth.authorization.url}) is not "
                "supported; every authenticated user may use every system. Restrict a system "
                "with systems[].allowed_users, and see auth.principals"
            )
        return auth

    def _issuer(self, token_url: str) -> dict[str, Any]:
        if self.options.issuer:
            return {"issuer": self.options.issuer}
        if token_url.endswith(KEYCLOAK_TOKEN_SUFFIX):
            issuer = token_url[: -len(KEYCLOAK_TOKEN_SUFFIX)]
            self.warn(
                f"auth.issuer: FirecREST v2 does not check a token's issuer; {issuer} was "
                "derived from tokenUrl (Keycloak's layout): check it equals the `iss` of your "
                "tokens, or give --issuer"
            )
            return {"issuer": issuer}
        self.warn(
            "auth.issuer: FirecREST v2 does not check a token's issuer and it cannot be derived "
            "from tokenUrl; the output keeps that (verify_issuer: false). Give --issuer"
        )
        return {"verify_issuer": False}

    def _credentials(self, cluster: Cluster, where: str) -> dict[str, Any] | None:
        if self.options.ca_key:
            return {"type": "ca", "ca_key": {"file": self.options.ca_key}}
        upstream = self.upstream.ssh_credentials
        if upstream.type == "SSHService":
            credentials: dict[str, Any] = {"type": "key_service", "url": upstream.url}
            probe_user = self.options.probe_user
            if probe_user:
                account = cluster.service_account
                credentials["probe_token"] = {
                    "token_url": self.upstream.auth.authentication.token_url,
                    "client_id": account.client_id,
                    "client_secret": _secret(account.secret),
                }
                method = self.upstream.auth.authentication.token_endpoint_auth_method
                if method == "client_secret_basic":
                    self.warn(
                        f"{where}.service_account: the probe token is asked for with "
                        "client_secret_post (the secret in the form), FirecREST used "
                        "client_secret_basic: allow it for client "
                        f"{account.client_id} at the identity provider"
                    )
            return credentials
        if upstream.type == "SSHCA":
            self.warn(
                f"ssh_credentials: SSHCA ({upstream.url}, DeiC's SSH CA service) is not "
                f"supported; {where} uses the built-in CA with the key {DEFAULT_CA_KEY} "
                "instead (make a CA key, put its public half in the login nodes' "
                "TrustedUserCAKeys), or give --ca-key"
            )
            return {"type": "ca", "ca_key": {"file": DEFAULT_CA_KEY}}
        keys = {}
        for user, key in upstream.keys.items():
            ours: dict[str, Any] = {}
            for theirs, mine in (
                ("private_key", "private_key"),
                ("privateKey", "private_key"),
                ("public_cert", "certificate"),
                ("publicCert", "certificate"),
                ("passphrase", "passphrase"),
            ):
                if key.get(theirs) is not None:
                    ours[mine] = _secret(key[theirs]) if mine != "certificate" else key[theirs]
            keys[user] = ours
        return {"type": "static_keys", "keys": keys}

    def _system(self, index: int, cluster: Cluster) -> dict[str, Any] | None:
        where = f"clusters.{index} ({cluster.name})"
        for model, path in (
            (cluster, ""),
            (cluster.ssh, "ssh."),
            (cluster.scheduler, "scheduler."),
            (cluster.probing, "probing."),
            (cluster.data_operation, "data_operation."),
        ):
            self.warnings += _extra(model, f"clusters.{index}.{path}")
        scheduler = cluster.scheduler
        if scheduler.type == "pbs":
            self.warn(
                f"{where}: scheduler type pbs is not supported (Slurm only); cluster left out"
            )
            return None
        credentials = self._credentials(cluster, where)
        system: dict[str, Any] = {"name": cluster.name.lower(), "ssh": self._ssh(cluster, where)}
        system["ssh"]["credentials"] = credentials
        system["scheduler"] = {"type": "slurm", "version": scheduler.version}
        if scheduler.timeout is not None:
            system["scheduler"]["command_timeout"] = scheduler.timeout
        if scheduler.connection_mode != "ssh":
            self.warn(
                f"{where}.scheduler: connection_mode {scheduler.connection_mode} (slurmrestd at "
                f"{scheduler.api_url}) is not supported; Slurm's commands are run over SSH"
            )
        file_systems = self._file_systems(cluster, where)
        if file_systems:
            system["file_systems"] = file_systems
        data_operation = self._data_operation(cluster.data_operation, where)
        if data_operation:
            system["data_operation"] = data_operation
        system["probe_interval"] = cluster.probing.interval_check
        self._probing(cluster, where, system)
        return system

    def _ssh(self, cluster: Cluster, where: str) -> dict[str, Any]:
        pool = cluster.ssh
        known_hosts = self.options.known_hosts
        if known_hosts is None:
            known_hosts = DEFAULT_KNOWN_HOSTS
            self.warn(
                f"{where}.ssh: FirecREST v2 does not verify the login node's host key; this "
                f"server does: put {pool.host}'s keys (checked out of band, e.g. ssh-keyscan "
                f"-p {pool.port} {pool.host}) in {known_hosts}, or give --known-hosts"
            )
        ssh: dict[str, Any] = {"host": pool.host, "port": pool.port, "known_hosts": known_hosts}
        if pool.proxy_host:
            ssh["proxy"] = {"host": pool.proxy_host, "port": pool.proxy_port or 22}
        if pool.max_clients is not None:
            self.warn(
                f"{where}.ssh.max_clients: no cap on the number of users here; each user has "
                "their own bound (ssh.max_connections_per_user, max_channels_per_connection)"
            )
        timeouts = pool.timeout
        if timeouts is not None:
            given = timeouts.model_fields_set
            # FirecREST bounds the TCP connection and the login apart; ours bounds both as one.
            if {"connection", "login"} & given:
                ssh["connect_timeout"] = timeouts.connection + timeouts.login
            if "command_execution" in given:
                ssh["command_timeout"] = timeouts.command_execution
            if "idle_timeout" in given:
                ssh["idle_timeout"] = timeouts.idle_timeout
            if "keep_alive" in given:
                ssh["keepalive_interval"] = timeouts.keep_alive
        return ssh

    def _file_systems(self, cluster: Cluster, where: str) -> list[dict[str, Any]]:
        file_systems = []
        for number, theirs in enumerate(cluster.file_systems):
            ours = {
                "path": theirs.get("path"),
                "data_type": theirs.get("data_type", theirs.get("dataType")),
            }
            if theirs.get("default_work_dir", theirs.get("defaultWorkDir")):
                ours["default_work_dir"] = True
            if isinstance(ours["path"], str):
                ours["path"] = posixpath.normpath(ours["path"])
            known = set(FileSystem.model_fields) | {"dataType", "defaultWorkDir"}
            for key in sorted(set(theirs) - known):
                self.warn(f"{where}.file_systems.{number}.{key}: unknown key; dropped")
            file_systems.append(ours)
        if file_systems and not any(fs.get("default_work_dir") for fs in file_systems):
            self.warn(
                f"{where}.file_systems: none is default_work_dir; transfer jobs run in the "
                "user's home"
            )
        return file_systems

    def _data_operation(self, theirs: DataOperation, where: str) -> dict[str, Any]:
        ours: dict[str, Any] = {}
        if theirs.max_ops_file_size is not None:
            ours["max_ops_file_size"] = theirs.max_ops_file_size
        if theirs.datatransfer_jobs_directives:
            # The same `{account}` placeholder is filled in here (transfer_jobs.py).
            ours["transfer_job_directives"] = list(theirs.datatransfer_jobs_directives)
        transfer = theirs.data_transfer
        if transfer is None:
            return ours
        if transfer.service_type == "s3":
            if transfer.ttl is not None:
                ours["staging_url_ttl"] = transfer.ttl
            if transfer.multipart is not None and transfer.multipart.max_part_size is not None:
                ours["staging_part_size"] = transfer.multipart.max_part_size
            # Key names only: their values (access keys, URLs) are secrets or meaningless here.
            dropped = sorted(transfer.model_extra or {})
            if transfer.multipart is not None:
                dropped += [
                    f"multipart.{key}" for key in sorted(transfer.multipart.model_extra or {})
                ]
            self.warn(
                f"{where}.data_operation.data_transfer: the external S3 storage is not used; "
                "large transfers are staged through this server itself (its own S3-style "
                "URLs, pointing at server.public_url); ttl and multipart.max_part_size are "
                f"carried over, dropped: {', '.join(dropped) or 'nothing else'}"
            )
        else:
            self.warn(
                f"{where}.data_operation.data_transfer: service_type {transfer.service_type} is "
                "not supported; large transfers use transferMethod s3, staged through this "
                "server (clients that ask for another method get 400)"
            )
        return ours

    def _probing(self, cluster: Cluster, where: str, system: dict[str, Any]) -> None:
        services = cluster.probing.services
        if not services:
            self.warn(
                f"{where}.probing: no services are probed in FirecREST; here without probe_user "
                "nothing is probed either"
            )
            return
        timed = sorted(name for name, s in services.items() if s is not None and s.timeout)
        if timed:
            self.warn(
                f"{where}.probing.services: per-probe timeouts ({', '.join(timed)}) are not "
                "configurable; probes use the ssh and scheduler timeouts"
            )
        if {"s3", "storage"} & set(services):
            self.warn(f"{where}.probing.services.s3: there is no external storage to probe")
        if self.options.probe_user:
            system["probe_user"] = self.options.probe_user
        else:
            self.warn(
                f"{where}.probing: the probes here run as a login of the server's own, "
                f"not as service account {cluster.service_account.client_id}'s token; give "
                "--probe-user (see docs/configuration.md, Probe identity), until then the "
                "system is not probed"
            )

    def _logger(self) -> None:
        logger = self.upstream.logger
        if logger.enable_tracing_log or logger.loggable_request_headers:
            self.warn(
                "logger: the tracing log has no counterpart; every request is logged as a JSON "
                "line with its request id, and every remote command in the audit log"
            )


def convert(data: dict[str, Any], options: ConvertOptions | None = None) -> Conversion:
    """Translate the FirecREST v2 configuration ``data``; ConfigError if it is not one."""
    if "systems" in data and "clusters" not in data:
        raise ConfigError("this is already a firecrest-server configuration (it has systems)")
    try:
        upstream = UpstreamSettings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            "not a valid FirecREST v2 configuration:\n" + format_validation_error(exc)
        ) from None
    converter = _Converter(upstream, options or ConvertOptions())
    config = converter.run()
    return Conversion(config=config, warnings=converter.warnings)
