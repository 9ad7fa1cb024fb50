"""Response headers every model endpoint sets."""

from __future__ import annotations

from typing import Any

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def response_headers(
    request_id: str, provider: str, extension: dict[str, Any] | None = None
) -> dict[str, str]:
    """Request id and provider always; the cost when the answer was priced (non-streamed responses)."""
    headers = {"x-tollgate-request-id": request_id, "x-tollgate-provider": provider}
    if extension and "cost_usd" in extension:
        headers["x-tollgate-cost-usd"] = extension["cost_usd"]
    return headers
