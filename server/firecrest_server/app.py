"""The ASGI application: wiring only. Routers translate HTTP; operations do the work."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from . import __version__
from .api.routes import filesystem_ops, status
from .config import Settings, load_settings
from .errors import install_error_handlers
from .middleware import FirecrestHeadersMiddleware
from .runtime import open_runtime

CONFIG_ENV = "FIRECREST_SERVER_CONFIG"


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(settings) as runtime:
            app.state.runtime = runtime
            yield

    app = FastAPI(
        title="firecrest-server",
        version=__version__,
        description="HPC cluster access over HTTP, wire-compatible with FirecREST v2.",
        root_path=settings.server.root_path,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(FirecrestHeadersMiddleware)
    app.include_router(status.router)
    app.include_router(filesystem_ops.router)
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers: each worker process reads the same config file."""
    return create_app(load_settings(os.environ[CONFIG_ENV]))
