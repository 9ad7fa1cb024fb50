"""Names a tenant controls (tenant, pool, key id, session id): one pattern and one validator for the
admin API (bodies, path and query parameters), the data plane and the CLI; and ``printable`` for
everything the CLI prints that a tenant could influence (model, provider, key and tenant names)."""

from __future__ import annotations

import re

from .errors import BadRequest

# printable ASCII, no separators the stores use, no whitespace or control characters
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"
_NAME = re.compile(NAME_PATTERN)
# the longest name of each kind; ``name_problem`` takes any other kind as 64
MAX_LENGTH = {"tenant": 64, "pool": 64, "key_id": 64, "session_id": 128}
_RULE = "letters, digits and . _ : @ -, starting with a letter or digit"


def name_problem(value: str, kind: str) -> str | None:
    """Why ``value`` is not a valid ``kind`` name (``tenant``, ``pool``, ...); None when it is."""
    limit = MAX_LENGTH.get(kind, 64)
    if not value:
        return f"{kind} must not be empty"
    if len(value) > limit or not _NAME.fullmatch(value):
        return f"{kind} must be 1-{limit} characters: {_RULE} (got '{printable(value[:80])}')"
    return None


def check_name(value: str, kind: str, *, param: str | None = None) -> str:
    """``value`` when it is a valid ``kind`` name, else a 400 naming the parameter."""
    problem = name_problem(value, kind)
    if problem is not None:
        raise BadRequest(problem, param=param or kind)
    return value


def check_optional(value: str | None, kind: str, *, param: str | None = None) -> str | None:
    return None if value is None else check_name(value, kind, param=param)


def printable(text: object) -> str:
    """``text`` with control and other non-printable characters escaped (``\\x1b``, ``\\n``, ``\\u200b``),
    so a name a tenant chose cannot move the cursor or recolour an operator's terminal."""
    value = str(text)
    if value.isprintable():
        return value
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in value)
