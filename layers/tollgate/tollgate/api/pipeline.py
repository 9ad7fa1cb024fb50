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
from ..lifecycle import Outcome, RequestTracker
from ..providers.base import ChatCall
from ..schemas.openai import ChatCompletionRequest
from ..streaming import ResponseBuilder, StreamEncoder, sse_stream
from .auth import authenticate
from .gateway_context import check_edge_tenant, gateway_context
from .loop import serve_loop

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class WireFormat:
    """What one endpoint contributes: parsing into a chat request, and rendering the answer."""

    parse: Callable[[bytes], ChatCompletionRequest]
    render: Callable[[ResponseBuilder, Outcome, dict[str, Any]], dict[str, Any]]
    encoder: Callable[[ChatCall], StreamEncoder]


async def serve(request: Request[Any, Any, Any], ctx: AppContext, wire: WireFormat) -> Response[Any]:
    edge = gateway_context(request)
    request_id = edge.request_id or new_request_id()
    request.scope.setdefault("state", {})["request_id"] = request_id
    tracker = RequestTracker(ctx, request_id)
    try:
        principal = await authenticate(request, ctx)
        check_edge_tenant(edge, principal, request_id)
        raw = await request.body()
        call = await exchange.prepare(ctx, tracker, principal, wire.parse(raw), raw)
        headers = {"x-tollgate-request-id": request_id, "x-tollgate-provider": call.provider}
        if tracker.per_turn:
            return await serve_loop(ctx, tracker, call, wire, headers)
        chunks = ctx.provider(call.provider).chat(call)
        if call.stream:
            first = await exchange.first_chunk(chunks)
            body = sse_stream(call, first, chunks, tracker, wire.encoder(call))
            return Stream(body, media_type="text/event-stream", headers=headers | SSE_HEADERS)
        builder, outcome, extension = await exchange.collect(call, chunks, tracker)
        if "cost_usd" in extension:
            headers["x-tollgate-cost-usd"] = extension["cost_usd"]
        content = msgspec.json.encode(wire.render(builder, outcome, extension))
        return Response(content, media_type="application/json", headers=headers)
    except TollgateError as exc:
        with anyio.CancelScope(shield=True):
            await tracker.finish(Outcome.failed(exc))
        raise
    except BaseException as exc:
        status = "cancelled" if isinstance(exc, anyio.get_cancelled_exc_class()) else "internal_error"
        with anyio.CancelScope(shield=True):
            await tracker.finish(Outcome(status=status))
        raise
