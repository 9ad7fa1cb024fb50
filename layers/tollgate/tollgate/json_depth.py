"""How deep JSON text nests, found without recursion, so nothing recursive (a decoder, pydantic, an
encoder) ever sees more than ``MAX_JSON_DEPTH`` levels from a client: request bodies (api/body.py) and
the JSON that tool call arguments carry in a string (the Anthropic and Bedrock adapters)."""

from __future__ import annotations

import array
import itertools
import re

MAX_JSON_DEPTH = 64  # arrays and objects; tool JSON schemas nest ~10-20 levels inside a request

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_SIGNS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # as signed bytes: +1, -1


def too_deep(raw: bytes | str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays/objects outside strings nest deeper than ``limit``: strings are cut out, brackets
    become +1/-1 and the depth is their highest running sum (on malformed JSON a decoder stops at the
    first mismatch, so it never nests deeper than this)."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if data.count(b"[") + data.count(b"{") <= limit:
        return False  # too few brackets to nest that deep
    signs = array.array("b", _STRING.sub(b"", data).translate(_SIGNS, _NOT_BRACKETS))
    return max(itertools.accumulate(signs), default=0) > limit
