"""The HTTP side of an exchange, shared by every model endpoint: tracker, parse, prepare, then a JSON
response or an SSE stream; every failure finishes the tracker exactly once. The caller (key, request id,
admission) is resolved before the handler runs (``api.caller``)."""

from __future__ import annotations

from typing import Any

import anyio
import msgspec
from litestar import Request, Response
from litestar.response import Stream

from ..context import AppContext
from ..engine.exchange import Exchange
from ..engine.prepare import prepare
from ..errors import TollgateError
from ..lifecycle import Outcome, RequestTracker
from ..streaming import collect, sse_stream
from ..wire import WireFormat
from .caller import Caller, new_request_id
from .headers import SSE_HEADERS, response_headers
from .loop import serve_loop

__all__ = ["begin", "finish_failed", "new_request_id", "read_body", "serve"]


def begin(request: Request[Any, Any, Any], ctx: AppContext, caller: Caller) -> RequestTracker:
    """The request's tracker, before anything can fail (the caller was resolved before the handler)."""
    tracker = RequestTracker(ctx, caller.request_id)
    # read by the error handler: the provider once the tracker has a call
    request.scope.setdefault("state", {})["tracker"] = tracker
    return tracker


async def read_body(request: Request[Any, Any, Any], ctx: AppContext) -> bytes:
    """The raw body; a routing config kept in SSM is refreshed here when it is due."""
    await ctx.refresh_routing()
    return await request.body()


async def finish_failed(tracker: RequestTracker, exc: BaseException) -> None:
    """Finish a request that failed before its answer was rendered (shielded: also on cancellation)."""
    if isinstance(exc, TollgateError):
        outcome = Outcome.failed(exc)
    else:
        status = "cancelled" if isinstance(exc, anyio.get_cancelled_exc_class()) else "internal_error"
        outcome = Outcome(status=status)
    with anyio.CancelScope(shield=True):
        await tracker.finish(outcome)


async def serve(
    request: Request[Any, Any, Any], ctx: AppContext, caller: Caller, wire: WireFormat
) -> Response[Any]:
    tracker = begin(request, ctx, caller)
    principal = caller.principal
    try:
        raw = await read_body(request, ctx)
        chat = wire.parse(raw)
        if wire.bind is not None:
            chat = await wire.bind(ctx, tracker, principal, chat)
        prepared = await prepare(ctx, tracker, principal, chat, raw)
        prepared.booking.admission = caller.admission  # TPM counts where the ledger reserves
        if chat.loop_mode is not None:
            return await serve_loop(ctx, tracker, prepared, wire, request.receive)
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
