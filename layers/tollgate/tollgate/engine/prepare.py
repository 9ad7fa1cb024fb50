"""Before any upstream call, whatever the wire format: the kill switch for tools, the loop's checks, the
route (filtered by the key's allow-list), the booking, and the session's history.

Endpoints differ only in how they parse the body into a ``ChatCompletionRequest`` and how they render the
answer; this is the one copy of what comes between parsing and the attempt step (``engine.exchange``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import containers
from ..audit import sha256_hex
from ..context import AppContext
from ..errors import Forbidden
from ..keys import Principal
from ..ledger import Booking
from ..lifecycle import RequestTracker
from ..loop import LoopSpec
from ..schemas.openai import ChatCompletionRequest, Message
from .route import Route


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request ready for its exchange (or its agent loop): the route, the booking, the final request."""

    route: Route
    booking: Booking
    request: ChatCompletionRequest


async def prepare(
    ctx: AppContext, tracker: RequestTracker, principal: Principal, chat: ChatCompletionRequest, raw: bytes
) -> Prepared:
    """Route, keep the candidates the key may use (403 when none), book, load the session; a 404 for a
    code execution container the request names that is not its tenant's (``tollgate.containers``).

    ``TOLLGATE_TOOL_CALLING=0`` strips ``tools`` and ``tool_choice`` here. Nothing is reserved yet: the
    exchange reserves for the request, an agent loop for each of its turns."""
    chat = without_tools(chat) if not ctx.settings.tool_calling else chat
    LoopSpec.from_request(chat, ctx.settings.loop_max_turns_cap)  # a 400 before anything is booked
    if named := chat.named_containers():  # code execution containers: the tenant's own only
        await containers.check(ctx.store, principal.tenant, named)
    route = allowed_route(ctx.router.route(chat), principal)
    tracker.call = ctx.router.call(route.candidates()[0], chat, tracker.request_id)
    booking = tracker.booking = ctx.ledger.book(principal, chat.pool, sha256_hex(raw))
    if chat.session_id:
        chat = await with_history(ctx, booking, chat, chat.session_id)
    if chat.loop_mode is not None:
        await ctx.ledger.check_pool(booking)  # a 403 before the loop starts; its turns reserve
    return Prepared(route, booking, chat)


def allowed_route(route: Route, principal: Principal) -> Route:
    """The candidates the key's allow-list admits (by provider and upstream model, or public name)."""
    allowed = route.only(lambda c: principal.allows(c.provider, c.model, public_name=c.public_name))
    if not allowed.groups:
        first = route.candidates()[0]
        name = route.public_name or f"{first.provider}/{first.model}"
        raise Forbidden(f"this key may not use model {name}", param="model")
    return allowed


def without_tools(chat: ChatCompletionRequest) -> ChatCompletionRequest:
    """The kill switch for clients that misbehave on ``tool_calls``."""
    if chat.tools is None and chat.tool_choice is None:
        return chat
    stripped = chat.model_copy(update={"tools": None, "tool_choice": None})
    if stripped.model_extra is not None:
        stripped.model_extra.pop("parallel_tool_calls", None)  # upstreams refuse it without tools
    return stripped


async def with_history(
    ctx: AppContext, booking: Booking, chat: ChatCompletionRequest, session_id: str
) -> ChatCompletionRequest:
    """Stored turns go after this request's system messages and before its new turns."""
    history = await ctx.ledger.load_history(booking, session_id)
    system = [m for m in chat.messages if m.role in ("system", "developer")]
    turns = [m for m in chat.messages if m.role not in ("system", "developer")]
    booking.new_messages = [m.model_dump(exclude_none=True) for m in turns]
    messages: list[Message] = system + history + turns
    return chat.model_copy(update={"messages": messages})
