"""Anthropic's own vocabulary, by table: shared by the upstream adapter (``providers.anthropic``) and the
Messages wire format tollgate serves (``wire.anthropic_messages``), so neither imports the other."""

from __future__ import annotations

from .providers.base import FinishReason

# Anthropic stop reason -> OpenAI finish reason
STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",  # a server tool paused the turn; what was said so far is complete
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# OpenAI tool_choice -> Anthropic tool_choice type
TOOL_CHOICES: dict[str, str] = {"auto": "auto", "required": "any", "none": "none"}
