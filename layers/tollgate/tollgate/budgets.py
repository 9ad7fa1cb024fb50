"""USD budgets with calendar periods, per key and per pool, beside token pools (independent of HTTP).

A request must fit every budget that applies: its key's (``key:<key_id>``) and its pool's (``pool:<pool>``).
Before the upstream call each one holds the request's upper-bound cost (``cost_bound``: the most any
candidate can cost, tokens reserved x the model's highest per-token price, in micro-USD) in the current
period's counter, one conditional write each; after it, each is settled with the real cost. The period is
part of the counter's key (``budget_periods``), so a new period starts clean. A local model (price 0) holds
nothing and is never refused; a model without a price under a USD budget is refused (400), never let
through uncounted. Time comes from an injected clock.

``views`` is what ``budgets show`` and ``GET /v1/budgets`` list (token pools too); ``alert_levels`` is what
the alerts read after a reserve or a refusal.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import anyio

from . import tool_fees
from .accounting import Pricing, usd
from .budget_periods import Window, window
from .errors import BadRequest, BudgetExceeded
from .logs import log_event
from .store.base import Overdrawn, Pool, Store
from .store.budget_records import KEY_SCOPE, POOL_SCOPE, BudgetRule, UsdCounter, budget_id
from .timeutil import Clock, format_time, utc_now
from .tool_fees import ToolUses

logger = logging.getLogger("tollgate.budgets")

Call = tuple[str, str, int]  # provider, model, tokens reserved for it


class ModelNotPriced(BadRequest):
    default_code = "model_not_priced"


class ToolNotPriced(BadRequest):
    default_code = "tool_not_priced"


class Unpriced(NamedTuple):
    """What keeps a request's cost unbounded: a candidate's model with no price, or a billed tool that the
    candidate's provider would run and its price gives no fee for (never, for ``tool_fees.UNPRICED``)."""

    provider: str
    model: str
    tool: str | None = None

    def refusal(self, rule: BudgetRule) -> BadRequest:
        if self.tool in tool_fees.UNPRICED:
            return ToolNotPriced(
                f"tool {self.tool} is billed by {self.provider} in a way tollgate cannot price, and "
                f"{describe(rule)} counts USD: send the request without it",
                param="tools",
            )
        if self.tool is not None:
            return ToolNotPriced(
                f"tool {self.tool} is billed per use, the price of model {self.provider}/{self.model} gives "
                f"no {self.tool!r} fee, and {describe(rule)} counts USD: add the fee (USD per 1,000 uses) to "
                "its price in the pricing file (TOLLGATE_PRICING_FILE), or send the request without the tool",
                param="tools",
            )
        return ModelNotPriced(
            f"model {self.provider}/{self.model} has no price, and {describe(rule)} counts USD: "
            "give it a price in the pricing file (TOLLGATE_PRICING_FILE) before it can be used",
            param="model",
        )


@dataclass(frozen=True, slots=True)
class Hold:
    """One USD reservation a request holds: which counter, and how much."""

    budget_id: str
    period_key: str
    amount: int
    used: int = 0  # the counter's settled + reserved right after this hold (the reserve's own answer)


class AlertLevel(NamedTuple):
    """One budget a request touched, for the alerts: used = settled + reserved, in the budget's unit
    (micro-USD for ``key:<id>`` / ``pool:<name>``, tokens for ``tokens:<pool>``)."""

    tenant: str
    budget_id: str
    period_key: str
    limit: int
    used: int
    alert_at: tuple[int, ...]


def overdrawn(limit: int | None, used: int, reserved: int) -> int:
    """How far a budget's settled + reserved is past its limit (0 within it or without a limit): usage
    above a reservation is charged in full (``tollgate.overdraft``)."""
    return 0 if limit is None else max(used + reserved - limit, 0)


def usd_rules(rules: Iterable[BudgetRule]) -> list[BudgetRule]:
    """The rules that hold a USD budget (the others hold only alert thresholds)."""
    return [r for r in rules if r.usd_limit is not None]


def describe(rule: BudgetRule) -> str:
    """``the daily USD budget of key 'key_1' (Europe/Berlin)``."""
    when = "USD budget" if rule.period == "none" else f"{rule.period} USD budget"
    zone = "" if rule.period == "none" or rule.timezone == "UTC" else f" ({rule.timezone})"
    return f"the {when} of {rule.scope} {rule.name!r}{zone}"


def exceeded(
    *,
    kind: str,
    scope: str,
    name: str,
    period: str,
    timezone: str | None,
    limit: int | None,
    needed: int,
    remaining: int,
    resets_at: str | None,
    what: str,
    retry_after: float | None = None,
) -> BudgetExceeded:
    """429 ``budget_exceeded`` naming the budget, what the request needed, what remains, when it resets."""
    if kind == "usd":
        amounts = f"this request may cost up to ${usd(needed)}, ${usd(remaining)} remains"
    else:
        amounts = f"this request may need {needed} tokens, {remaining} remain"
    reset = f"it resets at {resets_at}" if resets_at else "it does not reset (no period)"
    budget: dict[str, Any] = {
        "kind": kind,
        "scope": scope,
        "name": name,
        "period": period,
        "timezone": timezone,
        "limit": limit,
        "needed": needed,
        "remaining": remaining,
        "resets_at": resets_at,
        "unit": "micro_usd" if kind == "usd" else "tokens",
    }
    return BudgetExceeded(f"{what} is exhausted: {amounts}; {reset}", budget=budget, retry_after=retry_after)


def pool_exhausted(pool: str, needed: int, available: int) -> BudgetExceeded:
    """A token pool's refusal (no period: it does not reset)."""
    return exceeded(
        kind="tokens",
        scope=POOL_SCOPE,
        name=pool,
        period="none",
        timezone=None,
        limit=None,
        needed=needed,
        remaining=max(available, 0),
        resets_at=None,
        what=f"the token budget of pool {pool!r}",
    )


class Budgets:
    """``cache_seconds``: how long a process reuses the rules it read for a (tenant, key, pool), like the key
    cache (``TOLLGATE_KEY_CACHE_SECONDS``): a changed rule reaches other processes within that time (the
    admin API's own process at once, ``forget``); the counters themselves are never cached."""

    MAX_CACHED = 10_000

    def __init__(
        self, store: Store, pricing: Pricing, clock: Clock = utc_now, *, cache_seconds: float = 0
    ) -> None:
        self.store = store
        self.pricing = pricing
        self.clock = clock
        self.cache_seconds = cache_seconds
        self._cache: dict[tuple[str, str, str], tuple[float, list[BudgetRule]]] = {}

    async def rules(self, tenant: str, key_id: str, pool: str) -> list[BudgetRule]:
        """The USD budgets that apply to a request of ``key_id`` on ``pool``: the key's first."""
        return usd_rules(await self.applicable(tenant, key_id, pool))

    async def applicable(self, tenant: str, key_id: str, pool: str) -> list[BudgetRule]:
        """Every rule of the key and of the pool (the key's first), those holding only ``alert_at`` too:
        one read, then cached like ``rules`` (the alerts take their thresholds from here)."""
        cached = self._cache.get((tenant, key_id, pool))
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        ids = [budget_id(KEY_SCOPE, key_id), budget_id(POOL_SCOPE, pool)]
        found = {r.budget_id: r for r in await self.store.get_budget_rules(tenant, ids)}
        rules = [found[i] for i in ids if i in found]
        if self.cache_seconds > 0:
            if len(self._cache) >= self.MAX_CACHED:
                self._cache.clear()
            self._cache[tenant, key_id, pool] = (time.monotonic() + self.cache_seconds, rules)
        return rules

    def forget(self, tenant: str) -> None:
        """Drop the cached rules of ``tenant`` (its budgets were just changed through this process)."""
        for cached in [c for c in self._cache if c[0] == tenant]:
            self._cache.pop(cached, None)

    def cost_bound(
        self, calls: Iterable[Call], uses: Mapping[str, ToolUses] | None = None
    ) -> tuple[int, Unpriced | None]:
        """The most any of ``calls`` can cost (micro-USD, rounded up), with the billed tool uses its
        provider may run (``uses``: provider -> ``ToolUses``, each use at its model's fee), and the first
        thing that has no price (``Unpriced``) if there is one."""
        bound = 0
        for provider, model, tokens in calls:
            price = self.pricing.price(provider, model)
            if price is None:
                return 0, Unpriced(provider, model)
            used = (uses or {}).get(provider)
            feeless = sorted(kind for kind in used.kinds if price.fee(kind) is None) if used else []
            if feeless:
                return 0, Unpriced(provider, model, feeless[0])
            bound = max(bound, math.ceil(price.bound(tokens, used)))
        return bound, None

    async def reserve(
        self,
        tenant: str,
        key_id: str,
        pool: str,
        request_id: str,
        priced: tuple[int, Unpriced | None],
        applicable: Sequence[BudgetRule] | None = None,
    ) -> list[Hold]:
        """Hold the request's upper-bound cost (``priced``: what ``cost_bound`` gave for its calls) in every
        USD budget that applies (all or none); ``applicable``: the rules the caller already read
        (``applicable``), else they are read here."""
        rules = usd_rules(applicable) if applicable is not None else await self.rules(tenant, key_id, pool)
        if not rules:
            return []
        bound, unpriced = priced
        if unpriced is not None:
            raise unpriced.refusal(rules[0])
        if bound == 0:
            return []  # a local model (price 0) is never blocked by a USD budget
        now = self.clock()
        holds: list[Hold] = []
        pending: Hold | None = None  # the hold being written: an error or a cancel may come after it landed
        try:
            for rule in rules:
                period = window(rule.period, rule.timezone, now)
                pending = Hold(rule.budget_id, period.key, bound)
                holds.append(await self._hold(rule, period, now, request_id, bound))
                pending = None
        except BaseException as exc:  # all or none, also when cancelled: a refusal wrote nothing
            written = holds if pending is None or isinstance(exc, BudgetExceeded) else [*holds, pending]
            with anyio.CancelScope(shield=True):
                await self.release(tenant, request_id, written)
            raise
        return holds

    async def release(self, tenant: str, request_id: str, holds: Sequence[Hold]) -> None:
        """Give back holds of a request that spent nothing (its reserve failed or was cancelled); a hold
        that cannot be given back now is logged and left to the sweep (which charges its upper bound)."""
        for hold in holds:
            try:
                await self.store.settle_usd(
                    tenant, hold.budget_id, hold.period_key, request_id, 0, reserved=hold.amount
                )
            except Exception as error:  # the reserve's own error is the one the caller gets
                log_event(logger, logging.WARNING, "usd_release_failed", request_id=request_id, error=error)

    async def _hold(
        self, rule: BudgetRule, period: Window, now: datetime, request_id: str, amount: int
    ) -> Hold:
        assert rule.usd_limit is not None
        reservation = (request_id, amount, format_time(now))
        try:
            counter = await self.store.reserve_usd(
                rule.tenant, rule.budget_id, period.key, reservation, rule.usd_limit
            )
        except Overdrawn as exc:
            raise self._refusal(rule, period, amount, exc.available, now) from exc
        return Hold(rule.budget_id, period.key, amount, counter.used + counter.reserved)

    @staticmethod
    def _refusal(rule: BudgetRule, period: Window, needed: int, left: int, now: datetime) -> BudgetExceeded:
        wait = None if period.ends is None else (period.ends - now).total_seconds()
        return exceeded(
            kind="usd",
            scope=rule.scope,
            name=rule.name,
            period=rule.period,
            timezone=rule.timezone,
            limit=rule.usd_limit,
            needed=needed,
            remaining=max(left, 0),
            resets_at=period.resets_at,
            what=describe(rule),
            retry_after=wait,
        )

    async def settle(
        self, tenant: str, request_id: str, holds: Sequence[Hold], cost: int
    ) -> list[UsdCounter | None]:
        """Charge ``cost`` (micro-USD) to each hold's counter, releasing the rest (exactly once each);
        the counters as each settle answered (None: nothing was settled)."""
        return [
            await self.store.settle_usd(
                tenant, hold.budget_id, hold.period_key, request_id, cost, reserved=hold.amount
            )
            for hold in holds
        ]

    # ------------------------------------------------------------------------------------------ reading

    async def usd_view(self, rule: BudgetRule) -> dict[str, Any]:
        assert rule.usd_limit is not None
        period = window(rule.period, rule.timezone, self.clock())
        counter = await self.store.get_usd_counter(rule.tenant, rule.budget_id, period.key)
        counter = counter or UsdCounter(rule.tenant, rule.budget_id, period.key)
        return {
            "kind": "usd",
            "scope": rule.scope,
            "name": rule.name,
            "period": rule.period,
            "timezone": rule.timezone,
            "unit": "micro_usd",
            "limit": rule.usd_limit,
            "spent": counter.used,
            "reserved": counter.reserved,
            "remaining": max(rule.usd_limit - counter.used - counter.reserved, 0),
            "overdrawn": overdrawn(rule.usd_limit, counter.used, counter.reserved),  # tollgate.overdraft
            "period_key": period.key,
            "resets_at": period.resets_at,
            "alert_at": list(rule.alert_at),
        }

    @staticmethod
    def pool_view(pool: Pool, rule: BudgetRule | None) -> dict[str, Any]:
        return {
            "kind": "tokens",
            "scope": POOL_SCOPE,
            "name": pool.pool,
            "period": "none",
            "timezone": None,
            "unit": "tokens",
            "limit": pool.capacity,
            "spent": pool.used,
            "reserved": pool.reserved,
            "remaining": pool.remaining,
            "overdrawn": overdrawn(pool.capacity, pool.used, pool.reserved),  # tollgate.overdraft
            "period_key": "all",
            "resets_at": None,
            "alert_at": list(rule.alert_at) if rule is not None else [],
            # the names GET /v1/tokens/pools uses, for scripts that read them
            "pool": pool.pool,
            "capacity": pool.capacity,
            "used": pool.used,
            "open_reservations": len(pool.reservations),
        }

    async def views(
        self, tenant: str, *, key_id: str | None = None, pools: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Every budget of ``tenant`` (or only those of one key and its pools): token pools, then USD."""
        rules = await self.store.list_budget_rules(tenant)
        if pools is None:
            found = await self.store.list_pools(tenant)
        else:
            found = [p for p in [await self.store.get_pool(tenant, name) for name in pools] if p is not None]
        wanted = None if pools is None else {budget_id(POOL_SCOPE, p) for p in pools}
        if key_id is not None and wanted is not None:
            wanted.add(budget_id(KEY_SCOPE, key_id))
        chosen = [r for r in rules if wanted is None or r.budget_id in wanted]
        by_id = {r.budget_id: r for r in chosen}
        views = [self.pool_view(p, by_id.get(budget_id(POOL_SCOPE, p.pool))) for p in found]
        views += [await self.usd_view(r) for r in chosen if r.usd_limit is not None]
        return views

    async def alert_levels(self, tenant: str, key_id: str, pool: str) -> list[AlertLevel]:
        """For each budget a request of ``key_id`` on ``pool`` touches (the key's and the pool's USD
        budgets, the pool's token capacity), its limit and what is used now (settled + reserved)."""
        ids = [budget_id(KEY_SCOPE, key_id), budget_id(POOL_SCOPE, pool)]
        rules = {r.budget_id: r for r in await self.store.get_budget_rules(tenant, ids)}
        levels: list[AlertLevel] = []
        for rule in (rules[i] for i in ids if i in rules):
            if rule.usd_limit is not None:
                view = await self.usd_view(rule)
                used = view["spent"] + view["reserved"]
                levels.append(
                    AlertLevel(
                        tenant, rule.budget_id, view["period_key"], rule.usd_limit, used, rule.alert_at
                    )
                )
        found = await self.store.get_pool(tenant, pool)
        if found is not None and found.capacity is not None:
            alerts = rules.get(budget_id(POOL_SCOPE, pool))
            used = found.used + found.reserved
            levels.append(
                AlertLevel(
                    tenant, f"tokens:{pool}", "all", found.capacity, used, alerts.alert_at if alerts else ()
                )
            )
        return levels
