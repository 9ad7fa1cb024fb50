"""The OpenAI Responses API as tollgate serves it (``POST /v1/responses``), over every provider.

A request is parsed into the internal chat request (``responses_request``), bound to the caller after
authentication (``bind``: the conversation of ``previous_response_id``, the check that every tool result
answers a call, and, with ``store: true``, a hook that keeps the answer), and goes through the same
pipeline as every model endpoint. The answer is rendered as a ``response`` object
(``responses_output``) or streamed as Responses events (``responses_stream``). Errors keep the OpenAI
error shape, which is what the Responses API uses too.

Every provider, OpenAI included, is served through this translation; reasoning items a client sends back
are dropped (no upstream behind the chat translation can read them).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .. import timeutil, tool_fees
from ..errors import BadRequest, NotFound
from ..lifecycle import Outcome
from ..schemas.openai import ChatCompletionRequest, Message
from ..schemas.responses import ResponsesChatRequest, ResponsesExtras
from ..store.base import StoredResponse
from ..streaming import ResponseBuilder
from ..tool_fees import ToolUses
from . import compaction, search_bound
from .responses_output import output_items, response_id, response_object, status_of, with_call_ids
from .responses_request import (
    ResponsesRequest,
    check_tool_results,
    convert_tool_choice,
    convert_tools,
    input_items,
    input_messages,
)
from .responses_stream import extras_of

if TYPE_CHECKING:
    from ..context import AppContext
    from ..keys import Principal
    from ..lifecycle import RequestTracker

logger = logging.getLogger("tollgate.wire.responses")

EXTENSIONS = frozenset({"provider", "pool"})
# request fields the response object repeats, with OpenAI's defaults
_ECHO_DEFAULTS: dict[str, Any] = {
    "tools": [],
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "max_output_tokens": None,
    "temperature": None,
    "top_p": None,
    "reasoning": None,
    "text": {"format": {"type": "text"}},
    "metadata": {},
    "user": None,
}


def _echo(request: ResponsesRequest) -> dict[str, Any]:
    given = request.model_dump(include=set(_ECHO_DEFAULTS), exclude_none=True)
    return _ECHO_DEFAULTS | given | {"truncation": "disabled"}


def _response_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    """``text.format`` -> chat's ``response_format`` (json_schema or json_object; plain text: none)."""
    spec = (text or {}).get("format") or {}
    if not isinstance(spec, dict):
        raise BadRequest("text.format must be an object", param="text.format")
    kind = spec.get("type")
    if kind == "json_schema":
        if not isinstance(spec.get("schema"), dict):
            raise BadRequest("text.format.schema is required for json_schema", param="text.format.schema")
        fields = ("name", "schema", "strict", "description")
        schema = {k: spec[k] for k in fields if spec.get(k) is not None}
        return {"type": "json_schema", "json_schema": {"name": "response", **schema}}
    if kind == "json_object":
        return {"type": "json_object"}
    return None


def native_body(
    payload: dict[str, Any] | None, request: ResponsesRequest, kinds: set[str] | None = None
) -> dict[str, Any] | None:
    """The body as OpenAI's own /v1/responses gets it (tollgate's extensions removed); None where the
    request needs tollgate's translation (the conversation of ``previous_response_id`` is tollgate's).
    With a hosted tool billed per call (``tool_fees``) among the tools offered (``tools``, and those a
    ``tool_search_output`` item loads; ``kinds``, their fee kinds, when the caller has them already),
    ``max_tool_calls`` bounds the calls whose fee the budgets hold: 10 when the client sent none, a 400
    outside 1-1,000."""
    if payload is None or request.previous_response_id:
        return None
    body = {k: v for k, v in payload.items() if k not in EXTENSIONS}
    if kinds is None:
        kinds = tool_fees.openai_kinds(request.offered_tools())
    if kinds:
        body["max_tool_calls"] = search_bound.bounded(body.get("max_tool_calls"), "max_tool_calls")
    return body


def _sampling(request: ResponsesRequest, has_tools: bool) -> dict[str, Any]:
    """The chat fields for how to answer (not what): cap, sampling, format, and OpenAI pass-through."""
    fields: dict[str, Any] = {
        "stream": request.stream,
        "max_tokens": request.max_output_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "response_format": _response_format(request.text),
        "user": request.user,
    }
    if has_tools and request.parallel_tool_calls is not None:
        fields["parallel_tool_calls"] = request.parallel_tool_calls  # an OpenAI pass-through field
    effort = (request.reasoning or {}).get("effort")
    if isinstance(effort, str):
        fields["reasoning_effort"] = effort
    return fields


def to_chat(
    request: ResponsesRequest, payload: dict[str, Any] | None = None, *, compact: bool = False
) -> ResponsesChatRequest:
    """A validated Responses request (and its raw ``payload``, for a native upstream) -> the internal chat
    request (the conversation so far is added by ``bind``, once the caller is known). ``compact`` (or a
    ``compaction_trigger`` item in ``input``) asks for the conversation's summary (``wire.compaction``)."""
    if request.background:
        raise BadRequest("background responses are not supported", param="background")
    tools, origins = convert_tools(request.tools or [])
    messages = input_messages(request, origins)
    if not messages and not request.previous_response_id:
        raise BadRequest("input must hold at least one message", param="input")
    if request.instructions:
        messages.insert(0, Message(role="system", content=request.instructions))
    compacting = compact or compaction.requested(request.input)
    tool_choice = convert_tool_choice(request.tool_choice, origins)
    if compacting:
        messages.append(Message(role="user", content=compaction.COMPACTION_PROMPT))
        tool_choice = "none" if tools else None
    kinds = tool_fees.openai_kinds(request.offered_tools())  # the fee kinds the native answer may bill
    native = native_body(payload, request, kinds)
    extras = ResponsesExtras(
        tools=origins,
        store=request.store,
        previous_response_id=request.previous_response_id,
        instructions=request.instructions,
        input_items=input_items(request),
        echo=_echo(request),
        native=native,
        compaction=compacting,
        # the billed hosted tool calls the native answer may run: their fee is held with the tokens
        hosted=ToolUses.of(native["max_tool_calls"], kinds) if native and kinds else None,
    )
    fields: dict[str, Any] = {
        "model": request.model,
        # a continuation may send nothing new but tool results and reasoning: ``bind`` drops the filler
        "messages": messages or [Message(role="user", content="")],
        "tools": tools or None,
        "tool_choice": tool_choice,
        "provider": request.provider,
        "pool": request.pool,
        "responses": extras,
    }
    return ResponsesChatRequest.model_validate(fields | _sampling(request, bool(tools)))


def _own_messages(chat: ResponsesChatRequest) -> list[Message]:
    """This request's input messages (the instructions apart: they do not carry over)."""
    own = chat.messages[1:] if chat.responses.instructions else chat.messages
    return [m for m in own if m.role != "user" or m.content != ""]


async def bind(
    ctx: AppContext, tracker: RequestTracker, principal: Principal, chat: ChatCompletionRequest
) -> ChatCompletionRequest:
    """The stored conversation of ``previous_response_id`` (this tenant's only: another's is a 404),
    the tool-result check, and with ``store`` the hook that keeps the answer."""
    if not isinstance(chat, ResponsesChatRequest):
        return chat
    extras = chat.responses
    history: list[Message] = []
    if extras.previous_response_id:
        stored = await ctx.store.get_response(principal.tenant, extras.previous_response_id)
        if stored is None:
            raise NotFound(
                f"previous response with id {extras.previous_response_id!r} not found",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        history = [Message.model_validate(m) for m in stored.body.get("conversation") or []]
    own = _own_messages(chat)
    instructions = chat.messages[:1] if extras.instructions else []
    messages = [*instructions, *history, *own]
    check_tool_results(messages)
    if not any(m.role != "system" for m in messages):
        raise BadRequest("input must hold at least one message", param="input")
    if extras.store:
        conversation = [m.model_dump(exclude_none=True) for m in [*history, *own]]
        tracker.after_finish = _keeper(ctx, principal.tenant, tracker.request_id, chat, conversation)
    return chat.model_copy(update={"messages": messages})


def _keeper(
    ctx: AppContext, tenant: str, request_id: str, chat: ResponsesChatRequest, conversation: list[Any]
) -> Callable[[Outcome], Awaitable[None]]:
    """Keeps a finished answer (what ``GET /v1/responses/{id}`` shows, its input items, and the
    conversation a later ``previous_response_id`` continues); only an answer that completed."""

    async def keep(outcome: Outcome) -> None:
        if outcome.status != "ok":
            return
        extras = chat.responses
        answer = with_call_ids(outcome.answer or {"role": "assistant", "content": ""}, request_id)
        model = outcome.model or chat.model or ""
        output = output_items(answer, request_id, extras)
        body = response_object(
            request_id, model, extras, status="completed", output=output, usage=outcome.usage
        )
        items = [{"id": f"in_{request_id}_{i}", **item} for i, item in enumerate(extras.input_items)]
        record = {"response": body, "input_items": items, "conversation": [*conversation, answer]}
        now = timeutil.now_str()
        expires = timeutil.after(ctx.settings.response_ttl_seconds)
        await ctx.store.put_response(StoredResponse(tenant, response_id(request_id), record, now, expires))

    return keep


def render(builder: ResponseBuilder, outcome: Outcome, extension: dict[str, Any]) -> dict[str, Any]:
    extras = extras_of(builder.call)
    request_id = builder.call.request_id
    if builder.native_response is not None:  # OpenAI's own answer, under tollgate's id
        native = {**builder.native_response, "id": response_id(request_id)}
        return native | ({"tollgate": extension} if extension else {})
    status, incomplete = status_of(builder.finish)
    output = output_items(builder.message(), request_id, extras)
    body = response_object(
        request_id,
        builder.model,
        extras,
        status=status,
        output=output,
        usage=outcome.usage or builder.final_usage(),
    )
    body["incomplete_details"] = incomplete
    if extension:
        body["tollgate"] = extension
    return body
