"""The HTTP side of an exchange, shared by every model endpoint: request id, tracker, auth, parse,
prepare, then a JSON response or an SSE stream; every failure finishes the tracker exactly once."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import msgspec
from litestar import Request, Response
from litestar.response import Stream

from .. import exchange
from ..context import AppContext
from ..errors import TollgateError
from ..keys import Principal
from ..lifecycle import Outcome, RequestTracker
from ..providers.base import ChatCall
from ..schemas.openai import ChatCompletionRequest
from ..streaming import ResponseBuilder, StreamEncoder, sse_stream
from .auth import authenticate
from .gateway_context import GatewayContext, check_edge_tenant, gateway_context
from .headers import SSE_HEADERS, response_headers
from .loop import serve_loop


def new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class WireFormat:
    """What one endpoint contributes: parsing into a chat request, and rendering the answer."""

    parse: Callable[[bytes], ChatCompletionRequest]
    render: Callable[[ResponseBuilder, Outcome, dict[str, Any]], dict[str, Any]]
    encoder: Callable[[ChatCall], StreamEncoder]


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
    """Who calls (401 before any body is read) and the raw body."""
    principal = await authenticate(request, ctx)
    check_edge_tenant(edge, principal, tracker.request_id)
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
        call = await exchange.prepare(ctx, tracker, principal, wire.parse(raw), raw)
        headers = response_headers(tracker.request_id, call.provider)
        if tracker.per_turn:
            return await serve_loop(ctx, tracker, call, wire, headers)
        chunks = ctx.provider(call.provider).chat(call)
        if call.stream:
            first = await exchange.first_chunk(chunks)
            body = sse_stream(call, first, chunks, tracker, wire.encoder(call))
            return Stream(body, media_type="text/event-stream", headers=headers | SSE_HEADERS)
        builder, outcome, extension = await exchange.collect(call, chunks, tracker)
        headers = response_headers(tracker.request_id, call.provider, extension)
        content = msgspec.json.encode(wire.render(builder, outcome, extension))
        return Response(content, media_type="application/json", headers=headers)
    except BaseException as exc:
        await finish_failed(tracker, exc)
        raise
