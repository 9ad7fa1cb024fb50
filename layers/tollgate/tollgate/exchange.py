"""One request's way through the gateway, independent of its wire format (chat, messages, completions):
route, check the model, book (session, budget), then collect or stream the adapter's chunks.

Endpoints differ only in how they parse the body into a ``ChatCompletionRequest`` and how they render
the answer (a JSON body, or SSE frames through a ``StreamEncoder``); this is the one copy of the rest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from .audit import sha256_hex
from .context import AppContext
from .keys import Principal
from .ledger import Booking
from .lifecycle import Outcome, RequestTracker
from .loop import LoopSpec
from .providers.base import ChatCall, Chunk
from .schemas.openai import ChatCompletionRequest
from .streaming import ResponseBuilder


async def prepare(
    ctx: AppContext, tracker: RequestTracker, principal: Principal, chat: ChatCompletionRequest, raw: bytes
) -> ChatCall:
    """Route, check the model, load the session and reserve the budget (429 before any upstream call).

    ``TOLLGATE_TOOL_CALLING=0`` strips ``tools`` and ``tool_choice`` here. An agent loop (``loop_mode``)
    reserves nothing here: each of its turns reserves for itself (``loop_stream.LedgerTurns``)."""
    chat = without_tools(chat) if not ctx.settings.tool_calling else chat
    LoopSpec.from_request(chat, ctx.settings.loop_max_turns_cap)  # a 400 before anything is booked
    call = await ctx.route(ctx.router.plan(chat, tracker.request_id))
    principal.check_model(call.provider, call.model)
    booking = tracker.booking = ctx.ledger.book(principal, chat.pool, sha256_hex(raw))
    if chat.session_id:
        call = await with_history(ctx, booking, call, chat.session_id)
    tracker.call = call
    if chat.loop_mode is not None:
        await ctx.ledger.check_pool(booking)  # a 403 before the loop starts; its turns reserve
        tracker.per_turn = True
        return call
    await ctx.ledger.reserve(booking, call)
    return call


def without_tools(chat: ChatCompletionRequest) -> ChatCompletionRequest:
    """The kill switch for clients that misbehave on ``tool_calls``."""
    if chat.tools is None and chat.tool_choice is None:
        return chat
    stripped = chat.model_copy(update={"tools": None, "tool_choice": None})
    if stripped.model_extra is not None:
        stripped.model_extra.pop("parallel_tool_calls", None)  # upstreams refuse it without tools
    return stripped


async def with_history(ctx: AppContext, booking: Booking, call: ChatCall, session_id: str) -> ChatCall:
    """Stored turns go after this request's system messages and before its new turns."""
    history = await ctx.ledger.load_history(booking, session_id)
    messages = call.request.messages
    system = [m for m in messages if m.role in ("system", "developer")]
    turns = [m for m in messages if m.role not in ("system", "developer")]
    booking.new_messages = [m.model_dump(exclude_none=True) for m in turns]
    request = call.request.model_copy(update={"messages": system + history + turns})
    return ChatCall(call.request_id, call.provider, call.model, call.max_tokens, request)


async def first_chunk(chunks: AsyncIterator[Chunk]) -> Chunk | None:
    """Wait for the upstream's first chunk, so failures before any byte get a real HTTP status."""
    try:
        return await anext(chunks)
    except StopAsyncIteration:
        return None


async def collect(
    call: ChatCall, chunks: AsyncIterator[Chunk], tracker: RequestTracker
) -> tuple[ResponseBuilder, Outcome, dict[str, Any]]:
    """A whole (non-streamed) answer, finished (settled, audited) before the caller renders it."""
    builder = ResponseBuilder(call)
    async for chunk in chunks:
        builder.add(chunk)
    outcome = builder.outcome()
    extension = await tracker.finish(outcome)
    return builder, outcome, extension
