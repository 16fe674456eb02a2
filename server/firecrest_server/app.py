"""The ASGI application: wiring only. Routers translate HTTP; operations do the work."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.types import Message, Scope

from . import __version__
from .api.errors import install_error_handlers
from .api.routes import (
    compute,
    filesystem_extensions,
    filesystem_ops,
    filesystem_transfer,
    staging,
    status,
    status_scheduler,
)
from .body_limits import BodyLimitMiddleware
from .config import Settings, load_settings
from .edge_protocol import EDGE_STATE, ConnectionBudget, raise_fd_limit
from .forwarding import ForwardedHeadersMiddleware
from .logs import configure_logging
from .middleware import FirecrestHeadersMiddleware
from .openapi import ERROR_RESPONSES, publish_errors_as_sent
from .openapi_security import add_client_credentials
from .public_url import PublicUrlMiddleware
from .runtime import open_runtime
from .worker_env import CONFIG_ENV, START_DIR_ENV
from .worker_start import wait_for_all_workers


def create_app(settings: Settings, start_dir: Path | None = None) -> FastAPI:
    """The app. ``start_dir``: where the server's workers wait for each other before serving
    (worker_start.py); None for one worker, or an app that is not one of several."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, ConnectionBudget]]:
        async with open_runtime(settings) as runtime:
            app.state.runtime = runtime
            # Lifespan state reaches uvicorn's protocol (edge_protocol.py) as its `app_state`:
            # each worker derives its connection caps from its own descriptor limit.
            budget = ConnectionBudget.derive(settings.server.limits, raise_fd_limit())
            await _prepare_routes(app)
            if start_dir is not None:
                await wait_for_all_workers(
                    start_dir, settings.server.workers, settings.server.worker_start_wait
                )
            yield {EDGE_STATE: budget}

    app = FastAPI(
        title="firecrest-server",
        version=__version__,
        description="HPC cluster access over HTTP, wire-compatible with FirecREST v2.",
        root_path=settings.server.root_path,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    # Inside the headers middleware, so its refusals carry the FirecREST headers and are logged.
    app.add_middleware(BodyLimitMiddleware, settings=settings)
    app.add_middleware(FirecrestHeadersMiddleware, timing_header=settings.server.timing_header)
    if settings.server.public_url is not None:
        app.add_middleware(PublicUrlMiddleware, public_url=settings.server.public_url)
    if settings.server.trusted_proxies:
        # Added last, so it runs first: the access log then names the client, not the proxy.
        app.add_middleware(
            ForwardedHeadersMiddleware,
            trusted=settings.server.trusted_proxies,
            kind=settings.server.proxy_headers,
        )
    for router in (
        status.router,
        filesystem_ops.router,
        filesystem_extensions.router,
        filesystem_transfer.router,
        status_scheduler.router,
        compute.router,
    ):
        app.include_router(router, responses=ERROR_RESPONSES)
    # Staging URLs speak S3 to S3 clients, not FirecREST: no FirecREST error body documented.
    app.include_router(staging.router)
    publish_errors_as_sent(app)
    if settings.server.metrics:
        app.add_api_route("/metrics", _metrics, methods=["GET"], include_in_schema=False)
    _offer_client_credentials(app)
    return app


async def _prepare_routes(app: FastAPI) -> None:
    """Have FastAPI build every route's request handling now, not on the first request.

    FastAPI builds each included route's dependencies and parameter models on the first
    request that is matched against it (0.16x: ``_IncludedRouter.effective_candidates``):
    about 100 ms of CPU here, during which a fresh worker's event loop serves nothing, in
    front of a burst of first requests. A request for a path no route has is matched against
    all of them; it goes to the router alone, so it is neither logged nor counted.
    """
    sent: list[int] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            sent.append(message["status"])

    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/.prepare-routes",
        "raw_path": b"/.prepare-routes",
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "server": ("localhost", 0),
        "client": None,
    }
    await app.router(scope, receive, send)


def _offer_client_credentials(app: FastAPI) -> None:
    """Swagger UI's Authorize gets the client-credentials flow once the token URL is known."""
    generate = app.openapi  # FastAPI's own, which caches the document in app.openapi_schema

    def openapi() -> dict[str, Any]:
        schema = generate()
        runtime = getattr(app.state, "runtime", None)
        # Read per call: a token URL that discovery finds only after start-up appears then.
        token_url = runtime.tokens.token_url() if runtime is not None else None
        if token_url:
            add_client_credentials(schema, token_url)
        return schema

    # Replacing the method is FastAPI's documented way to amend the generated schema.
    app.openapi = openapi  # type: ignore[method-assign]


async def _metrics(request: Request) -> Response:
    # Unauthenticated, like /status/liveness: scrapers carry no user token. It reveals counts
    # and route templates, no user names or paths; turn it off with `server.metrics: false`.
    body, content_type = request.app.state.runtime.metrics.render()
    return Response(body, media_type=content_type)


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers: each worker process reads the same config file."""
    settings = load_settings(os.environ[CONFIG_ENV])
    # Here rather than in create_app: uvicorn has set up its own logging by the time it calls
    # the factory, and apps built in tests should leave the test runner's logging alone.
    configure_logging(settings.server.log_level)
    start_dir = os.environ.get(START_DIR_ENV)
    return create_app(settings, Path(start_dir) if start_dir else None)
