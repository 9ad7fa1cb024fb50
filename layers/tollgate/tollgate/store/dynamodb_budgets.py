"""USD budgets on DynamoDB (``budget_records.UsdBudgetStore``), in the tenant's own partition.

    item          PK                SK                          GSI1PK / GSI1SK
    budget rule   BUDGET#<tenant>   RULE#<budget>               BUDGETS / <tenant>#<budget>
    USD counter   BUDGET#<tenant>   USD#<budget>#<period>       -

A counter keeps ``used``, ``reserved`` and ``committed`` (= used + reserved: a condition cannot add), the
open ``reservations`` (id -> {amount, at}) and the sweep's ``swept`` markers. Reserve is one UpdateItem
conditioned on ``committed <= limit - amount`` and on the id not being held; a period's counter is created
by a conditional put on its first reservation. Settle, sweep and a late settle's correction are each one
conditional UpdateItem on the counter, like a pool's (``dynamodb_sweep``). The sweep finds counters by
budget (the rules, from GSI1), never by a Scan, and reads only a budget's counters that can still hold
something: a KeyCondition ``SK BETWEEN USD#<budget>#<floor> AND USD#<budget>#~`` with the period-key floor
of ``budget_records.sweep_floor``, so its reads stay bounded (about 70 daily counters per budget at most)
however long the history. Every counter but ``all`` carries the table's TTL attribute
(``budget_records.counter_expiry``); the sweep never relies on TTL having deleted anything (it is lazy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..timeutil import parse_time
from .base import Overdrawn
from .budget_records import (
    BudgetRule,
    UsdCounter,
    UsdReservation,
    counter_expiry,
    sweep_floor,
    sweep_margin,
)
from .dynamodb_items import GSI1PK, GSI1SK, PK, SK, Attr, Item, Request, expression, get_n, get_s, n, opt_n, s
from .dynamodb_primitives import DynamoDBPrimitives
from .table import ttl_attribute

if TYPE_CHECKING:
    pass

RULES_DIR = "BUDGETS"
_ATTEMPTS = 20
_IF_ABSENT = expression(ConditionExpression="attribute_not_exists(#pk)")
_NAMES = {"#com": "committed", "#swept": "swept", "#amt": "amount", "#at": "at"}


class BudgetConflict(RuntimeError):
    """A USD reservation kept losing to concurrent writers."""


def _partition(tenant: str) -> Attr:
    return s(f"BUDGET#{tenant}")


def rule_key(tenant: str, budget: str) -> Item:
    return {PK: _partition(tenant), SK: s(f"RULE#{budget}")}


def rule_item(rule: BudgetRule) -> Item:
    item: Item = {
        **rule_key(rule.tenant, rule.budget_id),
        GSI1PK: s(RULES_DIR),
        GSI1SK: s(f"{rule.tenant}#{rule.budget_id}"),
        "tenant": s(rule.tenant),
        "scope": s(rule.scope),
        "name": s(rule.name),
        "period": s(rule.period),
        "timezone": s(rule.timezone),
        "alert_at": {"L": [n(a) for a in rule.alert_at]},
    }
    if rule.usd_limit is not None:
        item["usd_limit"] = n(rule.usd_limit)
    return item


def rule_from_item(item: Item) -> BudgetRule:
    return BudgetRule(
        tenant=get_s(item, "tenant"),
        scope=get_s(item, "scope"),
        name=get_s(item, "name"),
        usd_limit=opt_n(item, "usd_limit"),
        period=get_s(item, "period"),
        timezone=get_s(item, "timezone"),
        alert_at=tuple(int(a["N"]) for a in item.get("alert_at", {}).get("L", [])),
    )


def counter_key(tenant: str, budget: str, period: str) -> Item:
    return {PK: _partition(tenant), SK: s(f"USD#{budget}#{period}")}


def new_counter_item(tenant: str, budget: str, period: str) -> Item:
    expiry = counter_expiry(period)
    expires = {} if expiry is None else {ttl_attribute(): n(expiry)}
    return {
        **expires,
        **counter_key(tenant, budget, period),
        "tenant": s(tenant),
        "budget": s(budget),
        "period": s(period),
        "used": n(0),
        "reserved": n(0),
        "committed": n(0),
        "reservations": {"M": {}},
        "swept": {"M": {}},
    }


def _held(value: Attr) -> tuple[int, str]:
    return get_n(value["M"], "amount"), get_s(value["M"], "at")


def counter_from_item(item: Item) -> UsdCounter:
    return UsdCounter(
        tenant=get_s(item, "tenant"),
        budget_id=get_s(item, "budget"),
        period_key=get_s(item, "period"),
        used=get_n(item, "used"),
        reserved=get_n(item, "reserved"),
        reservations={rid: _held(v) for rid, v in item.get("reservations", {}).get("M", {}).items()},
        swept={rid: _held(v) for rid, v in item.get("swept", {}).get("M", {}).items()},
    )


def _marked(amount: int, at: str) -> Attr:
    return {"M": {"amount": n(amount), "at": s(at)}}


def _update(key: Item, values: Item, rid: str, update: str, condition: str) -> Request:
    request = expression(
        key=key,
        values=values,
        names={**_NAMES, "#rid": rid},
        UpdateExpression=update,
        ConditionExpression=condition,
    )
    return {**request, "ReturnValues": "ALL_NEW"}


def reserve_request(key: Item, rid: str, amount: int, at: str, room: int) -> Request:
    """Hold ``amount`` if committed <= ``room`` (= limit - amount) and ``rid`` is not held yet."""
    return _update(
        key,
        {":a": n(amount), ":room": n(room), ":r": _marked(amount, at)},
        rid,
        "SET #com = #com + :a, #rsv = #rsv + :a, #map.#rid = :r",
        "attribute_exists(#pk) AND #com <= :room AND attribute_not_exists(#map.#rid)",
    )


def settle_request(key: Item, rid: str, amount: int, actual: int) -> Request:
    return _update(
        key,
        {":t": n(amount), ":a": n(actual), ":d": n(actual - amount)},
        rid,
        "SET #com = #com + :d, #rsv = #rsv - :t, #used = #used + :a REMOVE #map.#rid",
        "#map.#rid.#amt = :t",
    )


def correct_request(key: Item, rid: str, charged: int, actual: int) -> Request:
    return _update(
        key,
        {":c": n(charged), ":d": n(actual - charged)},
        rid,
        "SET #com = #com + :d, #used = #used + :d REMOVE #swept.#rid",
        "#swept.#rid.#amt = :c",
    )


def sweep_request(key: Item, rid: str, amount: int, at: str) -> Request:
    """The amount goes from reserved to used (``committed`` does not move); its marker stays."""
    return _update(
        key,
        {":t": n(amount), ":m": _marked(amount, at)},
        rid,
        "SET #rsv = #rsv - :t, #used = #used + :t, #swept.#rid = :m REMOVE #map.#rid",
        "#map.#rid.#amt = :t",
    )


def drop_marker_request(key: Item, rid: str, at: str) -> Request:
    return expression(
        key=key,
        values={":at": s(at)},
        names={**_NAMES, "#rid": rid},
        UpdateExpression="REMOVE #swept.#rid",
        ConditionExpression="#swept.#rid.#at = :at",
    )


def _prefix_query(tenant: str, prefix: str) -> Request:
    values = {":pk": _partition(tenant), ":p": s(prefix)}
    request = expression(values=values, KeyConditionExpression="#pk = :pk AND begins_with(#sk, :p)")
    return {**request, "ConsistentRead": True}


def _unexpired_query(tenant: str, budget: str, floor: str) -> Request:
    values = {":pk": _partition(tenant), ":lo": s(f"USD#{budget}#{floor}"), ":hi": s(f"USD#{budget}#~")}
    request = expression(values=values, KeyConditionExpression="#pk = :pk AND #sk BETWEEN :lo AND :hi")
    return {**request, "ConsistentRead": True}


class DynamoDBBudgets(DynamoDBPrimitives):
    """Mixed into ``DynamoDBStore``: the USD budget methods, on the store's own primitives."""

    async def put_budget_rule(self, rule: BudgetRule) -> None:
        await self.call("put_item", Item=rule_item(rule))

    async def get_budget_rules(self, tenant: str, budget_ids: list[str]) -> list[BudgetRule]:
        keys = [rule_key(tenant, b) for b in dict.fromkeys(budget_ids)]
        return [rule_from_item(item) for item in await self._batch_get(keys)] if keys else []

    async def list_budget_rules(self, tenant: str | None = None) -> list[BudgetRule]:
        if tenant is None:
            found = await self._listed(RULES_DIR)
        else:
            found = await self._query(_prefix_query(tenant, "RULE#"))
        return sorted((rule_from_item(i) for i in found), key=lambda r: (r.tenant, r.scope, r.name))

    async def reserve_usd(
        self, tenant: str, budget: str, period_key: str, reservation: tuple[str, int, str], limit: int
    ) -> UsdCounter:
        rid, amount, at = reservation
        key = counter_key(tenant, budget, period_key)
        request = reserve_request(key, rid, amount, at, limit - amount)
        for _ in range(_ATTEMPTS):
            if amount <= limit:
                response = await self._conditional("update_item", **request)
                if response is not None:
                    return counter_from_item(response["Attributes"])
            old = await self._get(key)
            if old is None:  # the period's first reservation: create its counter, then reserve
                new = new_counter_item(tenant, budget, period_key)
                await self._conditional("put_item", Item=new, **_IF_ABSENT)
                continue
            if rid in old.get("reservations", {}).get("M", {}):
                return counter_from_item(old)  # a retried reserve: already held, once
            if get_n(old, "committed") + amount > limit:
                raise Overdrawn(max(0, limit - get_n(old, "committed")))
        raise BudgetConflict(f"could not reserve in budget {tenant}/{budget}/{period_key}")

    async def settle_usd(
        self,
        tenant: str,
        budget: str,
        period_key: str,
        reservation_id: str,
        actual: int,
        *,
        reserved: int | None = None,
    ) -> UsdCounter | None:
        key = counter_key(tenant, budget, period_key)
        if reserved is not None:  # the usual case, no read: still held, for the amount the caller holds
            request = settle_request(key, reservation_id, reserved, actual)
            if (response := await self._conditional("update_item", **request)) is not None:
                return counter_from_item(response["Attributes"])
        item = await self._get(key) or {}
        held = item.get("reservations", {}).get("M", {}).get(reservation_id)
        marker = item.get("swept", {}).get("M", {}).get(reservation_id)
        if held is not None:
            request = settle_request(key, reservation_id, get_n(held["M"], "amount"), actual)
        elif marker is not None:
            request = correct_request(key, reservation_id, get_n(marker["M"], "amount"), actual)
        else:
            return None
        response = await self._conditional("update_item", **request)
        return None if response is None else counter_from_item(response["Attributes"])

    async def get_usd_counter(self, tenant: str, budget: str, period_key: str) -> UsdCounter | None:
        item = await self._get(counter_key(tenant, budget, period_key))
        return None if item is None else counter_from_item(item)

    async def sweep_usd_reservations(self, older_than: str, at: str) -> list[UsdReservation]:
        swept: list[UsdReservation] = []
        now, cutoff = parse_time(at), parse_time(older_than)
        floor = sweep_floor(now, sweep_margin(cutoff, now))
        budgets = sorted({(r.tenant, r.budget_id) for r in await self.list_budget_rules()})
        for tenant, budget_id in budgets:
            for item in await self._query(_unexpired_query(tenant, budget_id, floor)):
                counter = counter_from_item(item)
                key = counter_key(tenant, counter.budget_id, counter.period_key)
                for rid, (_, marked) in sorted(counter.swept.items()):
                    if marked < older_than:
                        await self._conditional("update_item", **drop_marker_request(key, rid, marked))
                for rid, (amount, held_at) in sorted(counter.reservations.items(), key=lambda r: r[1][1]):
                    if held_at >= older_than:
                        continue
                    if await self._conditional("update_item", **sweep_request(key, rid, amount, at)):
                        budget, period = counter.budget_id, counter.period_key
                        swept.append(UsdReservation(tenant, budget, period, rid, amount, held_at))
        return swept
