"""What Converse takes of a Messages client's request beyond the OpenAI-shaped one, and thinking coming back.

- ``cache_control`` on a block, a system part or a tool becomes a ``cachePoint`` right after it, for the
  models that cache prompts (Claude, Nova); the others would refuse it, so they get none.
- Thinking blocks of earlier assistant turns go back as ``reasoningContent`` (text + signature, or the
  redacted bytes), first in their turn, unchanged.
- For Claude models (``anthropic.`` in the model id), ``thinking`` and ``output_config`` go in
  ``additionalModelRequestFields`` as Anthropic's own fields, with the client's betas that Bedrock accepts
  as ``anthropic_beta``; other models get none of them. ``context_management``, ``metadata`` and unknown
  fields are dropped (named at DEBUG).
- ``reasoningContent`` in an answer becomes ``ThinkingDelta`` chunks (redacted bytes as base64 ``data``).

Pure functions; ``bedrock_mapping`` calls them.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping
from typing import Any

from ..schemas.native import AnthropicOptions
from ..schemas.openai import CacheControl, Message, ThinkingBlock
from .base import ChatCall, ThinkingDelta

logger = logging.getLogger(__name__)

Block = dict[str, Any]
CACHE_POINT: Block = {"cachePoint": {"type": "default"}}
CACHING_MODELS = ("anthropic.", "amazon.nova")  # model id parts of the families with prompt caching
# anthropic-beta values Bedrock's Claude models accept (others make Bedrock refuse the request)
BEDROCK_BETAS = frozenset(
    {
        "interleaved-thinking-2025-05-14",
        "context-1m-2025-08-07",
        "token-efficient-tools-2025-02-19",
        "fine-grained-tool-streaming-2025-05-14",
        "output-128k-2025-02-19",
        "computer-use-2024-10-22",
        "computer-use-2025-01-24",
        "effort-2025-11-24",
        "tool-search-tool-2025-10-19",
    }
)


def cache_point(blocks: list[Block], cache_control: CacheControl | None) -> list[Block]:
    """``blocks`` with a cache point after them when the client marked the last one for caching."""
    return [*blocks, dict(CACHE_POINT)] if cache_control is not None and blocks else blocks


def system_cache_control(message: Message) -> dict[str, Any] | None:
    """A system message's cache mark (its parts' last), as one cache point after its text."""
    parts = message.content if isinstance(message.content, list) else []
    return next((part.cache_control for part in reversed(parts) if part.cache_control), None)


def reasoning_block(block: ThinkingBlock) -> Block:
    if block.type == "redacted_thinking":
        try:
            data = base64.b64decode(block.data or "", validate=True)
        except (binascii.Error, ValueError):
            data = (block.data or "").encode()
        return {"reasoningContent": {"redactedContent": data}}
    text: Block = {"text": block.thinking or ""}
    if block.signature:
        text["signature"] = block.signature
    return {"reasoningContent": {"reasoningText": text}}


def reasoning_blocks(message: Message) -> list[Block]:
    return (
        [reasoning_block(block) for block in message.thinking_blocks or []]
        if message.role == "assistant"
        else []
    )


def without_cache_points(kwargs: dict[str, Any], model: str) -> dict[str, Any]:
    """The Converse arguments without cache points where ``model`` has no prompt caching (a cache point
    only ever follows another block, so nothing is left empty)."""
    if any(family in model for family in CACHING_MODELS):
        return kwargs
    result = dict(kwargs)
    result["messages"] = [{**turn, "content": _uncached(turn["content"])} for turn in kwargs["messages"]]
    if "system" in kwargs:
        result["system"] = _uncached(kwargs["system"])
    if "toolConfig" in kwargs:
        result["toolConfig"] = {**kwargs["toolConfig"], "tools": _uncached(kwargs["toolConfig"]["tools"])}
    return result


def _uncached(blocks: list[Block]) -> list[Block]:
    return [block for block in blocks if "cachePoint" not in block]


def is_claude(model: str) -> bool:
    return "anthropic." in model or model.startswith("anthropic")


def additional_fields(call: ChatCall) -> dict[str, Any]:
    """``additionalModelRequestFields`` for a Claude model: thinking, output_config, allowed betas."""
    options = call.request.anthropic
    if options is None:
        return {}
    _log_dropped(options)
    if not is_claude(call.model):
        return {}
    fields: dict[str, Any] = {}
    if options.thinking is not None:
        fields["thinking"] = options.thinking
    if options.output_config is not None:
        fields["output_config"] = options.output_config
    if betas := [name for name in options.betas if name in BEDROCK_BETAS]:
        fields["anthropic_beta"] = betas
    return fields


def _log_dropped(options: AnthropicOptions) -> None:
    names = [*options.extra]
    names += [n for n in ("context_management", "metadata") if getattr(options, n) is not None]
    if names:
        logger.debug("bedrock: dropping Messages fields Converse does not take: %s", ", ".join(sorted(names)))


def thinking_delta(index: int, reasoning: Mapping[str, Any]) -> ThinkingDelta | None:
    """A ``reasoningContent`` block or delta -> a piece of thinking block ``index``."""
    if "redactedContent" in reasoning:
        raw = reasoning["redactedContent"]
        data = raw if isinstance(raw, str) else base64.b64encode(bytes(raw)).decode()
        return ThinkingDelta(index, redacted=data)
    if "reasoningText" in reasoning:  # a whole block (Converse)
        reasoning = reasoning["reasoningText"] or {}
    text, signature = str(reasoning.get("text") or ""), str(reasoning.get("signature") or "")
    return ThinkingDelta(index, text, signature) if text or signature else None
