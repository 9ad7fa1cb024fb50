"""Random ``POST /v1/responses`` bodies for the property tests: a body that uses every field and every kind
of input item, tool and content part, with one to three values anywhere in it (a top-level field, an item,
a part, a key inside them) replaced by a random JSON value, removed, or joined by an unknown key.

``bodies(seed, n)`` is deterministic: a failure names its seed and index, and replays.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from typing import Any

BASE: dict[str, Any] = {
    "model": "auto",
    "instructions": "be brief",
    "input": [
        {"role": "user", "content": "hi"},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "look"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
            ],
        },
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "a"}, {"type": "refusal", "refusal": "no"}],
        },
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "x"},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "ok"}]},
        {"type": "custom_tool_call", "call_id": "c2", "name": "apply_patch", "input": "*** Begin"},
        {"type": "custom_tool_call_output", "call_id": "c2", "output": "done"},
        {"type": "function_call", "call_id": "c3", "name": "spawn", "namespace": "agents", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c3", "output": {"ok": True}},
        {"type": "compaction", "encrypted_content": "tollgate-summary-v1:aGk="},
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        {"type": "message", "role": "user", "content": "go on"},
    ],
    "tools": [
        {"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": False},
        {
            "type": "namespace",
            "name": "agents",
            "tools": [
                {"type": "function", "name": "spawn", "parameters": {"type": "object", "properties": {}}},
                {"type": "custom", "name": "note"},
            ],
        },
        {
            "type": "custom",
            "name": "apply_patch",
            "description": "edit files",
            "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"},
        },
        {"type": "web_search"},
    ],
    "tool_choice": {"type": "function", "name": "get_weather"},
    "parallel_tool_calls": True,
    "max_output_tokens": 20,
    "temperature": 0.5,
    "top_p": 0.9,
    "reasoning": {"effort": "low"},
    "text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}, "strict": True}},
    "metadata": {"a": "b"},
    "stream": False,
    "store": False,
    "user": "u",
}

SCALARS: list[Any] = [
    None, True, False, 0, 1, -1, 1.5, -0.0, 1e12, 10**12, 2**64 + 1, -(2**64), 1e300, "", "x", "yes", "1",
    "5", "auto", "message", "function", "namespace", "input_text", "input_image", "json_schema",
    "function_call", "compaction_trigger", "x" * 600, "\n", "\x00",
]  # fmt: skip
KEYS = ["type", "role", "content", "text", "name", "tools", "format", "call_id", "output", "image_url", "z"]


def value(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value: mostly scalars, sometimes a small list or object (often with a ``type``)."""
    roll = rng.random()
    if depth >= 2 or roll < 0.6:
        return rng.choice(SCALARS)
    if roll < 0.8:
        return [value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(KEYS): value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, (*path, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _paths(child, (*path, index))


def _mutate(body: dict[str, Any], rng: random.Random) -> None:
    paths = [p for p in _paths(body) if p]
    path = rng.choice([p for p in paths if len(p) == 1] if rng.random() < 0.3 else paths)
    parent: Any = body
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    roll = rng.random()
    if roll < 0.75:
        parent[last] = value(rng)
    elif roll < 0.9 and isinstance(parent, dict):
        del parent[last]
    elif isinstance(parent[last], dict):
        parent[last][rng.choice(KEYS)] = value(rng)
    else:
        parent[last] = value(rng)


def bodies(seed: int, n: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for _ in range(n):
        body = copy.deepcopy(BASE)
        for _ in range(rng.randint(1, 3)):
            _mutate(body, rng)
        yield body
