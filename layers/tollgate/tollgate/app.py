"""App factories: ``create_app`` (data plane, streamed) and, later, ``create_admin_app`` (Mangum).

Nothing here runs at import time: clients are created in the lifespan, once per process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx
from litestar import Litestar
from litestar.di import Provide

from .api.chat import chat_completions
from .api.errors import EXCEPTION_HANDLERS
from .api.info import diagnostics_providers, diagnostics_requests, health, metrics, models
from .config import Settings
from .context import AppContext
from .logs import configure_logging
from .providers.registry import build_providers


def http_client(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The one pooled client per process for every HTTP provider."""
    timeout = httpx.Timeout(
        settings.provider_timeout_seconds, connect=settings.provider_connect_timeout_seconds
    )
    limits = httpx.Limits(
        max_connections=settings.max_connections, max_keepalive_connections=settings.max_connections
    )
    # Upstream cookies are never kept: the client is shared by every tenant.
    no_cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    return httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport, cookies=no_cookies)


def create_app(
    settings: Settings | None = None,
    *,
    http_transport: httpx.AsyncBaseTransport | None = None,
    bedrock_client: Any | None = None,
) -> Litestar:
    """The data-plane app. Tests inject ``http_transport`` (httpx.MockTransport) or ``bedrock_client``."""
    settings = settings or Settings()
    configure_logging(settings.log_level)
    ctx = AppContext.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with http_client(settings, http_transport) as client:
            ctx.http = client
            ctx.providers = build_providers(settings, client, bedrock_client=bedrock_client)
            try:
                yield
            finally:
                for provider in ctx.providers.values():
                    await provider.aclose()

    return Litestar(
        route_handlers=[
            chat_completions,
            models,
            health,
            metrics,
            diagnostics_providers,
            diagnostics_requests,
        ],
        dependencies={"ctx": Provide(lambda: ctx, use_cache=True, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=None,
        logging_config=None,  # tollgate configures its own logging (logs.py)
    )
