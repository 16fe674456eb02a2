"""The server's configuration: one YAML file, validated at start-up.

Every section is a pydantic model. Errors are reported with the dotted key path of the offending
value (``systems.0.ssh.port: ...``) so an operator can find it without reading a traceback.
Secrets can be given inline, or read from a file or an environment variable::

    ca_key: {file: /etc/firecrest/user_ca}
    client_secret: {env: F7T_CLIENT_SECRET}
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid; the message names the key path."""


class _Strict(BaseModel):
    # Unknown keys are errors: a misspelt key silently ignored is how a limit goes unenforced.
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretSource(_Strict):
    file: Path | None = None
    env: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretSource:
        if (self.file is None) == (self.env is None):
            raise ValueError("give exactly one of 'file' or 'env'")
        return self

    def read(self) -> str:
        if self.file is not None:
            try:
                return self.file.read_text()
            except OSError as exc:
                raise ValueError(f"cannot read secret file {self.file}: {exc.strerror}") from exc
        value = os.environ.get(self.env or "")
        if value is None:
            raise ValueError(f"environment variable {self.env} is not set")
        return value


def _resolve_secret(value: object) -> object:
    if isinstance(value, dict):
        return SecretSource.model_validate(value).read()
    return value


# A secret given inline, as {file: PATH} or as {env: NAME}; never printed (SecretStr).
Secret = Annotated[SecretStr, BeforeValidator(_resolve_secret)]


class AuthConfig(_Strict):
    """How bearer tokens are validated."""

    jwks_url: str | None = None
    public_keys: list[str] = []  # PEM public keys, an alternative or addition to jwks_url
    issuer: str | None = None
    audience: list[str] = []
    username_claim: str = "preferred_username"
    algorithms: list[str] = ["RS256"]
    # Reject tokens that expire sooner than this (seconds): a request that starts with a token
    # about to expire may outlive it on the cluster side.
    min_token_ttl: float = Field(default=0.0, ge=0)
    leeway: float = Field(default=30.0, ge=0)
    # Floor between two JWKS fetches triggered by unknown key ids, so a flood of forged tokens
    # cannot turn the server into a load generator against the identity provider.
    jwks_min_refresh_interval: float = Field(default=30.0, ge=1)
    jwks_cache_ttl: float = Field(default=3600.0, gt=0)
    jwks_timeout: float = Field(default=5.0, gt=0)
    token_url: str | None = None  # advertised in the OpenAPI security scheme

    @field_validator("audience", mode="before")
    @classmethod
    def _audience_list(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("algorithms")
    @classmethod
    def _no_symmetric_or_none(cls, value: list[str]) -> list[str]:
        allowed = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
        allowed.add("EdDSA")
        bad = [alg for alg in value if alg not in allowed]
        if bad:
            raise ValueError(f"unsupported or unsafe algorithms {bad}; allowed: {sorted(allowed)}")
        if not value:
            raise ValueError("at least one algorithm is required")
        return value

    @model_validator(mode="after")
    def _has_keys(self) -> AuthConfig:
        if not self.jwks_url and not self.public_keys:
            raise ValueError("give jwks_url or public_keys")
        return self


class CertificateAuthorityCredentials(_Strict):
    """Built-in CA: mint an ephemeral key and a short-lived certificate for each connection."""

    type: Literal["ca"]
    ca_key: Secret
    ca_key_passphrase: Secret | None = None
    validity: float = Field(default=300.0, gt=0, description="certificate lifetime, seconds")


class KeyServiceCredentials(_Strict):
    """External key service speaking FirecREST's SSHService protocol."""

    type: Literal["key_service"]
    url: str
    timeout: float = 5.0


class StaticKey(_Strict):
    private_key: Secret
    certificate: str | None = None
    passphrase: Secret | None = None


class StaticKeyCredentials(_Strict):
    """Static per-user keys. For development only: the server holds a long-lived key per user."""

    type: Literal["static_keys"]
    keys: dict[str, StaticKey]


Credentials = Annotated[
    CertificateAuthorityCredentials | KeyServiceCredentials | StaticKeyCredentials,
    Field(discriminator="type"),
]


class JumpHost(_Strict):
    host: str
    port: int = Field(default=22, ge=1, le=65535)


class SSHConfig(_Strict):
    host: str
    port: int = Field(default=22, ge=1, le=65535)
    known_hosts: Path
    proxy: JumpHost | None = None
    credentials: Credentials
    # Channels per connection, kept below sshd's MaxSessions; another connection is opened
    # for the same user when all are busy.
    # OpenSSH's default MaxSessions is 10: the default stays below it. Raise both together.
    max_channels_per_connection: int = Field(default=8, ge=1, le=1024)
    max_connections_per_user: int = Field(default=4, ge=1, le=64)
    connect_timeout: float = Field(default=10.0, gt=0)
    command_timeout: float = Field(default=30.0, gt=0)
    idle_timeout: float = Field(default=120.0, gt=0)
    keepalive_interval: float = Field(default=15.0, gt=0)
    max_output_bytes: int = Field(default=16 * 1024 * 1024, gt=0)


class FileSystem(_Strict):
    path: str
    data_type: Literal["users", "store", "archive", "apps", "scratch", "project"] = "users"
    default_work_dir: bool = False

    @field_validator("path")
    @classmethod
    def _absolute_normal(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be an absolute path")
        return posixpath.normpath(value)


class SchedulerConfig(_Strict):
    type: Literal["slurm"] = "slurm"
    version: str = "22.05"
    command_timeout: float = Field(default=30.0, gt=0)


class DataOperation(_Strict):
    max_ops_file_size: int = Field(default=5 * 1024 * 1024, ge=0)
    # Large-file transfers staged through this server (transferMethod "s3"): part size, how
    # long staging URLs stay valid, and how long an upload's transfer job waits for the parts.
    staging_part_size: int = Field(default=64 * 1024 * 1024, ge=1024 * 1024)
    staging_url_ttl: float = Field(default=24 * 3600, gt=0)
    staging_upload_timeout: float = Field(default=6 * 3600, gt=0)
    transfer_job_directives: list[str] = []


class SystemConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    ssh: SSHConfig
    scheduler: SchedulerConfig = SchedulerConfig()
    file_systems: list[FileSystem] = []
    data_operation: DataOperation = DataOperation()
    # None: every authenticated user may use the system. A list: only these usernames.
    allowed_users: list[str] | None = None
    probe_interval: float = Field(default=60.0, gt=0)
    # The login the health probes run as. None: the most recent user authorized on this system
    # (the server has no service account of its own); until someone has called, health is unknown.
    probe_user: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_.-]{0,31}$")

    @field_validator("name")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()  # FirecREST treats system names case-insensitively


class RateLimit(_Strict):
    requests_per_second: float = Field(default=50.0, gt=0)
    burst: int = Field(default=200, ge=1)
    max_concurrent_requests: int = Field(default=64, ge=1)


class StateConfig(_Strict):
    """Where replicas keep what they must agree on (rate limits, in-flight slots, CA serials,
    the staging URL key). Without ``redis_url`` each worker process keeps its own."""

    redis_url: str | None = None
    # Keys are namespaced so several deployments can share one Redis database.
    key_prefix: str = Field(default="firecrest", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    # Bound on one Redis command, seconds: past it the request goes on under per-worker limits.
    timeout: float = Field(default=0.5, gt=0, le=30)
    # An in-flight slot expires this long after its last renewal, so a worker that dies
    # mid-request frees its users' slots; live workers renew theirs every third of it.
    slot_lease: float = Field(default=30.0, ge=3, le=3600)
    # After a failed Redis command, how long to use per-worker limits before trying Redis again.
    retry_interval: float = Field(default=5.0, gt=0, le=300)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in ("redis", "rediss", "unix") or not rest:
            raise ValueError("must be redis://HOST:PORT/DB, rediss://... or unix://PATH")
        try:
            urlsplit(value).port  # noqa: B018 - raises on a port that is not a number
        except ValueError as exc:
            raise ValueError(f"invalid port: {exc}") from None
        return value


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=256)
    root_path: str = ""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # uvloop (with our batched accepting, event_loop.py): the most requests per second.
    # asyncio: Python's own loop, ~25 % fewer requests per second; for debugging, or where
    # uvloop cannot be installed. See docs/configuration.md.
    event_loop: Literal["asyncio", "uvloop"] = "uvloop"
    metrics: bool = True  # serve Prometheus metrics at /metrics (unauthenticated)
    # Base URL clients reach this server at, for the staging URLs it hands out (S3-style
    # large-file transfers). Default: the URL of the request that asked for them.
    public_url: str | None = None
    # HMAC key for staging URLs. Every replica behind one URL must share it; when unset, a
    # random key is made at start-up and shared by the workers of that one process.
    url_signing_key: Secret | None = None


class Settings(_Strict):
    server: ServerConfig = ServerConfig()
    auth: AuthConfig
    rate_limit: RateLimit = RateLimit()
    state: StateConfig = StateConfig()
    systems: list[SystemConfig] = Field(min_length=1)

    @field_validator("systems")
    @classmethod
    def _unique_names(cls, value: list[SystemConfig]) -> list[SystemConfig]:
        names = [system.name for system in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate system names: {duplicates}")
        return value

    def system(self, name: str) -> SystemConfig | None:
        name = name.lower()
        return next((s for s in self.systems if s.name == name), None)


def _format_validation_error(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        # Discriminator tags stay in the path ("credentials.ca.ca_key"): they say which
        # credential type was being validated.
        path = ".".join(str(part) for part in error["loc"]) or "(top level)"
        lines.append(f"{path}: {error['msg']}")
    return "\n".join(lines)


def parse_settings(data: object) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("invalid configuration:\n" + _format_validation_error(exc)) from None


def load_settings(path: str | os.PathLike[str]) -> Settings:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return parse_settings(data)
