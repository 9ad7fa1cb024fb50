"""The channels an alert goes out on: an HTTPS webhook and an EventBridge event on the default bus.

Each ``send`` raises on failure (the outbox records it and retries later). Both carry the same JSON
document (``alert_document``). Clients are injected or built on first use, never at import.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Protocol

import anyio
import httpx

from ..aws import LazyClient
from ..store.alert_base import Alert

SIGNATURE_HEADER = "X-Tollgate-Signature"
EVENT_SOURCE = "tollgate"
EVENT_DETAIL_TYPE = "tollgate.budget.threshold"
EVENT_BUS = "default"


def alert_document(alert: Alert) -> dict[str, Any]:
    """What every channel sends: ``id`` is the same on every retry (receivers may deduplicate by it)."""
    return {
        "id": f"{alert.tenant}/{alert.alert_id}",
        "tenant": alert.tenant,
        "budget": alert.budget_id,
        "period": alert.period_key,
        "threshold": alert.threshold,
        "limit": alert.limit,
        "used": alert.used,
        "unit": "tokens" if alert.budget_id.startswith("tokens:") else "micro_usd",
        "at": alert.at,
    }


def alert_body(alert: Alert) -> bytes:
    return json.dumps(alert_document(alert), separators=(",", ":"), sort_keys=True).encode()


def signature(secret: bytes, body: bytes) -> str:
    """The ``X-Tollgate-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of the exact body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class Channel(Protocol):
    name: str

    async def send(self, alert: Alert) -> None:
        """Deliver ``alert``; raise on any failure."""


class WebhookChannel:
    """POST the JSON body to the configured URL (never a request-supplied one), with a short timeout.

    A client per delivery: alerts are rare, and a client bound to no event loop also works in the admin
    function's scheduled sweep (a fresh loop per invocation)."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        secret: bytes | None,
        timeout_seconds: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = url
        self._secret = secret
        self._timeout = timeout_seconds
        self._transport = transport

    async def send(self, alert: Alert) -> None:
        body = alert_body(alert)
        headers = {"content-type": "application/json", "user-agent": "tollgate-alerts"}
        if self._secret:
            headers[SIGNATURE_HEADER] = signature(self._secret, body)
        try:
            async with httpx.AsyncClient(
                transport=self._transport, timeout=self._timeout, follow_redirects=False
            ) as client:
                response = await client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:  # its message may quote the URL, itself a secret: never repeated
            reason = str(exc).replace(self._url, "<webhook url>")[:200]
            raise RuntimeError(f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__) from None
        if not 200 <= response.status_code < 300:
            raise RuntimeError(f"HTTP {response.status_code}")


class EventBridgeChannel:
    """PutEvents on the default bus: ``source: tollgate``, ``detail-type: tollgate.budget.threshold``."""

    name = "eventbridge"

    def __init__(self, client: LazyClient) -> None:
        self._client = client

    def _put(self, alert: Alert) -> None:
        entry = {
            "Source": EVENT_SOURCE,
            "DetailType": EVENT_DETAIL_TYPE,
            "Detail": alert_body(alert).decode(),
            "EventBusName": EVENT_BUS,
            "Resources": [],
        }
        response = self._client.get().put_events(Entries=[entry])
        if response.get("FailedEntryCount", 0):
            failed = response.get("Entries", [{}])[0]
            raise RuntimeError(f"{failed.get('ErrorCode', 'failed')}: {failed.get('ErrorMessage', '')}"[:200])

    async def send(self, alert: Alert) -> None:
        await anyio.to_thread.run_sync(self._put, alert)
