"""The bound on web searches a request may run, for the per-search fee its USD budgets hold: Anthropic's
web search tool's ``max_uses``, the Responses API's ``max_tool_calls`` with a hosted web search tool.
A request that sends none gets ``DEFAULT`` (Claude Code sends its own); one outside 1 to ``LIMIT`` is a 400
naming the field. Pure functions."""

from __future__ import annotations

from typing import Any

from ..errors import BadRequest

DEFAULT = 10
LIMIT = 1000


def bounded(value: Any, param: str) -> int:
    """``value`` as the number of searches to hold the fee for (``DEFAULT`` when it is None)."""
    value = DEFAULT if value is None else value
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= LIMIT:
        raise BadRequest(f"{param} must be a whole number from 1 to {LIMIT}", param=param)
    return value
