"""What an Anthropic Messages request carries beyond the internal (OpenAI-shaped) chat request.

``wire.anthropic_messages_request.to_chat`` fills one ``AnthropicOptions`` per request; the Anthropic
adapter sends it all upstream, the Bedrock adapter maps what Converse takes (thinking, effort, allowed
betas), the OpenAI-compatible adapter reads only ``reasoning_effort()``; everything else is dropped there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# output_config.effort -> OpenAI reasoning_effort (OpenAI has no "max"/"xhigh")
EFFORTS: dict[str, str] = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}
# thinking.budget_tokens below each bound -> reasoning_effort (the rest is "high")
BUDGET_EFFORTS: tuple[tuple[int, str], ...] = ((4096, "low"), (16384, "medium"))


@dataclass(frozen=True, slots=True)
class AnthropicOptions:
    """Top-level Messages fields with no OpenAI counterpart, and the client's ``anthropic-beta`` list."""

    thinking: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None
    context_management: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    betas: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)  # fields tollgate does not know: Anthropic only

    @property
    def effort(self) -> str | None:
        value = (self.output_config or {}).get("effort")
        return value if isinstance(value, str) else None

    @property
    def thinking_type(self) -> str | None:
        value = (self.thinking or {}).get("type")
        return value if isinstance(value, str) else None

    def reasoning_effort(self) -> str | None:
        """OpenAI's ``reasoning_effort`` for this request: the effort when given, else one derived from
        the thinking budget; None when thinking is off (or adaptive without an effort)."""
        if self.thinking_type == "disabled":
            return None
        if self.effort is not None:
            return EFFORTS.get(self.effort, "high")
        budget = (self.thinking or {}).get("budget_tokens")
        if self.thinking_type != "enabled" or not isinstance(budget, int):
            return None
        return next((effort for bound, effort in BUDGET_EFFORTS if budget < bound), "high")


def parse_betas(header: str | None) -> tuple[str, ...]:
    """``anthropic-beta: a,b, c`` -> ("a", "b", "c"), order kept, blanks and repeats left out."""
    names = (name.strip() for name in (header or "").split(","))
    return tuple(dict.fromkeys(name for name in names if name))
