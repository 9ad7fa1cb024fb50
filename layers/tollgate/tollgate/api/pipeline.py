"""The HTTP side of an exchange, shared by every model endpoint: request id, tracker, auth, parse,
prepare, then a JSON response or an SSE stream; every failure finishes the tracker exactly once."""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import msgspec
from litestar import Request, Response
from litestar.response import Stream

from ..context import AppContext
from ..engine.exchange import Exchange
from ..engine.prepare import prepare
from ..errors import TollgateError
from ..keys import Principal
from ..lifecycle import Outcome, RequestTracker
from ..streaming import collect, sse_stream
from ..wire import WireFormat
from .auth import authenticate
from .gateway_context import GatewayContext, check_edge_tenant, gateway_context
from .headers import SSE_HEADERS, response_headers
from .loop import serve_loop


def new_request_id() -> str:
    return uuid.uuid4().hex


def begin(request: Request[Any, Any, Any], ctx: AppContext) -> tuple[GatewayContext, RequestTracker]:
    """The request's id (API Gateway's when forwarded) and its tracker, before anything can fail."""
    edge = gateway_context(request)
    request_id = edge.request_id or new_request_id()
    tracker = RequestTracker(ctx, request_id)
    # read by the error handler: the request id, and the provider once the tracker has a call
    request.scope.setdefault("state", {}).update(request_id=request_id, tracker=tracker)
    return edge, tracker


async def caller(
    request: Request[Any, Any, Any], ctx: AppContext, edge: GatewayContext, tracker: RequestTracker
) -> tuple[Principal, bytes]:
    """Who calls (401 before any body is read) and the raw body; a routing config kept in SSM is
    refreshed here when it is due."""
    principal = await authenticate(request, ctx)
    check_edge_tenant(edge, principal, tracker.request_id)
    await ctx.refresh_routing()
    return principal, await request.body()


async def finish_failed(tracker: RequestTracker, exc: BaseException) -> None:
    """Finish a request that failed before its answer was rendered (shielded: also on cancellation)."""
    if isinstance(exc, TollgateError):
        outcome = Outcome.failed(exc)
    else:
        status = "cancelled" if isinstance(exc, anyio.get_cancelled_exc_class()) else "internal_error"
        outcome = Outcome(status=status)
    with anyio.CancelScope(shield=True):
        await tracker.finish(outcome)


async def serve(request: Request[Any, Any, Any], ctx: AppContext, wire: WireFormat) -> Response[Any]:
    edge, tracker = begin(request, ctx)
    try:
        principal, raw = await caller(request, ctx, edge, tracker)
        chat = wire.parse(raw)
        if wire.bind is not None:
            chat = await wire.bind(ctx, tracker, principal, chat)
        prepared = await prepare(ctx, tracker, principal, chat, raw)
        if chat.loop_mode is not None:
            return await serve_loop(ctx, tracker, prepared, wire)
        exchange = tracker.exchange = Exchange(
            ctx, prepared.booking, prepared.route, prepared.request, tracker.request_id
        )
        await exchange.reserve()
        first, chunks = await exchange.open()
        call = tracker.call = exchange.served
        if call.stream:
            body = sse_stream(call, first, chunks, tracker, wire.encoder(call))
            headers = response_headers(tracker.request_id, exchange.served_by())
            return Stream(body, media_type="text/event-stream", headers=headers | SSE_HEADERS)
        builder, outcome, extension = await collect(call, first, chunks, tracker)
        headers = response_headers(tracker.request_id, extension)
        content = msgspec.json.encode(wire.render(builder, outcome, extension))
        return Response(content, media_type="application/json", headers=headers)
    except BaseException as exc:
        await finish_failed(tracker, exc)
        raise
