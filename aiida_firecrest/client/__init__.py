"""An async client for FirecREST v2 compatible APIs, in layers.

* ``auth``: where access tokens come from (client credentials, static token, token command);
* ``retry``: which failed requests are sent again, and when;
* ``errors``: HTTP failures as ``OSError`` subclasses;
* ``session``: one HTTP session (auth, concurrency cap, retries, error mapping);
* ``slurm``: Slurm's job states, which of them are final, and the remote timeout's exit status;
* ``api``: ``FirecrestClient``, one typed method per endpoint; ``jobs``: polling and transfer
  job outcomes; ``staging``: the S3 side of large-file transfers (answers, parts, fetch).
"""

from .api import FirecrestClient
from .auth import RefreshingToken, StaticToken, TokenSource, client_credentials, token_command
from .errors import (
    AuthenticationError,
    FirecrestError,
    JobNotFoundError,
    TransferJobError,
)
from .models import (
    CAPABILITY_OPS_CP,
    CAPABILITY_OPS_MV,
    CAPABILITY_TREE,
    CAPABILITY_TREE_CREATE,
    FileEntry,
    StatResult,
    SystemInfo,
    TransferJob,
    UserInfo,
)
from .retry import RetryPolicy
from .slurm import is_final_state

__all__ = [
    "CAPABILITY_OPS_CP",
    "CAPABILITY_OPS_MV",
    "CAPABILITY_TREE",
    "CAPABILITY_TREE_CREATE",
    "AuthenticationError",
    "FileEntry",
    "FirecrestClient",
    "FirecrestError",
    "JobNotFoundError",
    "RefreshingToken",
    "RetryPolicy",
    "StatResult",
    "StaticToken",
    "SystemInfo",
    "TokenSource",
    "TransferJob",
    "TransferJobError",
    "UserInfo",
    "client_credentials",
    "is_final_state",
    "token_command",
]
