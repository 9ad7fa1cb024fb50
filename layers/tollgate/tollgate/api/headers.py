"""Response headers every model endpoint sets."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

# printable ASCII but ``%``: what a header value carries as it is; anything else is percent-encoded (UTF-8)
_HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def header_value(value: object) -> str:
    """``value`` as a header can always carry it: a model name outside ASCII (``日本``) or with control
    characters is percent-encoded (``%E6%97%A5%E6%9C%AC``), so a header never fails or splits a response."""
    text = str(value)
    if text.isascii() and text.isprintable() and "%" not in text:
        return text  # the common case, as it is (``quote`` walks every character)
    return quote(text, safe=_HEADER_SAFE)


def response_headers(request_id: str, served: dict[str, Any]) -> dict[str, str]:
    """Request id always; what served (``Exchange.served_by``: provider, upstream model, attempts) when
    known; the cost when the answer was priced (non-streamed responses)."""
    headers = {"x-tollgate-request-id": header_value(request_id)}
    for name in ("provider", "model", "attempts"):
        if name in served:
            headers[f"x-tollgate-{name}"] = header_value(served[name])
    if "cost_usd" in served:
        headers["x-tollgate-cost-usd"] = header_value(served["cost_usd"])
    return headers
