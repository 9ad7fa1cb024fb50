"""GET /health, /v1/models, /metrics, /diagnostics/*."""

from __future__ import annotations

import time
from typing import Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.response import Response

from .. import __version__
from ..context import AppContext
from .auth import check_operator
from .caller import Caller


@get("/health", sync_to_thread=False)
def health(ctx: NamedDependency[AppContext]) -> dict[str, Any]:
    return {
        "status": "ok",
        "version": __version__,
        "uptime_seconds": round(time.time() - ctx.started_at, 3),
        "in_flight": ctx.in_flight,
    }


@get("/v1/models")
async def models(ctx: NamedDependency[AppContext], caller: NamedDependency[Caller]) -> dict[str, Any]:
    """The routing config's public names (``owned_by: tollgate``), then the configured providers' default
    models, as far as the caller's key may use them."""
    principal = caller.principal
    public = [
        {"id": name, "object": "model", "created": 0, "owned_by": "tollgate"}
        for name in ctx.router.public_names(principal.allows)
    ]
    data = [
        {"id": f"{name}/{config.model}", "object": "model", "created": 0, "owned_by": name}
        for name, config in ctx.router.configs.items()
        if config.configured and principal.allows(name, config.model)
    ]
    return {"object": "list", "data": public + data}


@get("/metrics")
async def metrics(request: Request[Any, Any, Any], ctx: NamedDependency[AppContext]) -> Response[str]:
    await check_operator(request, ctx)
    return Response(ctx.metrics.render(ctx.in_flight), media_type="text/plain; version=0.0.4; charset=utf-8")


@get("/diagnostics/providers")
async def diagnostics_providers(
    request: Request[Any, Any, Any], ctx: NamedDependency[AppContext]
) -> dict[str, Any]:
    await check_operator(request, ctx)
    return {"providers": ctx.diagnostics.providers()}


@get("/diagnostics/requests")
async def diagnostics_requests(
    request: Request[Any, Any, Any], ctx: NamedDependency[AppContext]
) -> dict[str, Any]:
    await check_operator(request, ctx)
    return ctx.diagnostics.requests()
