"""Conversation turns for upstreams that require user/assistant alternation (Anthropic, Bedrock)."""

from __future__ import annotations

from typing import Any

Turn = dict[str, Any]  # {"role": ..., "content": [blocks]}


def append_turn(turns: list[Turn], role: str, blocks: list[Any]) -> None:
    """Add ``blocks`` as a turn of ``role``, merged into the previous turn when it has the same role."""
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})
