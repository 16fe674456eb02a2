"""What an operation gets to act on the cluster, as the caller: the seam below the operations.

``ClusterAccess`` (made once, in the app's lifespan) hands out a ``Remote`` per request: the
system, commands (``RemoteRunner``), SFTP, slurmrestd in rest mode, and the system's id-name
cache. ``checked_path`` makes the ``CheckedPath`` that operations acting on a user's path require;
``failures`` maps what fails on the cluster to API errors. Nothing here imports an operation.
"""

from .access import ClusterAccess
from .commands import TIMEOUT_EXIT, CommandObserver, CommandResult, RemoteRunner
from .paths import CheckedPath, checked_path
from .remote import Remote
from .sftp import sftp_request

__all__ = [
    "TIMEOUT_EXIT",
    "CheckedPath",
    "ClusterAccess",
    "CommandObserver",
    "CommandResult",
    "Remote",
    "RemoteRunner",
    "checked_path",
    "sftp_request",
]
