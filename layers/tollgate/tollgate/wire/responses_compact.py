"""``POST /v1/responses/compact`` (OpenAI's compact endpoint): the compacted history, not streamed.

The summary is written as ``compaction`` explains; the response's ``output`` is the history to continue
from, as OpenAI shapes it: the caller's most recent real user messages from ``input``, oldest first, up to
about ``RETAINED_USER_TOKENS`` (at 4 characters a token; context a client wraps in ``<tags>`` is left out),
then the one ``compaction`` item. Sent back as ``input``, that history continues on any provider.
"""

from __future__ import annotations

import time
from typing import Any

from ..lifecycle import Outcome
from ..streaming import ResponseBuilder
from . import compaction
from .responses_output import Item, response_id, usage_body
from .responses_stream import extras_of

RETAINED_USER_TOKENS = 20_000
CHARS_PER_TOKEN = 4


def _user_text(item: dict[str, Any]) -> str | None:
    """The text of a user message item made of text parts only; None for anything else."""
    if item.get("type", "message") != "message" or item.get("role") != "user":
        return None
    content = item.get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    texts: list[str] = []
    for part in content:
        text = part.get("text") if isinstance(part, dict) else None
        if not isinstance(text, str):
            return None
        texts.append(text)
    return "".join(texts) if texts else None


def retained_user_messages(items: list[dict[str, Any]], budget: int = RETAINED_USER_TOKENS) -> list[Item]:
    """The newest real user messages that fit ``budget`` tokens, in their order; a message that does not
    fit ends the selection (older ones would leave a gap)."""
    room = budget * CHARS_PER_TOKEN
    kept: list[Item] = []
    for item in reversed(items):
        text = _user_text(item)
        if text is None or not text.strip() or text.lstrip().startswith("<"):
            continue
        if len(text) > room:
            break
        room -= len(text)
        kept.append({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
    kept.reverse()
    return kept


def render(builder: ResponseBuilder, outcome: Outcome, extension: dict[str, Any]) -> dict[str, Any]:
    """The compacted response object: ``output`` is the history to continue from."""
    call = builder.call
    items = extras_of(call).input_items
    summary = builder.message().get("content") or ""
    usage = outcome.usage or builder.final_usage()
    body: dict[str, Any] = {
        "id": response_id(call.request_id),
        "object": "response.compaction",
        "created_at": int(time.time()),
        "model": builder.model,
        "output": [*retained_user_messages(items), compaction.item(call.request_id, summary)],
        "usage": None if usage is None else usage_body(usage),
    }
    if extension:
        body["tollgate"] = extension
    return body
