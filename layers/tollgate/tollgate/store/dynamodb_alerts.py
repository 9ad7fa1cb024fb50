"""The DynamoDB ``AlertStore``: one item per alert, in its tenant's partition.

    item     PK              SK                                   GSI1 (keys only, while pending)
    alert    ALERT#<tenant>  ALERT#<budget>#<period>#<threshold>  ALERTS_PENDING / <at>#<tenant>#<id>

A PutItem with ``attribute_not_exists(PK)`` records an alert once. While it is pending the item is in the
sparse GSI1 directory ``ALERTS_PENDING`` (the sweep's list); the write that ends it removes the entry. The
thresholds themselves are budget rules (``dynamodb_budgets``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .alert_base import PENDING, Alert
from .budget_records import counter_expiry
from .dynamodb_items import (
    GSI1PK,
    GSI1SK,
    PK,
    SK,
    Item,
    Request,
    expression,
    get_n,
    get_s,
    n,
    s,
)
from .dynamodb_primitives import DynamoDBPrimitives
from .table import ttl_attribute

if TYPE_CHECKING:
    pass

PENDING_DIR = "ALERTS_PENDING"
_NAMES = {"#state": "state", "#att": "attempts", "#claimed": "claimed_at"}
_NAMES |= {"#dlv": "delivered", "#err": "error"}


def alert_key(tenant: str, alert_id: str) -> Item:
    return {PK: s(f"ALERT#{tenant}"), SK: s(f"ALERT#{alert_id}")}


def alert_item(alert: Alert) -> Item:
    expiry = counter_expiry(alert.period_key)  # gone with its budget's counter (never, without periods)
    return {
        **({} if expiry is None else {ttl_attribute(): n(expiry)}),
        **alert_key(alert.tenant, alert.alert_id),
        GSI1PK: s(PENDING_DIR),
        GSI1SK: s(f"{alert.at}#{alert.tenant}#{alert.alert_id}"),
        "tenant": s(alert.tenant),
        "budget_id": s(alert.budget_id),
        "period_key": s(alert.period_key),
        "threshold": n(alert.threshold),
        "limit": n(alert.limit),
        "used": n(alert.used),
        "at": s(alert.at),
        "state": s(alert.state),
        "attempts": n(alert.attempts),
        "claimed_at": s(alert.claimed_at),
        "delivered": s(",".join(alert.delivered)),
        "error": s(alert.error),
    }


def alert_from_item(item: Item) -> Alert:
    return Alert(
        tenant=get_s(item, "tenant"),
        budget_id=get_s(item, "budget_id"),
        period_key=get_s(item, "period_key"),
        threshold=get_n(item, "threshold"),
        limit=get_n(item, "limit"),
        used=get_n(item, "used"),
        at=get_s(item, "at"),
        state=get_s(item, "state"),
        attempts=get_n(item, "attempts"),
        claimed_at=get_s(item, "claimed_at"),
        delivered=tuple(c for c in get_s(item, "delivered").split(",") if c),
        error=get_s(item, "error"),
    )


def claim_request(tenant: str, alert_id: str, attempts: int, claimed_at: str, stale_before: str) -> Request:
    request = expression(
        key=alert_key(tenant, alert_id),
        values={":p": s(PENDING), ":n": n(attempts), ":one": n(1), ":c": s(claimed_at)}
        | {":s": s(stale_before)},
        names=_NAMES,
        UpdateExpression="SET #att = #att + :one, #claimed = :c",
        ConditionExpression="#state = :p AND #att = :n AND #claimed < :s",
    )
    return {**request, "ReturnValues": "ALL_NEW"}


def finish_request(
    tenant: str, alert_id: str, attempts: int, state: str, delivered: tuple[str, ...], error: str
) -> Request:
    update = "SET #state = :st, #dlv = :d, #err = :e" + ("" if state == PENDING else " REMOVE #g1pk, #g1sk")
    return expression(
        key=alert_key(tenant, alert_id),
        values={":p": s(PENDING), ":n": n(attempts), ":st": s(state)}
        | {":d": s(",".join(delivered)), ":e": s(error)},
        names=_NAMES,
        UpdateExpression=update,
        ConditionExpression="#state = :p AND #att = :n",
    )


class DynamoDBAlerts(DynamoDBPrimitives):
    """Mixed into ``DynamoDBStore``: the ``AlertStore`` methods, on the store's own primitives."""

    async def record_alert(self, alert: Alert) -> bool:
        put = expression(ConditionExpression="attribute_not_exists(#pk)")
        return await self._conditional("put_item", Item=alert_item(alert), **put) is not None

    async def get_alert(self, tenant: str, alert_id: str) -> Alert | None:
        item = await self._get(alert_key(tenant, alert_id))
        return None if item is None else alert_from_item(item)

    async def list_alerts(self, tenant: str) -> list[Alert]:
        query = expression(
            values={":pk": s(f"ALERT#{tenant}"), ":p": s("ALERT#")},
            KeyConditionExpression="#pk = :pk AND begins_with(#sk, :p)",
        )
        return [alert_from_item(item) for item in await self._query({**query, "ConsistentRead": True})]

    async def pending_alerts(self, limit: int = 100) -> list[Alert]:
        found = [alert_from_item(item) for item in await self._listed(PENDING_DIR)]
        return sorted((a for a in found if a.state == PENDING), key=lambda a: (a.at, a.tenant, a.alert_id))[
            :limit
        ]

    async def claim_alert(
        self, tenant: str, alert_id: str, attempts: int, claimed_at: str, stale_before: str
    ) -> Alert | None:
        request = claim_request(tenant, alert_id, attempts, claimed_at, stale_before)
        response = await self._conditional("update_item", **request)
        return None if response is None else alert_from_item(response["Attributes"])

    async def sweep_alerts(self, now: str) -> int:
        return 0  # the table's TTL deletes them (``alert_item``)

    async def finish_alert(
        self, tenant: str, alert_id: str, attempts: int, state: str, delivered: tuple[str, ...], error: str
    ) -> bool:
        request = finish_request(tenant, alert_id, attempts, state, delivered, error)
        return await self._conditional("update_item", **request) is not None
