"""SSH to the cluster: credentials per user, a pool of multiplexed connections.

Commands and SFTP over those connections, as a caller, are the ``cluster`` package's.
"""

from .credentials import CredentialProvider, build_credential_provider
from .pool import SSHPool

__all__ = [
    "CredentialProvider",
    "SSHPool",
    "build_credential_provider",
]
