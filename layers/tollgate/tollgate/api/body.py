"""Request bodies: JSON decoding and pydantic validation, with errors that name the field.

A body must be UTF-8 JSON holding an object that nests at most ``MAX_JSON_DEPTH`` levels; the depth is
checked on the raw bytes (``tollgate.json_depth``) before anything recursive sees the body.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from pydantic import BaseModel, ValidationError

from ..errors import BadRequest
from ..json_depth import MAX_JSON_DEPTH, too_deep

ModelT = TypeVar("ModelT", bound=BaseModel)


def _location(loc: tuple[int | str, ...], payload: Any) -> str:
    """pydantic's error location as the client's field path, following the payload: union-branch and
    discriminator markers that pydantic adds (``str``, ``list[...]``, a block's ``type``) are left out."""
    parts: list[str] = []
    node = payload
    for i, item in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(item, int):
            parts.append(f"[{item}]")
            node = node[item] if isinstance(node, list) and 0 <= item < len(node) else None
        elif item in ("str", "list[...]", "function-after[...]") or "[" in str(item):
            continue
        elif isinstance(node, dict) and item not in node and not last:
            continue  # a discriminator tag
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts)


def decode_json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"request body is not UTF-8 JSON (invalid byte at {exc.start})") from exc
    if too_deep(raw):
        raise BadRequest(f"request body nests deeper than {MAX_JSON_DEPTH} levels of arrays and objects")
    try:
        payload = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:  # also ValidationError: a number out of range (1e400)
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise BadRequest("request body must be a JSON object")
    return payload


def validate(model: type[ModelT], payload: dict[str, Any]) -> ModelT:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        errors = [(_location(tuple(e["loc"]), payload), e["msg"]) for e in exc.errors(include_url=False)]
        # a union field reports every branch; the one that got deepest into the value says what is wrong
        field, message = max((e for e in errors if e[0].startswith(errors[0][0])), key=lambda e: len(e[0]))
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise BadRequest(f"{field or 'body'}: {message}{more}", param=field or None) from exc
