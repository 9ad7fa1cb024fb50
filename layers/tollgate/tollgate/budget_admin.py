"""Setting budgets, for the CLI and the admin API alike: a pool's token capacity and USD budget, a key's USD
budget, each with its period, timezone and alert thresholds. Fields not given keep their stored value; the
input is checked before anything is written (a bad one is ``BadRequest``: 400, or exit 2 on the CLI)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from .budget_periods import DEFAULT_TIMEZONE, check_period, check_timezone
from .errors import BadRequest
from .schemas.limits import MAX_ALERT_PERCENT, MAX_ALERTS, MAX_BUDGET_USD
from .store.base import Pool, Store
from .store.budget_records import KEY_SCOPE, POOL_SCOPE, BudgetRule

MICRO = Decimal(1_000_000)
_UNSET: Any = object()


def micro_usd(value: object, *, param: str = "usd") -> int:
    """A USD amount (``50``, ``12.5``, ``"0.000001"``) as integer micro-USD: at least 0, at most
    ``MAX_BUDGET_USD``, at most six decimals; anything else is a ``BadRequest`` naming ``param``."""
    if isinstance(value, bool):
        raise BadRequest(f"{param}: expected a USD amount, got {value!r}", param=param)
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise BadRequest(
            f"{param}: expected a USD amount such as 50 or 12.5, got {value!r}", param=param
        ) from None
    if not amount.is_finite() or amount < 0:
        raise BadRequest(f"{param}: must be a USD amount >= 0, got {value!r}", param=param)
    if amount > MAX_BUDGET_USD:
        raise BadRequest(f"{param}: must be <= {MAX_BUDGET_USD} USD, got {value!r}", param=param)
    micro = amount * MICRO
    if micro != micro.to_integral_value():
        raise BadRequest(f"{param}: at most 6 decimals (micro-USD), got {value!r}", param=param)
    return int(micro)


def alert_percents(values: object, *, param: str = "alert_at") -> tuple[int, ...]:
    """Alert thresholds (percent, 1..1000, at most 10), sorted and without repeats ("" or []: none)."""
    if isinstance(values, str):
        values = values.split(",") if values.strip() else []
    items = values
    if not isinstance(items, list | tuple):
        raise BadRequest(f"{param}: expected percents such as 50,80,100", param=param)
    percents: list[int] = []
    for item in items:
        text = str(item).strip()
        if (
            isinstance(item, bool)
            or not (text.isascii() and text.isdigit())
            or not 1 <= int(text) <= MAX_ALERT_PERCENT
        ):
            raise BadRequest(
                f"{param}: each threshold is a whole percent from 1 to {MAX_ALERT_PERCENT}, got {item!r}",
                param=param,
            )
        percents.append(int(text))
    if len(set(percents)) > MAX_ALERTS:
        raise BadRequest(f"{param}: at most {MAX_ALERTS} thresholds", param=param)
    return tuple(sorted(set(percents)))


@dataclass(frozen=True, slots=True)
class BudgetChange:
    """What an operator changes; ``_UNSET`` fields stay as stored (``usd`` None removes the USD budget)."""

    usd: int | None = _UNSET
    period: str = _UNSET
    timezone: str = _UNSET
    alert_at: tuple[int, ...] = _UNSET
    tokens: int | None = field(default=_UNSET)  # pools only; None: unlimited

    def __post_init__(self) -> None:
        if self.period is not _UNSET:
            check_period(self.period)
        if self.timezone is not _UNSET:
            check_timezone(self.timezone)

    @property
    def rule_changes(self) -> bool:
        return any(v is not _UNSET for v in (self.usd, self.period, self.timezone, self.alert_at))

    def applied(self, rule: BudgetRule) -> BudgetRule:
        changes = {
            name: getattr(self, name)
            for name in ("period", "timezone", "alert_at")
            if getattr(self, name) is not _UNSET
        }
        if self.usd is not _UNSET:
            changes["usd_limit"] = self.usd
        return replace(rule, **changes)


def change_from(fields: dict[str, Any]) -> BudgetChange:
    """A change from the fields a client sent (the pydantic body's ``model_fields_set``), checked."""
    values: dict[str, Any] = {}
    if "usd" in fields:
        values["usd"] = None if fields["usd"] is None else micro_usd(fields["usd"])
    for name in ("period", "timezone"):
        if fields.get(name) is not None:
            values[name] = fields[name]
    if fields.get("alert_at") is not None:
        values["alert_at"] = alert_percents(fields["alert_at"])
    if "tokens" in fields:
        values["tokens"] = fields["tokens"]
    return BudgetChange(**values)


def key_budget_change(
    usd: object | None, period: str | None, timezone: str | None, alert_at: object | None
) -> BudgetChange:
    """A new key's own budget (``keys create --budget-usd ...``, ``POST /admin/keys``), checked before the
    key is created; nothing to set when all are None."""
    if usd is None and (period is not None or timezone is not None):
        raise BadRequest("a budget period or timezone needs a USD amount (budget_usd)", param="budget_usd")
    fields = {"usd": usd, "period": period, "timezone": timezone, "alert_at": alert_at}
    return change_from({k: v for k, v in fields.items() if v is not None})


async def set_rule(
    store: Store, tenant: str, scope: str, name: str, change: BudgetChange
) -> BudgetRule | None:
    """Merge ``change`` into the stored rule of (tenant, scope, name) and store it (if it changes one)."""
    found = await store.get_budget_rules(tenant, [f"{scope}:{name}"])
    if not change.rule_changes:
        return found[0] if found else None
    base = found[0] if found else BudgetRule(tenant, scope, name, None, "none", DEFAULT_TIMEZONE)
    rule = change.applied(base)
    await store.put_budget_rule(rule)
    return rule


async def set_pool_budget(
    store: Store, tenant: str, pool: str, change: BudgetChange
) -> tuple[Pool, BudgetRule | None]:
    """A pool's capacity (when given; the pool is created if missing) and its USD budget."""
    if change.tokens is not _UNSET:
        found = await store.set_capacity(tenant, pool, change.tokens)
    else:
        await store.create_pool(tenant, pool)
        existing = await store.get_pool(tenant, pool)
        assert existing is not None
        found = existing
    return found, await set_rule(store, tenant, POOL_SCOPE, pool, change)


async def set_key_budget(store: Store, tenant: str, key_id: str, change: BudgetChange) -> BudgetRule | None:
    return await set_rule(store, tenant, KEY_SCOPE, key_id, change)
