"""The transport's settings: what ``verdi computer configure firecrest`` asks, and their parsing.

Authentication is one of three, in this order of precedence:

* ``token_command``: a local command that prints an access token (e.g. ``oidc-token myagent``);
* ``static_token``: a token pasted once (it expires; for short tests);
* ``token_uri`` + ``client_id`` + ``client_secret``: the OIDC client-credentials grant, the
  client authenticating with ``token_endpoint_auth_method`` (secret in the form, or HTTP Basic).

The secret is stored as given in AiiDA's database (like every transport's auth parameters) and is
never echoed: hidden at the prompt, not shown as a default, never in ``str()`` or messages. It may
also be the absolute path of a file holding it, as aiida-firecrest 1.0 stores it
(``client_secret.py``).

aiida-core offers every transport ``use_login_shell`` and ``safe_interval``; configurations
written for aiida-firecrest 1.0 or ``core.ssh_async`` may carry them, so they are accepted (not
prompted for): ``safe_interval`` is honoured, ``use_login_shell`` means nothing without a shell
and only draws a warning.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from .client import RefreshingToken, StaticToken, TokenSource, token_command
from .client.auth import CLIENT_AUTH_METHODS, ClientAuthMethod, client_credentials_fetcher
from .client_secret import secret_source, with_path_hint

DEFAULT_MAX_IO_ALLOWED = 8
# A REST API needs no cool-down between opening transports (SSH's 15 s protects sshd).
DEFAULT_SAFE_INTERVAL = 0.0
# Values that `verdi computer configure` stores for "not set".
_UNSET = (None, "", "None", "none")


def _set(value: Any) -> bool:
    return value not in _UNSET


def _directory(path: str | None) -> str | None:
    return (path.rstrip("/") or "/") if path else None


def _validate_positive_int(ctx: Any, param: Any, value: Any) -> Any:
    import click

    if value is None:
        return value
    if not isinstance(value, int) or value < 1:
        raise click.BadParameter(f"{value} is not a positive integer")
    return value


def _validate_url(ctx: Any, param: Any, value: Any) -> Any:
    import click

    if value in _UNSET:
        return value
    if not str(value).startswith(("http://", "https://")):
        raise click.BadParameter(f"{value} is not an http(s) URL")
    return value


def _is_client_auth_method(value: str) -> TypeGuard[ClientAuthMethod]:
    return value in CLIENT_AUTH_METHODS


def _validate_auth_method(ctx: Any, param: Any, value: Any) -> Any:
    import click

    if value in _UNSET or value in CLIENT_AUTH_METHODS:
        return value
    raise click.BadParameter(f"{value} is not one of {', '.join(CLIENT_AUTH_METHODS)}")


def _validate_non_negative(ctx: Any, param: Any, value: Any) -> Any:
    import click

    if value is None or value >= 0:
        return value
    raise click.BadParameter(f"{value} is negative")


def _never(ctx: Any) -> bool:
    return False


def _validate_remote_dir(ctx: Any, param: Any, value: Any) -> Any:
    import click

    if value in _UNSET:
        return value
    if not str(value).startswith("/"):
        raise click.BadParameter(f"{value} is not an absolute path")
    return value


def _optional(prompt: str, help_text: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": str,
        "default": "",
        "prompt": prompt,
        "help": help_text,
        "non_interactive_default": True,
        **extra,
    }


AUTH_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    (
        "url",
        {
            "type": str,
            "prompt": "FirecREST API URL",
            "help": "Base URL of the FirecREST v2 API, e.g. https://api.cscs.ch/hpc/firecrest/v2",
            "non_interactive_default": False,
            "callback": _validate_url,
        },
    ),
    (
        "token_uri",
        _optional(
            "OIDC token endpoint (client credentials; empty to use a token command)",
            "URL of the identity provider's token endpoint, for the client-credentials grant.",
            callback=_validate_url,
        ),
    ),
    ("client_id", _optional("Client ID", "OIDC client (service account) ID.")),
    (
        "client_secret",
        _optional(
            "Client secret",
            "OIDC client secret, or the absolute path of an existing file holding it (as "
            "aiida-firecrest 1.0 stores it; read when a token is needed). Stored in the AiiDA "
            "database as given; never displayed.",
            hide_input=True,
            show_default=False,
        ),
    ),
    (
        "token_endpoint_auth_method",
        {
            "type": str,
            "default": "client_secret_post",
            "prompt": "Client authentication at the token endpoint",
            "help": "How the client secret is sent to the token endpoint: client_secret_post "
            "(in the form, as pyfirecrest does) or client_secret_basic (HTTP Basic). Most "
            "providers accept both; use the one the client is registered with.",
            "non_interactive_default": True,
            "callback": _validate_auth_method,
        },
    ),
    (
        "token_command",
        _optional(
            "Token command (instead of client credentials; empty for none)",
            "A local shell command that prints an access token; it is run again shortly "
            "before the token it printed expires.",
        ),
    ),
    (
        "static_token",
        _optional(
            "Static access token (instead of the above; empty for none)",
            "An access token used as is and never refreshed: it stops working when it expires.",
            hide_input=True,
            show_default=False,
        ),
    ),
    (
        "compute_resource",
        {
            "type": str,
            "prompt": "Compute resource (system name)",
            "help": "The system's name as FirecREST lists it in /status/systems, e.g. daint.",
            "non_interactive_default": False,
        },
    ),
    (
        "billing_account",
        _optional(
            "Billing account for transfer jobs (empty for none)",
            "Account (project) charged for FirecREST transfer jobs, on servers that copy and "
            "move files through scheduler jobs.",
        ),
    ),
    (
        "temp_directory",
        _optional(
            "Remote directory for staging archives (empty: next to the files)",
            "Absolute path on the cluster where archives are staged when many files move at "
            "once and for compress; created when needed. Empty: use the destination's parent.",
            callback=_validate_remote_dir,
        ),
    ),
    (
        "max_io_allowed",
        {
            "type": int,
            "default": DEFAULT_MAX_IO_ALLOWED,
            "prompt": "Maximum number of concurrent requests",
            "help": "Cap on the requests this transport has in flight at once.",
            "non_interactive_default": True,
            "callback": _validate_positive_int,
        },
    ),
    (
        "checksum_check",
        {
            "default": False,
            "switch": True,
            "prompt": "Verify each transferred file's SHA-256",
            "help": "After each file upload or download, compare checksums (one more request).",
            "non_interactive_default": True,
        },
    ),
]

# aiida-core's options for every transport, taken over (not prompted for) so that a configuration
# that carries them is accepted; defaults of None, so only explicit values are stored.
SHELL_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    (
        "use_login_shell",
        {
            "type": bool,
            "default": None,
            "prompt": "Use login shell (no effect: the firecrest transport runs no shell)",
            "help": "Accepted for configurations written for other transports; no effect.",
            "non_interactive_default": True,
            "prompt_fn": _never,
        },
    ),
    (
        "safe_interval",
        {
            "type": float,
            "default": DEFAULT_SAFE_INTERVAL,
            "prompt": "Connection cooldown time (s)",
            "help": "Minimum time between opening two transports. A REST API needs none (0, "
            "the default); honoured when set, as aiida-firecrest 1.0 did.",
            "non_interactive_default": True,
            "prompt_fn": _never,
            "callback": _validate_non_negative,
        },
    ),
]

OPTION_NAMES = tuple(name for name, _ in AUTH_OPTIONS)
SHELL_OPTION_NAMES = tuple(name for name, _ in SHELL_OPTIONS)


@dataclass(frozen=True)
class TransportSettings:
    url: str
    compute_resource: str
    token_uri: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    token_endpoint_auth_method: ClientAuthMethod = "client_secret_post"  # noqa: S105 - a name
    token_command: str | None = None
    static_token: str | None = field(default=None, repr=False)
    billing_account: str | None = None
    temp_directory: str | None = None
    max_io_allowed: int = DEFAULT_MAX_IO_ALLOWED
    checksum_check: bool = False
    safe_interval: float = DEFAULT_SAFE_INTERVAL

    @classmethod
    def pop_from(cls, kwargs: dict[str, Any]) -> TransportSettings:
        """Take this transport's keys out of ``kwargs`` (the rest goes to the base class)."""
        raw = {name: kwargs.pop(name, None) for name in OPTION_NAMES + SHELL_OPTION_NAMES}
        missing = [name for name in ("url", "compute_resource") if not _set(raw[name])]
        if missing:
            raise ValueError(
                f"FirecrestTransport needs {' and '.join(missing)}: "
                "run `verdi computer configure firecrest <COMPUTER>`"
            )
        text = {name: (str(raw[name]) if _set(raw[name]) else None) for name in OPTION_NAMES}
        method = text["token_endpoint_auth_method"] or "client_secret_post"
        if not _is_client_auth_method(method):
            raise ValueError(
                f"token_endpoint_auth_method: {method!r} is not one of "
                f"{', '.join(CLIENT_AUTH_METHODS)}"
            )
        safe_interval = float(raw["safe_interval"] or DEFAULT_SAFE_INTERVAL)
        if safe_interval < 0:
            raise ValueError(f"safe_interval: {safe_interval} is negative")
        if raw["use_login_shell"] is not None:
            # `warnings` shows it once per place, not at every transport the daemon builds.
            warnings.warn(
                "The firecrest transport runs no shell: use_login_shell has no effect",
                UserWarning,
                stacklevel=3,
            )
        settings = cls(
            url=str(raw["url"]).rstrip("/"),
            compute_resource=str(raw["compute_resource"]),
            token_uri=text["token_uri"],
            client_id=text["client_id"],
            client_secret=text["client_secret"],
            token_endpoint_auth_method=method,
            token_command=text["token_command"],
            static_token=text["static_token"],
            billing_account=text["billing_account"],
            temp_directory=_directory(text["temp_directory"]),
            max_io_allowed=int(raw["max_io_allowed"] or DEFAULT_MAX_IO_ALLOWED),
            checksum_check=bool(raw["checksum_check"]),
            safe_interval=safe_interval,
        )
        settings.auth_kind()  # fail now, not at the first request
        return settings

    def auth_kind(self) -> str:
        if self.token_command:
            return "token_command"
        if self.static_token:
            return "static_token"
        if self.token_uri and self.client_id and self.client_secret:
            return "client_credentials"
        raise ValueError(
            "FirecrestTransport needs credentials: token_uri, client_id and client_secret, "
            "or a token_command, or a static_token"
        )

    def token_source(self) -> TokenSource:
        kind = self.auth_kind()
        if kind == "token_command":
            return token_command(self.token_command or "")
        if kind == "static_token":
            return StaticToken(self.static_token or "")
        token_uri, client_id = self.token_uri or "", self.client_id or ""
        secret = self.client_secret or ""
        fetch = client_credentials_fetcher(
            token_uri, client_id, secret_source(secret), self.token_endpoint_auth_method
        )
        return RefreshingToken(
            with_path_hint(fetch, secret),
            description=f"client credentials for {client_id!r} from {token_uri}",
        )
