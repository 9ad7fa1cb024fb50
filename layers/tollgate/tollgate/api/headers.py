"""Response headers every model endpoint sets."""

from __future__ import annotations

from typing import Any

from ..names import printable

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def header_value(value: object) -> str:
    """``value`` as an HTTP header can carry it: control characters and anything past ASCII escaped
    (``\\n``, ``\\u65e5``); the served model is the client's own ``model`` where the route keeps it."""
    return printable(value).encode("ascii", "backslashreplace").decode("ascii")


def response_headers(request_id: str, served: dict[str, Any]) -> dict[str, str]:
    """Request id always; what served (``Exchange.served_by``: provider, upstream model, attempts) when
    known; the cost when the answer was priced (non-streamed responses)."""
    headers = {"x-tollgate-request-id": request_id}
    for name in ("provider", "model", "attempts"):
        if name in served:
            headers[f"x-tollgate-{name}"] = header_value(served[name])
    if "cost_usd" in served:
        headers["x-tollgate-cost-usd"] = served["cost_usd"]
    return headers
