"""App factories: ``create_app`` (data plane, streamed) and ``create_admin_app`` (admin API, buffered).

Nothing here runs at import time: clients are created in the lifespan, once per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from http.cookiejar import Cookie, CookieJar
from typing import Any

import anyio
import httpx
from litestar import Litestar
from litestar.di import Provide
from litestar.types import ControllerRouterHandler
from pydantic import ValidationError

from .api.account import audit_log, costs, delete_session
from .api.budgets import my_budgets
from .api.caller import provide_caller, ratelimit_headers
from .api.chat import chat_completions
from .api.completions import completions
from .api.console import console_asset, console_index
from .api.count_tokens import count_tokens
from .api.embeddings import create_embeddings
from .api.errors import EXCEPTION_HANDLERS
from .api.gateway_context import TRUST_GATEWAY_CONTEXT
from .api.info import diagnostics_providers, diagnostics_requests, health, metrics, models
from .api.limits import my_limits
from .api.litestar_app import TYPE_ENCODERS, GatewayApp
from .api.messages import messages, probe
from .api.openapi import openapi_config
from .api.responses import ROUTES as RESPONSES_ROUTES
from .api.tokens import tokens_check, tokens_pools, tokens_report, tokens_reserve
from .config import Settings
from .config_errors import SettingsError, describe_settings_error, is_settings_error
from .context import AppContext
from .keys import OPEN_PRINCIPAL
from .logs import configure_logging, log_event, running_on_lambda
from .providers.registry import build_providers
from .secrets import load_settings, refresh_after_restore
from .store.base import Store
from .store.factory import open_store
from .timeutil import Clock, utc_now

logger = logging.getLogger("tollgate.app")

DATA_PLANE: list[ControllerRouterHandler] = [
    chat_completions,
    completions,
    create_embeddings,
    messages,
    count_tokens,
    probe,
    models,
    health,
    metrics,
    diagnostics_providers,
    diagnostics_requests,
    tokens_check,
    tokens_reserve,
    tokens_report,
    tokens_pools,
    my_budgets,
    costs,
    audit_log,
    delete_session,
    my_limits,
    console_index,
    console_asset,
    *RESPONSES_ROUTES,
]


def http_client(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The one pooled client per process for every HTTP provider (aiohttp underneath unless a test
    injects a transport or the settings say httpcore: upstream_transport.py)."""
    if transport is None:
        from .upstream_transport import upstream_transport  # imports aiohttp: not at cold start

        transport = upstream_transport(settings)
    timeout = httpx.Timeout(
        settings.provider_timeout_seconds, connect=settings.provider_connect_timeout_seconds
    )
    limits = httpx.Limits(
        max_connections=settings.max_connections, max_keepalive_connections=settings.max_connections
    )
    # Upstream cookies are never kept: the client is shared by every tenant.
    client = httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport)
    client._cookies = NoCookies()  # the public setter would copy it into a plain ``httpx.Cookies``
    return client


class NoCookies(httpx.Cookies):
    """The client's cookies: none kept, none sent. httpx calls ``extract_cookies`` on every response and
    builds two urllib wrappers of the request and response for the jar (~20 µs); skipped here."""

    def __init__(self) -> None:
        super().__init__(NoCookieJar())

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None


class NoCookieJar(CookieJar):
    """The jar under ``NoCookies``: a cookie set on it by hand (``client.cookies.set``) is dropped too. The
    per-response extraction and per-request header never reach it (``NoCookies`` skips them)."""

    def set_cookie(self, cookie: Cookie) -> None:
        return None


def _settings(settings: Settings | None) -> tuple[Settings, bool]:
    """The given settings, or the environment's overlaid with the secret; whether they were loaded here."""
    if settings is not None:
        return settings, False
    try:
        return load_settings(), True
    except ValidationError as exc:
        if not is_settings_error(exc):
            raise
        raise SettingsError(describe_settings_error(exc)) from None


def _litestar(
    ctx: AppContext,
    handlers: list[ControllerRouterHandler],
    lifespan: Callable[[Litestar], Any],
    *,
    openapi_path: str = "/openapi.json",
    trust_gateway_context: bool = False,
) -> Litestar:
    return GatewayApp(
        route_handlers=handlers,
        type_encoders=TYPE_ENCODERS,
        dependencies={
            "ctx": Provide(lambda: ctx, use_cache=True, sync_to_thread=False),
            "caller": Provide(provide_caller),  # resolved before the body is read (api/caller.py)
        },
        exception_handlers=EXCEPTION_HANDLERS,
        before_send=[ratelimit_headers],
        lifespan=[lifespan],
        request_max_body_size=ctx.settings.max_body_bytes,
        openapi_config=openapi_config(openapi_path),
        logging_config=None,  # tollgate configures its own logging (logs.py)
        # ctx is read by guards; the flag by the chat handler (x-amzn-request-context, api/chat.py)
        state={"ctx": ctx, TRUST_GATEWAY_CONTEXT: trust_gateway_context},  # type: ignore[arg-type]
    )


def create_app(
    settings: Settings | None = None,
    *,
    http_transport: httpx.AsyncBaseTransport | None = None,
    bedrock_client: Any | None = None,
    store: Store | None = None,
    allow_open: bool = False,
    include_admin: bool = False,
    trust_gateway_context: bool | None = None,
    run_sweeper: bool = False,
    clock: Clock | None = None,
    alert_clients: dict[str, Any] | None = None,
) -> Litestar:
    """The data-plane app. ``allow_open`` (``tollgate serve`` only) serves loopback callers without a key
    while the store holds no keys; on Lambda it is never set. Tests inject transports, clients and stores.

    Without ``settings`` they are loaded with the secret (``tollgate.secrets``) and refreshed after a
    SnapStart restore. ``trust_gateway_context`` (default: on Lambda, behind the Lambda Web Adapter) takes
    the request id from API Gateway's forwarded request context. ``run_sweeper`` (``tollgate serve``)
    sweeps every ``TOLLGATE_SWEEP_INTERVAL_SECONDS``; ``clock`` is the sweep's time (tests shift it)."""
    settings, loaded = _settings(settings)
    configure_logging(settings.log_level)
    ctx = AppContext.build(
        settings,
        store or open_store(settings),
        allow_open=allow_open,
        clock=clock or utc_now,
        alert_clients=alert_clients,
    )
    if loaded:
        refresh_after_restore(ctx)
    trust = running_on_lambda() if trust_gateway_context is None else trust_gateway_context

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if settings.store == "sqlite":
            await ctx.store.init_schema()
        if allow_open:
            await ctx.store.create_pool(OPEN_PRINCIPAL.tenant, OPEN_PRINCIPAL.pool)  # open mode's pool
        async with http_client(settings, http_transport) as client, _sweeping(ctx, run_sweeper):
            ctx.http = client
            ctx.providers = build_providers(
                settings, client, bedrock_client=bedrock_client, deployments=ctx.router.deployments
            )
            try:
                yield
            finally:
                await _accounted(ctx)
                if ctx.alerts is not None:
                    await ctx.alerts.outbox.drain()  # bounded by the webhook's timeout
                for provider in ctx.providers.values():
                    await provider.aclose()
                await ctx.store.aclose()

    handlers = DATA_PLANE + ([_admin_router()] if include_admin else [])
    return _litestar(ctx, handlers, lifespan, trust_gateway_context=trust)


def _admin_router() -> ControllerRouterHandler:
    """The admin API's router, imported only by the apps that serve it (not the chat function's)."""
    from .api.admin import admin_router

    return admin_router


SHUTDOWN_ACCOUNTING_SECONDS = 15.0


async def _accounted(ctx: AppContext, limit: float = SHUTDOWN_ACCOUNTING_SECONDS) -> None:
    """At shutdown, before the store closes: wait for the requests still being accounted for.

    The server stops its requests after its grace period (``tollgate serve``: 5 s), but a stopped request
    still settles, audits and releases its holds (shielded); closing the store under it would leave its
    holds to the sweep's upper bound and no audit entry. Bounded: a finish that never ends is logged."""
    with anyio.move_on_after(limit):
        await ctx.idle.wait()
    if ctx.in_flight > 0:
        log_event(logger, logging.ERROR, "shutdown_before_accounting", in_flight=ctx.in_flight)


@asynccontextmanager
async def _sweeping(ctx: AppContext, run: bool) -> AsyncIterator[None]:
    """The timed sweep as a background task of the lifespan (stopped, not awaited to its end, after)."""
    interval = ctx.settings.sweep_interval_seconds
    if not run or interval <= 0:
        yield
        return
    task = asyncio.create_task(ctx.sweeper.run_every(interval), name="tollgate-sweep")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def create_admin_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    clock: Clock | None = None,
    alert_clients: dict[str, Any] | None = None,
) -> Litestar:
    """The admin API alone (paths under /admin), for the Mangum-wrapped admin function.

    Works without its lifespan (Mangum ``lifespan="off"``) on DynamoDB: the store connects on first use."""
    settings, loaded = _settings(settings)
    configure_logging(settings.log_level)
    ctx = AppContext.build(
        settings,
        store or open_store(settings),
        allow_open=False,
        clock=clock or utc_now,
        alert_clients=alert_clients,
    )
    if loaded:
        refresh_after_restore(ctx)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if settings.store == "sqlite":
            await ctx.store.init_schema()
        yield

    return _litestar(ctx, [_admin_router()], lifespan, openapi_path="/admin/openapi.json")
