"""The admin function: the admin API (keys, budgets, costs, audit, sweeps) under Mangum, buffered.

Everything is built at module scope, once per sandbox (SnapStart snapshots it): the settings with the secret
(``TOLLGATE_SECRET_ARN``, refreshed after a restore), the app, the store and its boto3 client. Mangum runs
with ``lifespan="off"``: it would otherwise run the app's lifespan on every invocation, and the DynamoDB
store needs none (it connects on first use). Gated by ``TOLLGATE_ADMIN_KEY`` in the app itself.

The same function is the sweep's timer: template.yaml's EventBridge schedule invokes it with a
``Scheduled Event``, and then it runs the sweep (``tollgate.sweeper``) instead of an HTTP request.
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Litestar
from mangum import Mangum

from tollgate.app import create_admin_app


def _prewarm(app: Litestar) -> None:
    """Build the store's client during init, so a SnapStart snapshot already holds it."""
    client = getattr(app.state["ctx"].store, "client", None)
    if callable(client):
        client()


def is_scheduled(event: Any) -> bool:
    """An EventBridge schedule's event (``source: aws.events``), not an API Gateway request."""
    return isinstance(event, dict) and event.get("source") == "aws.events"


app = create_admin_app()
_prewarm(app)
_http: Any = Mangum(app, lifespan="off")


def handler(event: Any, context: Any) -> Any:
    if is_scheduled(event):
        swept: dict[str, int] = asyncio.run(app.state["ctx"].sweeper.sweep())
        return swept
    return _http(event, context)
