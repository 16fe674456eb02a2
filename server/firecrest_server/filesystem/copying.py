"""Copy and move within the cluster, synchronously (an extension beyond FirecREST v2).

FirecREST v2 copies and moves only through scheduler transfer jobs, which costs a queued job and
polling for every small copy (AiiDA's remote_copy_list, lost+found, rename). These run the same
programs directly, under the command timeout; a 408 tells a client to fall back to a job.
"""

from __future__ import annotations

from ..cluster import CheckedPath, Remote


def cp_argv(source: str, target: str, dereference: bool) -> list[str]:
    # -d keeps symlinks as links, -L copies what they point to; ownership is not preserved
    # (the copy belongs to the caller, as with any copy they make themselves).
    return [
        "cp",
        "--force",
        "--recursive",
        "--dereference" if dereference else "--no-dereference",
        "--preserve=mode,timestamps,links",
        "--",
        source,
        target,
    ]


def mv_argv(source: str, target: str) -> list[str]:
    return ["mv", "--force", "--", source, target]


async def copy(
    remote: Remote, source: CheckedPath, target: CheckedPath, dereference: bool = False
) -> None:
    await remote.run(cp_argv(source, target, dereference))


async def move(remote: Remote, source: CheckedPath, target: CheckedPath) -> None:
    # not idempotent: once moved, a retry would fail on the missing source
    await remote.run(mv_argv(source, target), idempotent=False)
