"""The history a compaction keeps (``wire.responses_compact``): the newest real user turns that fit."""

from __future__ import annotations

from typing import Any

from tollgate.wire.responses_compact import CHARS_PER_TOKEN, retained_user_messages


def user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": list(parts)}


def text(value: str) -> dict[str, Any]:
    return {"type": "input_text", "text": value}


def texts(items: list[dict[str, Any]]) -> list[str]:
    return [item["content"][0]["text"] for item in items]


def test_real_user_turns_in_order_and_nothing_else() -> None:
    items = [
        user(text("<environment_context>cwd</environment_context>")),
        {"role": "user", "content": "plain string turn"},  # an item without a type is a message
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "answer"}]},
        {"type": "function_call_output", "call_id": "c", "output": "tool says"},
        user(text("look at "), {"type": "input_image", "image_url": "data:..."}),  # not text alone
        user(text("  ")),
        user(text("part one, "), text("part two")),
    ]
    kept = retained_user_messages(items)
    assert texts(kept) == ["plain string turn", "part one, part two"]
    assert all(item == {"type": "message", "role": "user", "content": item["content"]} for item in kept)


def test_the_newest_turns_that_fit_and_no_gap() -> None:
    budget = 10  # tokens: 40 characters
    old, middle, new = "a" * 10, "b" * (30 * CHARS_PER_TOKEN), "c" * 30
    kept = retained_user_messages([user(text(old)), user(text(middle)), user(text(new))], budget)
    assert texts(kept) == [new]  # the middle one does not fit, so the older one is not kept either
    kept = retained_user_messages([user(text(old)), user(text(new))], budget)
    assert texts(kept) == [old, new]
    assert retained_user_messages([user(text("d" * 41))], budget) == []
