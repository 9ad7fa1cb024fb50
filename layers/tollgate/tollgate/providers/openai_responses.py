"""OpenAI's own ``/v1/responses``: a Responses API request served by the ``openai`` provider natively.

The client's body goes upstream as it is (reasoning items, encrypted content, namespace and hosted tools
included) with three things set by tollgate: the upstream model, ``max_output_tokens`` (the cap the budget
reserved for) and ``stream``. A client may not choose a dearer price tier, another model or a larger
output than the reservation bounds (``passthrough.RESPONSES``): ``service_tier`` and the other unsafe
pass-through fields are dropped (named at DEBUG), a stored ``prompt`` or ``conversation`` is a 400 naming
it. Each upstream event comes back twice: as a ``NativeEvent`` that the Responses encoder passes on, and
as the typed chunks (text, tool calls, usage, finish) that the collector uses for accounting, audit and
the stored answer. A failed response, streamed or whole, raises after the usage it reports (the failed
request is charged what OpenAI counted). The answer's ``web_search_call`` and ``file_search_call``
items are the hosted searches it ran, billed per call (``tool_fees``; ``max_tool_calls``, set by
``wire.responses.native_body``, bounds them). Pure functions; the I/O is ``HTTPProvider``'s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from .. import tool_fees
from ..errors import UpstreamError
from .base import (
    ChatCall,
    Chunk,
    Finish,
    FinishReason,
    NativeEvent,
    ResponseMeta,
    TextDelta,
    ToolCallDelta,
    Usage,
    token_count,
)
from .http_errors import decode_upstream_json
from .passthrough import RESPONSES
from .sse import SSEvent

_CALL_ITEMS = frozenset({"function_call", "custom_tool_call"})
_FUNCTION_TOOLS = frozenset({"function", "custom", "namespace"})
_TERMINAL = frozenset({"response.completed", "response.incomplete"})


def to_upstream(call: ChatCall) -> dict[str, Any]:
    native = call.native_responses
    if native is None:
        raise ValueError("not a native Responses API call")
    body = RESPONSES.screen(native, call.provider)  # no dearer service tier, no other cap or model
    body.update(model=call.model, max_output_tokens=call.max_tokens, stream=call.stream)
    stripped = call.request.tools is None and any(
        isinstance(t, dict) and t.get("type") in _FUNCTION_TOOLS for t in body.get("tools") or []
    )
    if stripped:  # the tool-calling kill switch (TOLLGATE_TOOL_CALLING=0) took the client's tools away
        for name in ("tools", "tool_choice", "parallel_tool_calls"):
            body.pop(name, None)
    return body


def _usage(response: dict[str, Any]) -> Usage | None:
    usage = response.get("usage")
    if not isinstance(usage, dict):
        return None
    inputs = usage.get("input_tokens_details")
    outputs = usage.get("output_tokens_details")
    inputs = inputs if isinstance(inputs, dict) else {}
    outputs = outputs if isinstance(outputs, dict) else {}
    return Usage(
        token_count(usage.get("input_tokens")),
        token_count(usage.get("output_tokens")),
        cached_tokens=token_count(inputs.get("cached_tokens")),
        reasoning_tokens=token_count(outputs.get("reasoning_tokens")),
        cache_write_tokens=token_count(inputs.get("cache_write_tokens")),
    ).with_hosted(*hosted_calls(response.get("output"), response))


def hosted_calls(output: object, response: dict[str, Any]) -> tuple[int, int, int]:
    """The billed hosted calls among an answer's ``output`` items (web searches, preview searches, file
    searches: ``Usage.with_hosted``'s arguments); ``response`` (or
    the request's body) holds the tools, which tell a preview search from a plain one. Also what a stream
    that broke off before its final event is charged for the items it passed on (``streaming``)."""
    calls: dict[str, int] = {}
    for item in output if isinstance(output, list) else []:
        if isinstance(item, dict) and isinstance(kind := item.get("type"), str):
            calls[kind] = calls.get(kind, 0) + 1
    searches, preview = calls.get("web_search_call", 0), _preview_search(response)
    return (0 if preview else searches), (searches if preview else 0), calls.get("file_search_call", 0)


def _preview_search(response: dict[str, Any]) -> bool:
    """Whether the answer's web searches are billed as ``web_search_preview`` ones (their own fee, the
    dearer on OpenAI's models): the response repeats the request's tools; with both kinds there, which one
    ran is not told apart, so the preview's fee is charged (the client chose both, and could steer the
    model to the dearer one)."""
    return "web_search_preview" in tool_fees.openai_kinds(response.get("tools"))


def _finish(response: dict[str, Any], called: bool) -> Finish:
    reason = (response.get("incomplete_details") or {}).get("reason")
    finish: FinishReason = "tool_calls" if called else "stop"
    if reason == "max_output_tokens":
        finish = "length"
    elif reason == "content_filter":
        finish = "content_filter"
    return Finish(finish)


def _final(response: dict[str, Any]) -> list[Chunk]:
    called = any(item.get("type") in _CALL_ITEMS for item in response.get("output") or [])
    usage = _usage(response)
    return [_finish(response, called), *([usage] if usage else [])]


def _failure(payload: dict[str, Any], where: str = " mid-stream") -> UpstreamError:
    error = payload.get("error") or (payload.get("response") or {}).get("error") or {}
    message = error.get("message") if isinstance(error, dict) else None
    return UpstreamError(f"upstream error{where}: {message or payload.get('message') or 'failed'}")


def _item_chunks(item: dict[str, Any], index: int, arguments: str = "") -> list[Chunk]:
    if item.get("type") not in _CALL_ITEMS:
        return []
    return [ToolCallDelta(index=index, id=item.get("call_id"), name=item.get("name"), arguments=arguments)]


def parse_event(payload: dict[str, Any]) -> list[Chunk]:
    """One streamed Responses event -> the native event and the typed chunks it implies."""
    kind = payload.get("type")
    if kind in ("response.failed", "error"):
        raise _failure(payload)
    chunks: list[Chunk] = [NativeEvent(payload)]
    index = int(payload.get("output_index") or 0)
    if kind == "response.created":
        response = payload.get("response") or {}
        chunks.append(ResponseMeta(model=response.get("model"), upstream_id=response.get("id")))
    elif kind == "response.output_text.delta":
        chunks.append(TextDelta(str(payload.get("delta") or "")))
    elif kind == "response.output_item.added":
        chunks += _item_chunks(payload.get("item") or {}, index)
    elif kind in ("response.function_call_arguments.delta", "response.custom_tool_call_input.delta"):
        chunks.append(ToolCallDelta(index=index, arguments=str(payload.get("delta") or "")))
    elif kind in _TERMINAL:
        chunks += _final(payload.get("response") or {})
    return chunks


def parse_response(response: dict[str, Any]) -> Iterator[Chunk]:
    """A whole buffered ``response`` object -> the native answer and the same typed chunks; a failed one
    raises after the usage it reports, as a streamed ``response.failed`` does."""
    if response.get("status") == "failed":
        if (usage := _usage(response)) is not None:
            yield usage
        raise _failure({"response": response}, where="")
    yield from _answer(response)


def _answer(response: dict[str, Any]) -> list[Chunk]:
    chunks: list[Chunk] = [
        NativeEvent({"type": "response", "response": response}),
        ResponseMeta(model=response.get("model"), upstream_id=response.get("id")),
    ]
    for index, item in enumerate(response.get("output") or []):
        if item.get("type") == "message":
            text = "".join(
                str(p.get("text") or "") for p in item.get("content") or [] if p.get("type") == "output_text"
            )
            chunks.append(TextDelta(text))
        elif item.get("type") == "function_call":
            chunks += _item_chunks(item, index, str(item.get("arguments") or ""))
        elif item.get("type") == "custom_tool_call":
            chunks += _item_chunks(item, index, str(item.get("input") or ""))
    return chunks + _final(response)


async def parse_stream(events: AsyncIterator[SSEvent]) -> AsyncIterator[Chunk]:
    """SSE events -> chunks; a ``response.failed`` raises after the usage it reports (the failed request
    is charged what OpenAI counted)."""
    async for event in events:
        if event.data == "[DONE]":
            continue
        payload = decode_upstream_json(event.data)
        try:
            chunks = parse_event(payload)
        except UpstreamError:
            response = payload.get("response")
            if isinstance(response, dict) and (usage := _usage(response)) is not None:
                yield usage
            raise
        for chunk in chunks:
            yield chunk
