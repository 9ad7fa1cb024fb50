"""GET /health, /v1/models, /metrics, /diagnostics/*."""

from __future__ import annotations

import time
from typing import Any

from litestar import get
from litestar.di import NamedDependency
from litestar.response import Response

from .. import __version__
from ..context import AppContext


@get("/health", sync_to_thread=False)
def health(ctx: NamedDependency[AppContext]) -> dict[str, Any]:
    return {
        "status": "ok",
        "version": __version__,
        "uptime_seconds": round(time.time() - ctx.started_at, 3),
        "in_flight": ctx.in_flight,
    }


@get("/v1/models", sync_to_thread=False)
def models(ctx: NamedDependency[AppContext]) -> dict[str, Any]:
    data = [
        {"id": f"{name}/{config.model}", "object": "model", "created": 0, "owned_by": name}
        for name, config in ctx.router.configs.items()
        if config.configured
    ]
    return {"object": "list", "data": data}


@get("/metrics", sync_to_thread=False)
def metrics(ctx: NamedDependency[AppContext]) -> Response[str]:
    return Response(ctx.metrics.render(ctx.in_flight), media_type="text/plain; version=0.0.4; charset=utf-8")


@get("/diagnostics/providers", sync_to_thread=False)
def diagnostics_providers(ctx: NamedDependency[AppContext]) -> dict[str, Any]:
    return {"providers": ctx.diagnostics.providers()}


@get("/diagnostics/requests", sync_to_thread=False)
def diagnostics_requests(ctx: NamedDependency[AppContext]) -> dict[str, Any]:
    return ctx.diagnostics.requests()
