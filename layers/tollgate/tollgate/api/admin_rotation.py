"""POST /admin/keys/{key_id}/rotate ``{"grace_seconds": 3600}`` (body optional; default 0): a new secret
for the same key id (``tollgate.key_rotation``), shown once in the answer, with ``old_key_valid_until``."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from ..context import AppContext
from ..key_rotation import rotate
from ..names import check_name
from ..schemas.rate_limits import KeyRotate
from .body import decode_json_object, validate


@post("/keys/{key_id:str}/rotate", status_code=200)
async def rotate_key(
    request: Request[Any, Any, Any], ctx: NamedDependency[AppContext], key_id: FromPath[str]
) -> dict[str, Any]:
    from .admin import key_view  # (admin.py mounts this route)

    check_name(key_id, "key_id")
    raw = await request.body()
    body = validate(KeyRotate, decode_json_object(raw)) if raw.strip() else KeyRotate()
    secret, record, until = await rotate(ctx.store, key_id, body.grace_seconds, ctx.clock())
    ctx.authenticator.forget(key_id)  # this process stops accepting the old secret's cached record
    return {"key": secret, **key_view(record), "old_key_valid_until": until}
