"""What the Anthropic adapter sends beyond the OpenAI-shaped request: a Messages client's own fields
(thinking, output_config, context_management, metadata, unknown new fields), its ``anthropic-beta``
list, ``cache_control`` marks, tools as the client sent them, and thinking blocks coming back.

Unknown top-level fields go through ``passthrough.MESSAGES`` first: a client may not choose a dearer
price tier, another model or a larger output than the reservation bounds, so ``speed``, ``service_tier``
and ``fallbacks`` are dropped (named at DEBUG) and ``inference_geo`` other than ``"global"`` is a 400.

Pure functions; ``providers.anthropic`` calls them.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ..schemas.native import AnthropicOptions
from ..schemas.openai import CacheControl, Tool
from .base import NativeBlock, ThinkingDelta
from .passthrough import MESSAGES

logger = logging.getLogger(__name__)

Block = dict[str, Any]
# what /messages/count_tokens takes (it refuses generation fields such as max_tokens and stream)
COUNT_FIELDS = frozenset(
    {"model", "system", "messages", "tools", "tool_choice", "thinking", "context_management", "output_config"}
)


def count_body(body: dict[str, Any]) -> dict[str, Any]:
    """A Messages body cut to what ``/messages/count_tokens`` takes: prompt fields, none about generation."""
    return {name: value for name, value in body.items() if name in COUNT_FIELDS}


def with_cache_control(block: Block, cache_control: CacheControl | None) -> Block:
    if cache_control is not None:
        block["cache_control"] = cache_control
    return block


def tool_block(tool: Tool) -> Block:
    """A Messages client's tool as it sent it (``defer_loading`` and other new fields included)."""
    return dict(tool.anthropic_tool or {})


def native_fields(options: AnthropicOptions | None, body: dict[str, Any]) -> dict[str, Any]:
    """Top-level fields of a Messages client's request that the body does not hold yet: thinking,
    output_config, context_management, the whole metadata object, and fields tollgate does not know
    (less those that would cost more than the reservation bounds: ``passthrough.MESSAGES``)."""
    if options is None:
        return {}
    known = {
        "thinking": options.thinking,
        "output_config": options.output_config,
        "context_management": options.context_management,
        "metadata": options.metadata,
    }
    fields = {name: value for name, value in known.items() if value is not None}
    extra = MESSAGES.screen(options.extra, "anthropic")
    fields |= {name: value for name, value in extra.items() if name not in body}
    if extra:
        logger.debug("passing unknown Messages fields to anthropic: %s", ", ".join(sorted(extra)))
    return fields


def beta_headers(options: AnthropicOptions | None) -> dict[str, str]:
    """The client's ``anthropic-beta`` list, forwarded as it came."""
    if options is None or not options.betas:
        return {}
    return {"anthropic-beta": ",".join(options.betas)}


def thinking_chunk(index: int, block: dict[str, Any]) -> ThinkingDelta | None:
    """A thinking / redacted_thinking content block (whole, or the start of a streamed one) as thinking
    block ``index``; None for other block types."""
    if block.get("type") == "thinking":
        return ThinkingDelta(index, str(block.get("thinking") or ""), str(block.get("signature") or ""))
    if block.get("type") == "redacted_thinking":
        return ThinkingDelta(index, redacted=str(block.get("data") or ""))
    return None


class NativeBlocks:
    """Streamed content blocks kept whole (server tool calls and their results, new block types): collected
    from start to stop (a server tool call's input comes as ``input_json_delta`` pieces), then passed on as
    one ``NativeBlock``."""

    def __init__(self) -> None:
        self._open: dict[int, tuple[Block, list[str]]] = {}  # content block index -> (block, input pieces)

    def start(self, index: int, block: Block) -> None:
        self._open[index] = (dict(block), [])

    def delta(self, index: int, delta: dict[str, Any]) -> bool:
        """Whether the delta belongs to a kept block (then it is consumed here)."""
        if index not in self._open:
            return False
        if delta.get("type") == "input_json_delta":
            self._open[index][1].append(str(delta.get("partial_json") or ""))
        return True

    def stop(self, index: int) -> list[NativeBlock]:
        if index not in self._open:
            return []
        block, pieces = self._open.pop(index)
        if "".join(pieces).strip():
            try:
                block["input"] = json.loads("".join(pieces))
            except ValueError:
                logger.warning("%s block: input is not JSON; kept as it started", block.get("type"))
        return [NativeBlock(block)]
