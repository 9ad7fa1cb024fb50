"""Who is calling: virtual keys for the data plane, the admin key for /admin, /metrics and /diagnostics."""

from __future__ import annotations

import functools
import hmac
import ipaddress
from typing import Any
from urllib.parse import urlsplit

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from ..context import AppContext
from ..errors import NotFound, Unauthorized
from ..keys import Principal, key_from_headers


def _is_loopback(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """A caller on this machine, asking this machine: open mode's only callers.

    The peer address alone is not enough: a web page the operator visits can reach 127.0.0.1 too. A
    browser names the page's site in ``Origin`` (every cross-origin POST carries it, even a "simple" one
    that needs no preflight) and, after a DNS rebinding, the attacker's name in ``Host``. So the Host must
    be a loopback name, and an ``Origin``, when sent, a loopback origin (the console's own pages are);
    SDKs and curl send no ``Origin``."""
    client = connection.client
    if client is None or not _loopback_host(client.host):
        return False
    headers = connection.headers
    origin = headers.get("origin")
    return _loopback_authority(headers.get("host") or "") and (origin is None or _loopback_origin(origin))


@functools.lru_cache(maxsize=256)  # peer addresses repeat; parsing one is ~2 µs on every request
def _loopback_host(host: str) -> bool:
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@functools.lru_cache(maxsize=256)
def _loopback_authority(authority: str) -> bool:
    """``host[:port]`` (a bracketed IPv6 address included) names this machine."""
    return _loopback_origin(f"http://{authority}")


@functools.lru_cache(maxsize=256)
def _loopback_origin(origin: str) -> bool:
    """``scheme://host[:port]``, nothing after it, naming this machine."""
    try:
        parts = urlsplit(origin)
        host = parts.hostname  # lower-cased, IPv6 brackets removed
        _ = parts.port  # a port that is not a number raises
    except ValueError:
        return False
    plain = not (parts.path or parts.query or parts.fragment or parts.username or parts.password)
    return parts.scheme in ("http", "https") and plain and host is not None and _loopback_host(host)


def presented_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    return key_from_headers(connection.headers.get("authorization"), connection.headers.get("x-api-key"))


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any], ctx: AppContext) -> Principal:
    """The caller's principal (401 for a missing, unknown, revoked or expired key)."""
    authenticator = ctx.authenticator
    # only open mode asks (and once a key exists, keys_exist() is a cached True: nothing to parse)
    loopback = authenticator.allow_open and not await authenticator.keys_exist() and _is_loopback(connection)
    return await authenticator.authenticate(presented_key(connection), loopback=loopback)


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
