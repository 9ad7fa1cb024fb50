"""Response headers every model endpoint sets."""

from __future__ import annotations

from typing import Any

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def response_headers(request_id: str, served: dict[str, Any]) -> dict[str, str]:
    """Request id always; what served (``Exchange.served_by``: provider, upstream model, attempts) when
    known; the cost when the answer was priced (non-streamed responses)."""
    headers = {"x-tollgate-request-id": request_id}
    for name in ("provider", "model", "attempts"):
        if name in served:
            headers[f"x-tollgate-{name}"] = str(served[name])
    if "cost_usd" in served:
        headers["x-tollgate-cost-usd"] = served["cost_usd"]
    return headers
