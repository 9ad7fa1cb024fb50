"""hoosh's token-pool protocol (check, reserve, report) on the budget store, independent of HTTP.

The same rules as every other way of spending: only the key's pools (``Principal.check_pool``), only pools
that exist (the data plane never creates one), and each reservation is one held by id (``tok_…``) with its
time and holder, so the sweep charges and audits it like a chat request's. A reservation is bounded by
the pool's capacity, or by ``UNLIMITED_POOL_MAX_TOKENS`` in an unlimited pool.
"""

from __future__ import annotations

import secrets

from .alerts import budgets as budget_alerts
from .alerts.watch import AlertWatch
from .budgets import Budgets, pool_exhausted
from .errors import BadRequest
from .keys import Principal
from .store.base import BudgetStore, Holder, Overdrawn, Pool, UnknownPool
from .timeutil import now_str

PREFIX = "tok_"
PROVIDER = "hoosh"  # the holder's provider (and the audit entry's, should the sweep charge it)
UNLIMITED_POOL_MAX_TOKENS = 1_000_000  # the most one reservation may hold in a pool without capacity


async def existing_pool(store: BudgetStore, principal: Principal, pool: str) -> Pool:
    """The key's pool ``pool`` (403 ``pool_not_allowed`` / ``unknown_pool`` otherwise)."""
    principal.check_pool(pool)
    found = await store.get_pool(principal.tenant, pool)
    if found is None:
        raise UnknownPool(principal.tenant, pool)
    return found


def _bound(pool: Pool) -> int:
    return UNLIMITED_POOL_MAX_TOKENS if pool.capacity is None else pool.capacity


def _too_many(pool: Pool, tokens: int) -> BadRequest | None:
    if tokens <= _bound(pool):
        return None
    return BadRequest(
        f"tokens: at most {_bound(pool)} may be reserved at once in pool {pool.pool!r}", param="tokens"
    )


async def reserve(
    store: BudgetStore,
    principal: Principal,
    pool: str,
    tokens: int,
    alerts: tuple[AlertWatch, Budgets] | None = None,
    at: str | None = None,
) -> tuple[str, Pool]:
    """Hold ``tokens`` in one of the key's pools; returns the reservation id and the pool after. With
    ``alerts`` (the watch, and the budgets whose cached rules hold the thresholds), the pool's token
    thresholds are checked as for every other reserve.

    One conditional write, no read first (the store refuses a missing pool, and a reservation that does
    not fit): the pool is read only on a refusal, to tell a reservation larger than the pool could ever
    hold (400) from an exhausted budget (429), or before a reservation over ``UNLIMITED_POOL_MAX_TOKENS``
    (which only a pool with a larger capacity may take). ``at``: the reservation's time (default now; the
    app passes its clock's, the one its TPM count used, so a report can correct that count)."""
    principal.check_pool(pool)
    if tokens > UNLIMITED_POOL_MAX_TOKENS and (
        error := _too_many(await existing_pool(store, principal, pool), tokens)
    ):
        raise error
    reservation_id = PREFIX + secrets.token_hex(12)
    holder = Holder(principal.key_id, PROVIDER, pool)
    try:
        after = await store.reserve(principal.tenant, pool, reservation_id, tokens, at or now_str(), holder)
    except Overdrawn as exc:
        found = await store.get_pool(principal.tenant, pool)
        if found is not None and (error := _too_many(found, tokens)):
            raise error from None
        if alerts is not None:
            watch, rules = alerts[0], await alerts[1].applicable(principal.tenant, principal.key_id, pool)
            await budget_alerts.pool_refused(watch, store, principal.tenant, rules, pool)
        raise pool_exhausted(pool, tokens, exc.available) from exc
    if alerts is not None:
        rules = await alerts[1].applicable(principal.tenant, principal.key_id, pool)
        await budget_alerts.reserved(alerts[0], principal.tenant, rules, [], after)
    return reservation_id, after


async def report(
    store: BudgetStore,
    principal: Principal,
    pool: str,
    actual: int,
    *,
    reservation_id: str | None = None,
    reserved: int | None = None,
) -> Pool:
    """Settle a reservation by id, or (the older form) one of this key's open token reservations of
    exactly ``reserved`` tokens (then, for reservations an older tollgate held anonymously, by amount)."""
    pool_after, _ = await report_hold(
        store, principal, pool, actual, reservation_id=reservation_id, reserved=reserved
    )
    return pool_after


async def report_hold(
    store: BudgetStore,
    principal: Principal,
    pool: str,
    actual: int,
    *,
    reservation_id: str | None = None,
    reserved: int | None = None,
) -> tuple[Pool, tuple[int, str] | None]:
    """``report``, with what the settled reservation held and when it was reserved (from the pool read
    the report makes anyway; None for an anonymous legacy one): the TPM correction needs them."""
    found = await existing_pool(store, principal, pool)
    if reservation_id is not None:
        candidates = [reservation_id] if _reportable(found, principal, reservation_id) else []
    else:
        candidates = [
            rid
            for rid, (tokens, _) in sorted(found.reservations.items(), key=lambda item: item[1][1])
            if tokens == reserved and _reportable(found, principal, rid)
        ]
    for rid in candidates:  # the tokens held are known from the pool read: the settle reads nothing more
        held = found.reservations[rid][0] if rid in found.reservations else None
        settled = await store.settle(principal.tenant, pool, rid, actual, reserved=held)
        if settled is not None:
            return settled, found.reservations.get(rid)
    if reservation_id is None and reserved is not None:
        legacy = await store.settle_anonymous(principal.tenant, pool, reserved, actual)
        if legacy is not None:
            return legacy, None
    what = repr(reservation_id) if reservation_id is not None else f"of {reserved} tokens"
    raise BadRequest(
        f"no open token reservation {what} in pool {pool!r} for this key",
        param="reservation_id" if reservation_id is not None else "reserved",
    )


def _reportable(pool: Pool, principal: Principal, reservation_id: str) -> bool:
    """A token reservation of this key (open), or one the sweep charged (its late report corrects it)."""
    if not reservation_id.startswith(PREFIX):
        return False
    if reservation_id in pool.reservations:
        return pool.holders.get(reservation_id, Holder()).key_id == principal.key_id
    if reservation_id not in pool.swept:
        return False
    holder = pool.holders.get(reservation_id)  # none: a marker from before markers kept their key
    return holder is None or holder.key_id in ("", principal.key_id)
