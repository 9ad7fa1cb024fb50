"""The admin function: the admin API (keys, budgets, costs, audit, sweeps) under Mangum, buffered.

Everything is built at module scope, once per sandbox (SnapStart snapshots it): the settings with the secret
(``TOLLGATE_SECRET_ARN``, refreshed after a restore), the app, the store and its boto3 client. Mangum runs
with ``lifespan="off"``: it would otherwise run the app's lifespan on every invocation, and the DynamoDB
store needs none (it connects on first use). Gated by ``TOLLGATE_ADMIN_KEY`` in the app itself.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from mangum import Mangum

from tollgate.app import create_admin_app


def _prewarm(app: Litestar) -> None:
    """Build the store's client during init, so a SnapStart snapshot already holds it."""
    client = getattr(app.state["ctx"].store, "client", None)
    if callable(client):
        client()


app = create_admin_app()
_prewarm(app)
handler: Any = Mangum(app, lifespan="off")
