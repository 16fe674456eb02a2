"""`firecrest-server --config FILE`: validate the configuration, then serve it.

`firecrest-server config convert FIRECREST_V2.yaml`: print the FirecREST v2 configuration
translated into ours (upstream_config.py), with what could not be translated on stderr.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
from typing import TYPE_CHECKING

import uvicorn

# Nothing of the server itself at module level (config, app, and what they import are imported
# where they are used): uvicorn starts each worker with multiprocessing's "spawn", which first
# imports this module again (as __mp_main__) and only then starts the thread that answers the
# supervisor's health pings. A worker that has not answered within
# ``server.worker_healthcheck_timeout`` is killed and replaced; importing the whole app here
# took 1.2 s of CPU, over 5 s on a loaded machine, and workers were killed and started again in
# a loop without ever serving (benchmarks/cold_burst.py, docs/benchmarks.md).
from .worker_env import CONFIG_ENV, SIGNING_KEY_ENV, START_DIR_ENV

if TYPE_CHECKING:
    from .config import Settings

# How long an idle client connection stays open. uvicorn's default (5 s) equals httpx's default
# keep-alive expiry (5 s), so clients such as pyfirecrest sometimes send a request on a
# connection the server is closing at that moment and get a connection error. A server must
# keep connections longer than its clients' pools do.
KEEP_ALIVE_SECONDS = 75

# server.event_loop -> uvicorn's `loop`. "uvloop" is uvloop with our own accepting of new
# connections (event_loop.py explains why libuv's is not enough under load).
UVICORN_LOOPS = {
    "uvloop": "firecrest_server.event_loop:new_event_loop",
    "asyncio": "asyncio",
}


# uvicorn's httptools protocol with header and body timeouts, a connection cap and joined writes
# (edge_protocol.py explains why a protocol, and what it enforces).
HTTP_PROTOCOL = "firecrest_server.edge_protocol:EdgeProtocol"


def convert_command(argv: list[str]) -> int:
    from .config import ConfigError
    from .upstream_config import ConvertOptions, convert, load_upstream

    parser = argparse.ArgumentParser(
        prog="firecrest-server config convert",
        description="Translate a FirecREST v2 configuration file into this server's; the "
        "result goes to stdout (or --output), what could not be translated to stderr.",
    )
    parser.add_argument("source", help="the FirecREST v2 YAML configuration file")
    parser.add_argument("-o", "--output", help="write here (mode 0600) instead of stdout")
    parser.add_argument("--issuer", help="the `iss` of the tokens (auth.issuer)")
    parser.add_argument(
        "--audience", action="append", default=[], help="an accepted `aud` (repeatable)"
    )
    parser.add_argument("--known-hosts", help="known_hosts file with the login nodes' host keys")
    parser.add_argument(
        "--ca-key", help="use the built-in SSH CA with this key file for every system"
    )
    parser.add_argument("--probe-user", help="the server's own login for the health probes")
    args = parser.parse_args(argv)
    options = ConvertOptions(
        issuer=args.issuer,
        audience=args.audience,
        known_hosts=args.known_hosts,
        ca_key=args.ca_key,
        probe_user=args.probe_user,
    )
    try:
        conversion = convert(load_upstream(args.source), options)
    except ConfigError as exc:
        print(f"firecrest-server: {args.source}: {exc}", file=sys.stderr)
        return 2
    for warning in conversion.warnings:
        print(f"firecrest-server: warning: {warning}", file=sys.stderr)
    text = conversion.to_yaml(args.source)
    if args.output is None:
        sys.stdout.write(text)
    else:
        # The output may carry secrets given inline in the source (a service account's).
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as output:
            output.write(text)
    print(
        f"firecrest-server: {len(conversion.config['systems'])} system(s), "
        f"{len(conversion.warnings)} warning(s)",
        file=sys.stderr,
    )
    return 0


def config_command(argv: list[str]) -> int:
    """`firecrest-server config SUBCOMMAND ...`; only `convert` for now."""
    if argv[:1] != ["convert"]:
        print("usage: firecrest-server config convert FILE [options]", file=sys.stderr)
        return 2
    return convert_command(argv[1:])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # `config` is a word no option of the serving form starts with, so `--config FILE
    # [--check]` parses exactly as before.
    if argv[:1] == ["config"]:
        return config_command(argv[1:])
    parser = argparse.ArgumentParser(
        prog="firecrest-server",
        description=__doc__,
        epilog="Also: firecrest-server config convert FIRECREST_V2.yaml > config.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, help="the YAML configuration file")
    parser.add_argument("--check", action="store_true", help="validate the configuration and exit")
    args = parser.parse_args(argv)
    from .config import ConfigError, load_settings

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"firecrest-server: {exc}", file=sys.stderr)
        return 2
    for warning in settings.warnings():
        print(f"firecrest-server: warning: {warning}", file=sys.stderr)
    if args.check:
        print(f"firecrest-server: {args.config} is valid ({len(settings.systems)} system(s))")
        return 0
    os.environ[CONFIG_ENV] = os.path.abspath(args.config)
    if settings.server.url_signing_key is None:
        # All workers of this process must verify the staging URLs any of them signed.
        os.environ.setdefault(SIGNING_KEY_ENV, secrets.token_urlsafe(32))
    start_dir = None
    if settings.server.workers > 1 and settings.server.worker_start_wait > 0:
        # Where the workers wait for each other before serving (worker_start.py).
        start_dir = tempfile.mkdtemp(prefix="firecrest-server-start-")
        os.environ[START_DIR_ENV] = start_dir
    try:
        serve(settings)
    finally:
        if start_dir is not None:
            shutil.rmtree(start_dir, ignore_errors=True)
            del os.environ[START_DIR_ENV]
    return 0


def serve(settings: Settings) -> None:
    uvicorn.run(
        "firecrest_server.app:app_from_env",
        factory=True,
        host=settings.server.host,
        port=settings.server.port,
        workers=settings.server.workers,
        log_level=settings.server.log_level,
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        # After the drain (draining.py): how long requests in flight may take to finish.
        # uvicorn types this int, but only hands it to asyncio.timeout, which takes a float.
        timeout_graceful_shutdown=settings.server.shutdown_grace_seconds,  # type: ignore[arg-type]
        loop=UVICORN_LOOPS[settings.server.event_loop],
        # The edge protocol: timeouts, the connection cap, and a response's head and body in
        # one write, so a replica that dies mid-answer sends all or nothing (edge_protocol.py).
        http=HTTP_PROTOCOL,
        # uvicorn's default, 5 s, is shorter than a worker's start on a loaded machine and than
        # a pause of a worker saturated by a burst: the supervisor killed healthy workers.
        timeout_worker_healthcheck=settings.server.worker_healthcheck_timeout,
    )


if __name__ == "__main__":
    sys.exit(main())
