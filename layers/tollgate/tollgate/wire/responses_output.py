"""The Responses API's response object and its output items, from the internal answer.

Ids are derived from tollgate's request id so a streamed answer, its final ``response.completed`` object
and the stored copy agree: the response ``resp_<request id>``, its message ``msg_<request id>``, the n-th
tool call ``fc_<request id>_<n>`` (``ctc_`` for a custom tool) with call id the upstream's own or
``call_<request id>_<n>``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ..errors import TollgateError
from ..providers.base import Usage
from ..schemas.responses import ResponsesExtras, ToolOrigin
from . import compaction

Item = dict[str, Any]

# internal finish reason -> why a response is incomplete
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def response_id(request_id: str) -> str:
    return f"resp_{request_id}"


def message_id(request_id: str) -> str:
    return f"msg_{request_id}"


def call_id(upstream_id: str | None, request_id: str, index: int) -> str:
    return upstream_id or f"call_{request_id}_{index}"


def usage_body(usage: Usage) -> dict[str, Any]:
    """Responses usage; cached and reasoning token counts when the upstream's usage carries them (cache
    writes, which OpenAI does not report, as ``input_tokens_details.cache_write_tokens`` when there are any).
    ``input_tokens`` includes the cached and written tokens."""
    input_details = {"cached_tokens": usage.cached_tokens}
    if usage.cache_write_tokens:
        input_details["cache_write_tokens"] = usage.cache_write_tokens
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": input_details,
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def message_item(request_id: str, text: str, status: str = "completed") -> Item:
    content = [] if status == "in_progress" else [output_text(text)]
    return {
        "type": "message",
        "id": message_id(request_id),
        "status": status,
        "role": "assistant",
        "content": content,
    }


def output_text(text: str) -> Item:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def custom_input(arguments: str) -> str:
    """A custom tool's input from the one-argument function call the model made."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return arguments
    found = value.get("input") if isinstance(value, dict) else None
    return found if isinstance(found, str) else arguments


def call_item(
    origin: ToolOrigin | None, name: str, ids: tuple[str, int, str], arguments: str, status: str = "completed"
) -> Item:
    """A ``function_call`` (or ``custom_tool_call``) item under the client's own tool name."""
    request_id, index, the_call_id = ids
    if origin is not None and origin.kind == "custom":
        item: Item = {
            "type": "custom_tool_call",
            "id": f"ctc_{request_id}_{index}",
            "call_id": the_call_id,
            "name": origin.name,
            "input": custom_input(arguments) if status == "completed" else "",
            "status": status,
        }
    else:
        item = {
            "type": "function_call",
            "id": f"fc_{request_id}_{index}",
            "call_id": the_call_id,
            "name": origin.name if origin is not None else name,
            "arguments": arguments,
            "status": status,
        }
    if origin is not None and origin.namespace:
        item["namespace"] = origin.namespace
    return item


def output_items(answer: dict[str, Any] | None, request_id: str, extras: ResponsesExtras) -> list[Item]:
    """The assistant message (OpenAI chat shape) as output items: its text, then its tool calls."""
    if extras.compaction:
        return [compaction.item(request_id, str((answer or {}).get("content") or ""))]
    if not answer:
        return []
    items: list[Item] = []
    if answer.get("content"):
        items.append(message_item(request_id, str(answer["content"])))
    for index, call in enumerate(answer.get("tool_calls") or []):
        name = call["function"]["name"]
        ids = (request_id, index, call_id(call.get("id"), request_id, index))
        items.append(call_item(extras.tools.get(name), name, ids, call["function"]["arguments"]))
    return items


def with_call_ids(answer: dict[str, Any], request_id: str) -> dict[str, Any]:
    """The answer as the conversation keeps it: every tool call with the id the client was given."""
    calls = [
        {**call, "id": call_id(call.get("id"), request_id, index)}
        for index, call in enumerate(answer.get("tool_calls") or [])
    ]
    return {**answer, "tool_calls": calls} if calls else answer


def status_of(finish: str | None) -> tuple[str, dict[str, str] | None]:
    reason = INCOMPLETE.get(finish or "")
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def response_object(
    request_id: str,
    model: str,
    extras: ResponsesExtras,
    *,
    status: str,
    output: list[Item],
    usage: Usage | None = None,
) -> dict[str, Any]:
    """The ``response`` object; the request's own settings are echoed back as OpenAI does."""
    body: dict[str, Any] = {
        "id": response_id(request_id),
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": extras.instructions,
        "model": model,
        "output": output,
        "previous_response_id": extras.previous_response_id,
        "store": extras.store,
        "usage": None if usage is None else usage_body(usage),
    }
    body.update(extras.echo)
    return body


def failed(body: dict[str, Any], error: TollgateError) -> dict[str, Any]:
    return {**body, "status": "failed", "error": {"code": error.code or "error", "message": error.message}}
