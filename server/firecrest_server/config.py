"""The server's configuration: one YAML file, validated at start-up.

Every section is a pydantic model. Errors are reported with the dotted key path of the offending
value (``systems.0.ssh.port: ...``) so an operator can find it without reading a traceback.
Secrets can be given inline, or read from a file or an environment variable::

    ca_key: {file: /etc/firecrest/user_ca}
    client_secret: {env: F7T_CLIENT_SECRET}
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import posixpath
import shlex
import types
import typing
import urllib.parse
from pathlib import Path
from typing import Annotated, Literal, TypeGuard

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


def _resolve_private_secret(value: object) -> object:
    # Whoever can read the SSH CA key can log in as any user of the cluster: a file that the
    # group or others may read is refused at start-up, not warned about.
    if isinstance(value, dict):
        source = SecretSource.model_validate(value)
        if source.file is not None:
            try:
                mode = source.file.stat().st_mode
            except OSError as exc:
                raise ValueError(f"cannot read secret file {source.file}: {exc.strerror}") from None
            if mode & 0o077:
                raise ValueError(
                    f"{source.file} is readable or writable by group or others "
                    f"(mode {mode & 0o777:04o}); make it 0600 or 0400"
                )
        return source.read()
    return value


# A secret that must be private to the server's account when read from a file (the CA key).
PrivateSecret = Annotated[SecretStr, BeforeValidator(_resolve_private_secret)]


class PrincipalPolicyConfig(_Strict):
    """Which token and staging-grant usernames the server acts as (auth/principals.py).

    The health probes' operator-configured login is not subject to it.
    """

    # Where a login's uid comes from, without SSH: "nss" asks this host's name service
    # (getpwnam; at a centre the API host uses the cluster's LDAP), "claim" reads `uid_claim`
    # from the validated token (staging grants carry the uid seen when they were issued).
    uid_source: Literal["nss", "claim"] = "nss"
    uid_claim: str | None = None
    # Logins with a lower uid are system accounts and are refused.
    min_uid: int = Field(default=1000, ge=1)
    # Refused whatever their uid ("nobody" has uid 65534 on Debian).
    deny_users: list[str] = ["root", "nobody", "nfsnobody"]
    # Served even though their uid is below min_uid (never uid 0, never a denied name).
    allow_users: list[str] = []
    # A login whose uid the source does not know: "refuse" (403), or "allow" (then sshd on the
    # login node is the only check left; only for sites whose API host cannot see the users).
    unknown_users: Literal["refuse", "allow"] = "refuse"
    # Seconds a decision is remembered, so a name-service lookup is not made per request.
    cache_ttl: float = Field(default=300.0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> PrincipalPolicyConfig:
        if self.uid_source == "claim" and not self.uid_claim:
            raise ValueError("uid_source 'claim' needs uid_claim")
        both = sorted(set(self.allow_users) & set(self.deny_users))
        if both:
            raise ValueError(f"users both allowed and denied: {both}")
        if "root" in self.allow_users:
            raise ValueError("root can never be allowed")
        return self


class AuthConfig(_Strict):
    """How bearer tokens are validated."""

    jwks_url: str | None = None
    public_keys: list[str] = []  # PEM public keys, an alternative or addition to jwks_url
    issuer: str | None = None
    audience: list[str] = []
    # Both are checked unless switched off here explicitly (a warning is logged at start-up):
    # without them, a token the same provider issued to any other application is accepted.
    verify_issuer: bool = True
    verify_audience: bool = True
    principals: PrincipalPolicyConfig = PrincipalPolicyConfig()
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
    # The token endpoint Swagger UI's "Authorize" uses (OpenAPI OAuth2 client-credentials
    # flow); unset: the discovery document's token_endpoint.
    token_url: str | None = None
    # Fetch <issuer>/.well-known/openid-configuration for what is not configured: the JWKS
    # (when neither jwks_url nor public_keys is given) and token_url.
    discovery: bool = True

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

    @property
    def discovers_jwks(self) -> bool:
        return self.discovery and bool(self.issuer) and not self.jwks_url and not self.public_keys

    @property
    def discovers_token_url(self) -> bool:
        return self.discovery and bool(self.issuer) and not self.token_url

    @model_validator(mode="after")
    def _has_keys(self) -> AuthConfig:
        if not self.jwks_url and not self.public_keys and not self.discovers_jwks:
            raise ValueError(
                "give auth.jwks_url, auth.public_keys, or auth.issuer with auth.discovery "
                "(the JWKS is then found by OIDC discovery)"
            )
        if self.verify_issuer and not self.issuer:
            raise ValueError("auth.issuer is required (or set auth.verify_issuer: false)")
        if not self.verify_issuer and self.issuer:
            raise ValueError("auth.issuer is set but auth.verify_issuer is false; drop one")
        if self.verify_audience and not self.audience:
            raise ValueError("auth.audience is required (or set auth.verify_audience: false)")
        if not self.verify_audience and self.audience:
            raise ValueError("auth.audience is set but auth.verify_audience is false; drop one")
        return self


class CertificateAuthorityCredentials(_Strict):
    """Built-in CA: mint an ephemeral key and a short-lived certificate for each connection."""

    type: Literal["ca"]
    ca_key: PrivateSecret
    ca_key_passphrase: Secret | None = None
    validity: float = Field(default=300.0, gt=0, description="certificate lifetime, seconds")


class ServiceAccountToken(_Strict):
    """An OAuth2 client-credentials grant for the server's own login (the probe user)."""

    token_url: str
    client_id: str
    client_secret: Secret
    scope: str | None = None
    timeout: float = Field(default=10.0, gt=0)


class KeyServiceCredentials(_Strict):
    """External key service speaking FirecREST's SSHService protocol."""

    type: Literal["key_service"]
    url: str
    timeout: float = 5.0
    # Staging URLs carry a key issued for them (sealed, staging/sealing.py), because their
    # requests bring no bearer token to ask the key service with. The key is asked for this
    # long, and a URL expires with its key: a leaked URL is worth nothing after it.
    staging_key_duration: float = Field(default=600.0, ge=60, le=7 * 24 * 3600)
    # The key service wants a bearer token of the user it issues a key for, and the health
    # probes run outside any request: a token of the probe user's own service account.
    probe_token: ServiceAccountToken | None = None


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
    # Every user costs a connection (and an sshd process on the login node) while they are
    # active: cap them per worker; at the cap, the least recently used idle connection of any
    # user is closed to make room (docs/deployment.md#sizing has the memory per connection).
    max_connections: int = Field(default=1024, ge=1, le=100_000)
    # SSH logins in progress per worker: sshd drops unauthenticated connections beyond
    # MaxStartups (OpenSSH's default starts at 10), so workers x replicas x this stays below it.
    max_concurrent_logins: int = Field(default=4, ge=1, le=1024)
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


# The slurmrestd OpenAPI versions whose JSON this server maps (rest mode).
SLURMRESTD_API_VERSIONS = ("0.0.38",)


class SchedulerConfig(_Strict):
    """Keys named as in FirecREST v2's ``scheduler`` section, so a centre's settings carry
    over: ``connection_mode`` ssh (Slurm commands over the caller's SSH) or rest (slurmrestd at
    ``api_url``, with the caller's own token); ``timeout`` bounds one slurmrestd request."""

    type: Literal["slurm"] = "slurm"
    version: str = "22.05"
    command_timeout: float = Field(default=30.0, gt=0)
    connection_mode: Literal["ssh", "rest"] = "ssh"
    api_url: str | None = None
    api_version: str | None = None
    timeout: float = Field(default=10.0, gt=0)

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parsed = urllib.parse.urlsplit(value)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError("must be an http:// or https:// URL")
        if parsed.query or parsed.fragment or parsed.username or parsed.password:
            raise ValueError("must not carry credentials, a query or a fragment")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _rest_needs_url(self) -> SchedulerConfig:
        if self.connection_mode == "rest":
            if self.api_url is None:
                raise ValueError("connection_mode 'rest' needs api_url (slurmrestd's URL)")
            if self.api_version not in SLURMRESTD_API_VERSIONS:
                raise ValueError(
                    f"connection_mode 'rest' needs api_version, one of "
                    f"{', '.join(SLURMRESTD_API_VERSIONS)} (got {self.api_version!r})"
                )
        return self


class DataOperation(_Strict):
    max_ops_file_size: int = Field(default=5 * 1024 * 1024, ge=0)
    # Large-file transfers staged through this server (transferMethod "s3"): part size, how
    # long staging URLs stay valid, and how long an upload's transfer job waits for the parts.
    staging_part_size: int = Field(default=64 * 1024 * 1024, ge=1024 * 1024)
    staging_url_ttl: float = Field(default=24 * 3600, gt=0)
    staging_upload_timeout: float = Field(default=6 * 3600, gt=0)
    transfer_job_directives: list[str] = []
    # What one extract or tree upload may unpack (archive bombs): bytes of the uncompressed tar
    # stream, and entries (files, directories, links). Over either: 413, target unchanged.
    max_extract_bytes: int = Field(default=16 * 1024**3, ge=1)
    max_extract_files: int = Field(default=250_000, ge=1)


class SystemConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    ssh: SSHConfig
    scheduler: SchedulerConfig = SchedulerConfig()
    file_systems: list[FileSystem] = []
    data_operation: DataOperation = DataOperation()
    # None: every authenticated user may use the system. A list: only these usernames.
    allowed_users: list[str] | None = None
    probe_interval: float = Field(default=60.0, gt=0)
    # The server's own login for the health probes (an operator-configured service account,
    # not a caller), used over a pool of its own. None: the system is not probed and its health
    # stays unknown; never a caller's login or connections (health.py).
    probe_user: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_.-]{0,31}$")

    @field_validator("name")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()  # FirecREST treats system names case-insensitively

    @model_validator(mode="after")
    def _probe_token_has_a_user(self) -> SystemConfig:
        credentials = self.ssh.credentials
        has_token = isinstance(credentials, KeyServiceCredentials) and credentials.probe_token
        if has_token and self.probe_user is None:
            raise ValueError("ssh.credentials.probe_token needs probe_user (whose token it is)")
        return self


class RateLimit(_Strict):
    requests_per_second: float = Field(default=50.0, gt=0)
    burst: int = Field(default=200, ge=1)
    max_concurrent_requests: int = Field(default=64, ge=1)


class EdgeLimits(_Strict):
    """What a client may cost the server before it is known who it is (`server.limits`).

    Enforced by the ASGI body-limit middleware (body_limits.py) and the connection protocol
    (edge_protocol.py), before any route runs. Defaults are safe for a server on the internet.
    """

    # Body cap, bytes, of every request without a cap of its own: multipart uploads are capped
    # at the system's max_ops_file_size (plus the form's framing), staging parts at its
    # staging_part_size, CompleteMultipartUpload documents at 4 MiB (10,000 parts fit).
    max_json_body: int = Field(default=1024 * 1024, ge=1024)
    # The PUT /ops/tree extension unpacks a tar stream; its total size is bounded by this (0:
    # unbounded, the cluster's quota then being the limit).
    max_tree_body: int = Field(default=0, ge=0)
    # Seconds a client has to send a request line and all headers, from the first byte of a
    # request (or from connecting): longer, and the connection is closed.
    header_timeout: float = Field(default=10.0, gt=0, le=300)
    # Seconds a request body may stall (no byte while the server is ready to read it).
    body_timeout: float = Field(default=60.0, gt=0, le=3600)
    # Open client connections per worker; over it, requests get 503 and the connection is
    # closed. The effective cap is also kept below the process's file-descriptor limit minus
    # fd_reserve (SSH connections, log files, the listening socket), see edge_protocol.py.
    max_connections: int = Field(default=4096, ge=1)
    fd_reserve: int = Field(default=256, ge=16)


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
            urllib.parse.urlsplit(value).port  # noqa: B018 - raises on a port that is not a number
        except ValueError as exc:
            raise ValueError(f"invalid port: {exc}") from None
        return value


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=256)
    # Seconds a worker may take to answer its supervisor's health ping before it is killed and
    # replaced (uvicorn's timeout_worker_healthcheck, whose default of 5 s killed workers still
    # starting on a loaded machine). A hung worker is replaced after this long.
    worker_healthcheck_timeout: int = Field(default=60, ge=1, le=3600)
    # Seconds each worker, once started, waits for the server's other workers before it
    # accepts connections, so the first burst meets all of them (worker_start.py); 0 serves
    # each worker as soon as it is started.
    worker_start_wait: float = Field(default=30, ge=0, le=3600)
    root_path: str = ""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # uvloop (with our batched accepting, event_loop.py): the most requests per second.
    # asyncio: Python's own loop, ~25 % fewer requests per second; for debugging, or where
    # uvloop cannot be installed. See docs/configuration.md.
    event_loop: Literal["asyncio", "uvloop"] = "uvloop"
    metrics: bool = True  # serve Prometheus metrics at /metrics (unauthenticated)
    # A Server-Timing header on every response: where its time went (server_timing.py).
    timing_header: bool = False
    # Base URL clients reach this server at, for every URL it hands out (the staging URLs of
    # S3-style large-file transfers). Unset: the URL of the request that asked for them, with
    # the Host header the client sent (a warning at start; see docs/deployment.md).
    public_url: str | None = None
    # Peers (IP addresses or networks) whose Forwarded / X-Forwarded-For / X-Forwarded-Proto
    # headers are believed: the reverse proxies in front of this server. Anyone else's are
    # ignored. Requires public_url: the Host a proxy passes on never names our URLs.
    trusted_proxies: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    # Which headers those proxies set: a proxy passes the other kind on as the client sent it,
    # so only one kind can be believed.
    proxy_headers: Literal["x-forwarded", "forwarded"] = "x-forwarded"
    # HMAC key for staging URLs. Every replica behind one URL must share it; when unset, a
    # random key is made at start-up and shared by the workers of that one process.
    url_signing_key: Secret | None = None
    limits: EdgeLimits = EdgeLimits()

    @field_validator("public_url")
    @classmethod
    def _absolute_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http:// or https:// URL")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("must have no query, fragment or credentials")
        return value.rstrip("/")

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        # "10.0.0.1" or "10.0.0.0/8"; a host address with host bits set ("10.0.0.1/8") is a
        # typo that would trust a whole network silently: refused by strict parsing.
        if not isinstance(value, list):
            return value
        networks = []
        for item in value:
            try:
                networks.append(ipaddress.ip_network(str(item), strict=True))
            except ValueError as exc:
                raise ValueError(f"{item!r} is not an IP address or network: {exc}") from None
        return networks

    @model_validator(mode="after")
    def _proxies_need_public_url(self) -> ServerConfig:
        if self.trusted_proxies and self.public_url is None:
            raise ValueError(
                "server.trusted_proxies is set but server.public_url is not: behind a reverse "
                "proxy the URLs handed out must come from server.public_url"
            )
        return self

    # SIGTERM: answer /status/liveness with 503 for this long while still serving, so that a
    # load balancer's health checks take this replica out before it stops accepting. Set it
    # above the balancer's check interval x fall count; 0 without a balancer.
    drain_seconds: float = Field(default=0.0, ge=0, le=300)
    # Then stop accepting and give requests in flight this long to finish (uvicorn's
    # timeout_graceful_shutdown) before they are cancelled and the SSH pools close.
    shutdown_grace_seconds: float = Field(default=30.0, gt=0, le=3600)


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

    def warnings(self) -> list[str]:
        """What is valid but probably not meant; printed at start and by ``--check``."""
        if self.server.public_url is None:
            return [
                "server.public_url is not set: staging URLs are built from each request's Host "
                "header and the connection's scheme (http behind a TLS-terminating proxy); "
                "set it to the URL clients use"
            ]
        return []

    def system(self, name: str) -> SystemConfig | None:
        name = name.lower()
        return next((s for s in self.systems if s.name == name), None)


def _concrete_types(annotation: object) -> list[object]:
    """The classes a field annotation may hold: Annotated, Optional and unions unwrapped."""
    if typing.get_origin(annotation) is Annotated:
        return _concrete_types(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) for t in _concrete_types(arg)]
    return [] if annotation is type(None) else [annotation]


def _is_model(candidate: object) -> TypeGuard[type[BaseModel]]:
    return isinstance(candidate, type) and issubclass(candidate, BaseModel)


def _tag_matches(model: type[BaseModel], tag: str) -> bool:
    # A discriminated union puts the member's tag in the error path ("credentials.ca.ca_key").
    field = model.model_fields.get("type")
    return field is not None and tag in typing.get_args(field.annotation)


def known_keys(root: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The keys the mapping at ``loc`` (an error path) may have; [] if it is not a model."""
    candidates = _concrete_types(root)
    for part in loc:
        following: list[object] = []
        for candidate in candidates:
            origin = typing.get_origin(candidate)
            if _is_model(candidate) and isinstance(part, str):
                fields = candidate.model_fields
                if part in fields:
                    following += _concrete_types(fields[part].annotation)
                elif _tag_matches(candidate, part):
                    following.append(candidate)
            elif origin is list and isinstance(part, int):
                following += _concrete_types(typing.get_args(candidate)[0])
            elif origin is dict and isinstance(part, str):
                following += _concrete_types(typing.get_args(candidate)[1])
        candidates = following
    return sorted({key for c in candidates if _is_model(c) for key in c.model_fields})


def _unknown_key_hint(root: type[BaseModel], loc: tuple[str | int, ...]) -> str:
    key = str(loc[-1])
    keys = known_keys(root, loc[:-1])
    if not keys:
        return ""
    # A misspelt key is usually one or two edits away; otherwise the list is the help.
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; known keys here: {', '.join(keys)}"


def format_validation_error(exc: ValidationError, root: type[BaseModel] | None = None) -> str:
    """One line per error: the dotted key path and the message; for an unknown key, a hint
    from ``root`` (the model validated) at the closest known key."""
    lines = []
    for error in exc.errors():
        # Discriminator tags stay in the path ("credentials.ca.ca_key"): they say which
        # credential type was being validated.
        path = ".".join(str(part) for part in error["loc"]) or "(top level)"
        hint = ""
        if error["type"] == "extra_forbidden" and root is not None:
            hint = _unknown_key_hint(root, tuple(error["loc"]))
        lines.append(f"{path}: {error['msg']}{hint}")
    return "\n".join(lines)


# Top-level keys (and auth sections) that only a FirecREST v2 configuration has. A file with
# them and no `systems` is FirecREST's, given by mistake: say so instead of listing every key
# as unknown.
FIRECREST_V2_TOP_KEYS = (
    "clusters",
    "ssh_credentials",
    "apis_root_path",
    "app_debug",
    "app_version",
    "doc_servers",
    "logger",
)
FIRECREST_V2_AUTH_KEYS = ("authentication", "authorization")


def firecrest_v2_markers(data: dict[str, object]) -> list[str]:
    """The keys that make ``data`` a FirecREST v2 configuration rather than ours; [] if none."""
    if "systems" in data:
        return []
    markers = [key for key in FIRECREST_V2_TOP_KEYS if key in data]
    auth = data.get("auth")
    if isinstance(auth, dict):
        markers += [f"auth.{key}" for key in FIRECREST_V2_AUTH_KEYS if key in auth]
    return markers


def parse_settings(data: object) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        message = format_validation_error(exc, Settings)
        raise ConfigError("invalid configuration:\n" + message) from None


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
    markers = firecrest_v2_markers(data)
    if markers:
        raise ConfigError(
            f"{path} is a FirecREST v2 configuration (it has {', '.join(markers)}), not one of "
            f"this server's; translate it with:\n"
            f"  firecrest-server config convert {shlex.quote(str(path))} > firecrest-server.yaml\n"
            "then review the warnings it prints (see docs/deployment.md, Migrating from "
            "FirecREST v2)"
        )
    return parse_settings(data)
