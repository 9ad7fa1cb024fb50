"""Who is calling: virtual keys for the data plane, the admin key for /admin, /metrics and /diagnostics."""

from __future__ import annotations

import functools
import hmac
import ipaddress
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from ..context import AppContext
from ..errors import NotFound, Unauthorized
from ..keys import Principal, key_from_headers


def _is_loopback(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    client = connection.client
    return client is not None and _loopback_host(client.host)


@functools.lru_cache(maxsize=256)  # peer addresses repeat; parsing one is ~2 µs on every request
def _loopback_host(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def presented_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    return key_from_headers(connection.headers.get("authorization"), connection.headers.get("x-api-key"))


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any], ctx: AppContext) -> Principal:
    """The caller's principal (401 for a missing, unknown, revoked or expired key)."""
    loopback = ctx.authenticator.allow_open and _is_loopback(connection)  # only open mode asks
    return await ctx.authenticator.authenticate(presented_key(connection), loopback=loopback)


def check_admin(connection: ASGIConnection[Any, Any, Any, Any], ctx: AppContext) -> None:
    admin = ctx.settings.admin_key
    if admin is None or not admin.get_secret_value():
        raise NotFound("the admin API is disabled: set TOLLGATE_ADMIN_KEY")
    key = presented_key(connection) or ""
    if not hmac.compare_digest(key.encode(), admin.get_secret_value().encode()):
        raise Unauthorized("the admin key is required")


async def check_operator(connection: ASGIConnection[Any, Any, Any, Any], ctx: AppContext) -> None:
    """/metrics and /diagnostics show every tenant's traffic: open only while open mode applies."""
    if ctx.authenticator.allow_open and _is_loopback(connection) and not await ctx.authenticator.keys_exist():
        return
    check_admin(connection, ctx)


def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    check_admin(connection, connection.app.state["ctx"])
