"""SSH to the cluster: credentials per user, a pool of multiplexed connections, remote commands."""

from .commands import CommandResult, RemoteRunner
from .credentials import CredentialProvider, build_credential_provider
from .pool import SSHPool

__all__ = [
    "CommandResult",
    "CredentialProvider",
    "RemoteRunner",
    "SSHPool",
    "build_credential_provider",
]
