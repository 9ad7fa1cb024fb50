"""POST /v1/chat/completions."""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any

import anyio
import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.response import Stream

from ..audit import sha256_hex
from ..context import AppContext
from ..errors import TollgateError
from ..keys import Principal
from ..ledger import Booking
from ..lifecycle import Outcome, RequestTracker
from ..logs import log_event
from ..providers.base import ChatCall, Chunk
from ..schemas.openai import ChatCompletionRequest
from ..streaming import ResponseBuilder, sse_stream
from .auth import authenticate
from .body import decode_json_object, validate
from .errors import error_payload

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# The Lambda Web Adapter forwards the API Gateway event's requestContext as JSON in this header.
REQUEST_CONTEXT_HEADER = "x-amzn-request-context"
TRUST_GATEWAY_CONTEXT = "trust_gateway_context"  # app state flag, set by create_app (on Lambda)
_REQUEST_ID = re.compile(r"[A-Za-z0-9-]{8,64}")

logger = logging.getLogger("tollgate.request")


@dataclass(frozen=True, slots=True)
class GatewayContext:
    """What the app uses of API Gateway's request context: its request id and the authorizer's tenant."""

    request_id: str | None = None
    tenant: str | None = None


def new_request_id() -> str:
    return uuid.uuid4().hex


def parse_gateway_context(raw: str | None) -> GatewayContext:
    """The forwarded request context; empty when absent or malformed (never an error)."""
    try:
        data = msgspec.json.decode(raw) if raw else None
    except msgspec.DecodeError:
        data = None
    if not isinstance(data, dict):
        return GatewayContext()
    request_id = data.get("requestId")
    authorizer = data.get("authorizer")
    tenant = authorizer.get("tenant") if isinstance(authorizer, dict) else None
    return GatewayContext(
        request_id=request_id if isinstance(request_id, str) and _REQUEST_ID.fullmatch(request_id) else None,
        tenant=tenant if isinstance(tenant, str) else None,
    )


def gateway_context(request: Request[Any, Any, Any]) -> GatewayContext:
    """Read only where the adapter sets the header (a direct client could forge it anywhere else)."""
    if not request.app.state.get(TRUST_GATEWAY_CONTEXT, False):
        return GatewayContext()
    return parse_gateway_context(request.headers.get(REQUEST_CONTEXT_HEADER))


def check_edge_tenant(edge: GatewayContext, principal: Principal, request_id: str) -> None:
    """The app's own key check decides; a disagreeing edge authorizer is worth a warning."""
    if edge.tenant is not None and edge.tenant != principal.tenant:
        log_event(
            logger,
            logging.WARNING,
            "edge_tenant_mismatch",
            request_id=request_id,
            tenant=principal.tenant,
            edge_tenant=edge.tenant,
        )


@post("/v1/chat/completions", status_code=200)
async def chat_completions(
    request: Request[Any, Any, Any], ctx: NamedDependency[AppContext]
) -> Response[Any]:
    edge = gateway_context(request)
    request_id = edge.request_id or new_request_id()
    request.scope.setdefault("state", {})["request_id"] = request_id
    tracker = RequestTracker(ctx, request_id)
    try:
        call = await _admit(request, ctx, tracker, edge)
        chunks = ctx.provider(call.provider).chat(call)
        headers = {"x-tollgate-request-id": request_id, "x-tollgate-provider": call.provider}
        if call.stream:
            first = await _first_chunk(chunks)
            body = sse_stream(call, first, chunks, tracker, error_payload)
            return Stream(body, media_type="text/event-stream", headers=headers | SSE_HEADERS)
        return await _complete(call, chunks, tracker, headers)
    except TollgateError as exc:
        with anyio.CancelScope(shield=True):
            await tracker.finish(Outcome.failed(exc))
        raise
    except BaseException as exc:
        status = "cancelled" if isinstance(exc, anyio.get_cancelled_exc_class()) else "internal_error"
        with anyio.CancelScope(shield=True):
            await tracker.finish(Outcome(status=status))
        raise


async def _admit(
    request: Request[Any, Any, Any], ctx: AppContext, tracker: RequestTracker, edge: GatewayContext
) -> ChatCall:
    """Authenticate, validate, route, check the model, load the session and reserve the budget."""
    principal = await authenticate(request, ctx)
    check_edge_tenant(edge, principal, tracker.request_id)
    raw = await request.body()
    chat = validate(ChatCompletionRequest, decode_json_object(raw))
    call = await ctx.route(ctx.router.plan(chat, tracker.request_id))
    principal.check_model(call.provider, call.model)
    booking = tracker.booking = Booking(
        principal, pool=chat.pool or principal.pool, request_sha256=sha256_hex(raw)
    )
    if chat.session_id:
        call = await _with_history(ctx, booking, call, chat.session_id)
    tracker.call = call
    await ctx.ledger.reserve(booking, call)
    return call


async def _with_history(ctx: AppContext, booking: Booking, call: ChatCall, session_id: str) -> ChatCall:
    """Stored turns go after this request's system messages and before its new turns."""
    history = await ctx.ledger.load_history(booking, session_id)
    messages = call.request.messages
    system = [m for m in messages if m.role in ("system", "developer")]
    turns = [m for m in messages if m.role not in ("system", "developer")]
    booking.new_messages = [m.model_dump(exclude_none=True) for m in turns]
    request = call.request.model_copy(update={"messages": system + history + turns})
    return ChatCall(call.request_id, call.provider, call.model, call.max_tokens, request)


async def _first_chunk(chunks: Any) -> Chunk | None:
    """Wait for the upstream's first chunk, so failures before any byte get a real HTTP status."""
    try:
        first: Chunk = await anext(chunks)
    except StopAsyncIteration:
        return None
    return first


async def _complete(
    call: ChatCall, chunks: Any, tracker: RequestTracker, headers: dict[str, str]
) -> Response[Any]:
    builder = ResponseBuilder(call)
    async for chunk in chunks:
        builder.add(chunk)
    outcome = builder.outcome()
    extension = await tracker.finish(outcome)
    if "cost_usd" in extension:
        headers = headers | {"x-tollgate-cost-usd": extension["cost_usd"]}
    content = msgspec.json.encode(builder.completion(outcome.usage or builder.final_usage(), extension))
    return Response(content, media_type="application/json", headers=headers)
