"""API Gateway's request context, as the Lambda Web Adapter forwards it (``x-amzn-request-context``)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request

from ..keys import Principal
from ..logs import log_event

REQUEST_CONTEXT_HEADER = "x-amzn-request-context"
TRUST_GATEWAY_CONTEXT = "trust_gateway_context"  # app state flag, set by create_app (on Lambda)
_REQUEST_ID = re.compile(r"[A-Za-z0-9-]{8,64}")

logger = logging.getLogger("tollgate.request")


@dataclass(frozen=True, slots=True)
class GatewayContext:
    """What the app uses of API Gateway's request context: its request id and the authorizer's tenant."""

    request_id: str | None = None
    tenant: str | None = None


def parse_gateway_context(raw: str | None) -> GatewayContext:
    """The forwarded request context; empty when absent or malformed (never an error)."""
    try:
        data = msgspec.json.decode(raw) if raw else None
    except (msgspec.DecodeError, RecursionError):  # RecursionError: nested thousands of levels deep
        data = None
    if not isinstance(data, dict):
        return GatewayContext()
    request_id = data.get("requestId")
    authorizer = data.get("authorizer")
    tenant = authorizer.get("tenant") if isinstance(authorizer, dict) else None
    return GatewayContext(
        request_id=request_id if isinstance(request_id, str) and _REQUEST_ID.fullmatch(request_id) else None,
        tenant=tenant if isinstance(tenant, str) else None,
    )


def gateway_context(request: Request[Any, Any, Any]) -> GatewayContext:
    """Read only where the adapter sets the header (a direct client could forge it anywhere else)."""
    if not request.app.state.get(TRUST_GATEWAY_CONTEXT, False):
        return GatewayContext()
    return parse_gateway_context(request.headers.get(REQUEST_CONTEXT_HEADER))


def check_edge_tenant(edge: GatewayContext, principal: Principal, request_id: str) -> None:
    """The app's own key check decides; a disagreeing edge authorizer is worth a warning."""
    if edge.tenant is not None and edge.tenant != principal.tenant:
        log_event(
            logger,
            logging.WARNING,
            "edge_tenant_mismatch",
            request_id=request_id,
            tenant=principal.tenant,
            edge_tenant=edge.tenant,
        )
