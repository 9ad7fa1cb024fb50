"""The caller as a Litestar dependency: who calls, and the admission checks, in one place.

Every authenticated data-plane handler declares ``caller: NamedDependency[Caller]``. Litestar resolves it
before the handler runs and before anything reads the body, so a missing or bad key is a 401 before any
upload. Handlers marked ``opt={"metered": True}`` (the model endpoints: chat, messages, completions,
embeddings, responses, count_tokens, tokens) are also admitted here against the caller's rate limits
(``tollgate.limits``): one store round trip per limit that applies, none when none does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.di import NamedDependency
from litestar.types import Message, Scope

from ..context import AppContext
from ..keys import Principal
from ..limits import Admission
from .auth import authenticate
from .gateway_context import GatewayContext, check_edge_tenant, gateway_context

METERED = "metered"  # a route handler's opt flag: rate limits apply
ADMISSION = "admission"  # the request's Admission, in the scope's state


def new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated caller of one request: its principal, its request id (API Gateway's when
    forwarded) and the edge's request context."""

    principal: Principal
    request_id: str
    edge: GatewayContext
    admission: Admission | None = None  # the rate limits that apply (metered routes only)


async def provide_caller(request: Request[Any, Any, Any], ctx: NamedDependency[AppContext]) -> Caller:
    """Resolve the caller (401 for a missing, unknown, revoked or expired key) before the body is read.

    It takes ``ctx`` as a dependency so that Litestar resolves the two one after the other: two
    dependencies of one level would be resolved in an anyio task group, two tasks on every request."""
    edge = gateway_context(request)
    state = request.scope.setdefault("state", {})
    request_id = state.get("request_id") or edge.request_id or new_request_id()
    state["request_id"] = request_id  # read by the error handler
    principal = await authenticate(request, ctx)
    check_edge_tenant(edge, principal, request_id)
    admission = None
    if request.route_handler.opt.get(METERED):
        admission = await ctx.limits.admission(principal)
        if admission is not None:
            state[ADMISSION] = admission  # its x-ratelimit headers go on every response (ratelimit_headers)
            await admission.admit_request()
    return Caller(principal=principal, request_id=request_id, edge=edge, admission=admission)


async def ratelimit_headers(message: Message, scope: Scope) -> None:
    """A ``before_send`` hook: the x-ratelimit headers on every response of a request that met a limit,
    buffered or streamed, success or error (the 429 included)."""
    if message["type"] != "http.response.start":
        return
    admission = scope.get("state", {}).get(ADMISSION)
    if admission is None:
        return
    headers = list(message.get("headers") or [])
    headers += [(name.encode(), value.encode()) for name, value in admission.headers().items()]
    message["headers"] = headers
