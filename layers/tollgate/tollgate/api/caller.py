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

from ..context import AppContext
from ..keys import Principal
from .auth import authenticate
from .gateway_context import GatewayContext, check_edge_tenant, gateway_context

METERED = "metered"  # a route handler's opt flag: rate limits apply


def new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated caller of one request: its principal, its request id (API Gateway's when
    forwarded) and the edge's request context."""

    principal: Principal
    request_id: str
    edge: GatewayContext


async def provide_caller(request: Request[Any, Any, Any]) -> Caller:
    """Resolve the caller (401 for a missing, unknown, revoked or expired key) before the body is read."""
    ctx: AppContext = request.app.state["ctx"]
    edge = gateway_context(request)
    state = request.scope.setdefault("state", {})
    request_id = state.get("request_id") or edge.request_id or new_request_id()
    state["request_id"] = request_id  # read by the error handler
    principal = await authenticate(request, ctx)
    check_edge_tenant(edge, principal, request_id)
    return Caller(principal=principal, request_id=request_id, edge=edge)
