"""Tools an upstream runs itself and bills per use, on top of the tokens: which tool types they are, and how
many uses a request may run (what its USD budgets hold the fee for).

Priced per call (USD per 1,000 calls, a price's fields of the same names; ``accounting.Price.fee``):
- ``web_search``: Anthropic's web search server tool (``web_search_*``), OpenAI's hosted ``web_search``;
- ``web_search_preview``: OpenAI's older hosted ``web_search_preview*`` (25.00 on gpt-4o and gpt-4.1, as
  the web search fee elsewhere);
- ``file_search``: OpenAI's hosted ``file_search`` (2.50).
A model whose price gives no fee for a kind (an operator's entry for a newer model) cannot run that tool
under a USD budget: 400 ``tool_not_priced``, as for the kinds below.

Not priced, because what they bill is not a count tollgate can read or bound: OpenAI's hosted
``image_generation`` (another model's image tokens, by size and quality) and ``code_interpreter`` (per
container, reused across requests), Anthropic's ``code_execution_*`` (container hours). A request that
gives one to a provider that runs it is a 400 ``tool_not_priced`` under a USD budget (as an unpriced
model is); without one it is served as before. Every other tool type costs only tokens (functions, custom
tools, MCP, shell, computer use, web fetch, tool search) or is one tollgate does not know: passed on,
charged its tokens. Pure functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

PRICED = ("web_search", "web_search_preview", "file_search")
UNPRICED = ("image_generation", "code_interpreter", "code_execution")


def openai_hosted(tool_type: object) -> str | None:
    """The fee kind of an OpenAI Responses hosted tool type (``web_search_2025_08_26`` included)."""
    kind = str(tool_type)
    if kind.startswith("web_search_preview"):
        return "web_search_preview"
    if kind.startswith("web_search"):
        return "web_search"
    return kind if kind in ("file_search", "image_generation", "code_interpreter") else None


def openai_kinds(tools: object) -> set[str]:
    """The fee kinds among a Responses request's (or answer's) ``tools``; anything not a list holds none."""
    listed = tools if isinstance(tools, list) else []
    kinds = {openai_hosted(tool.get("type")) for tool in listed if isinstance(tool, dict)}
    return {kind for kind in kinds if kind is not None}


def anthropic_server(tool_type: object) -> str | None:
    """The fee kind of an Anthropic server tool type (``web_search_20250305``, ``code_execution_...``)."""
    kind = str(tool_type)
    if kind.startswith("web_search_"):
        return "web_search"
    return "code_execution" if kind.startswith("code_execution_") else None


@dataclass(frozen=True, slots=True)
class ToolUses:
    """The most billed tool uses a request may run on one provider (``calls``), and of which kinds."""

    calls: int = 0
    kinds: frozenset[str] = frozenset()

    @classmethod
    def of(cls, calls: int, kinds: Iterable[str | None]) -> ToolUses | None:
        """None when no kind is billed (nothing to hold)."""
        billed = frozenset(kind for kind in kinds if kind is not None)
        return cls(calls, billed) if billed else None
