"""Cost rollups from audit entries: what each entry adds, the reports read from them, and the check.

Every request entry the ledger writes also adds its counters to the row of its tenant x day x key x
provider/model (``change_of``), in the same ``finish`` and before the response's last byte. The rows then
answer ``/v1/costs``, ``GET /admin/costs`` and ``tollgate costs`` in O(days x keys x models).

The rollups count what ``accounting.summarize_costs`` counts from the entries, without ever reading them:

- the registry is not a request: the ledger never rolls it up (only ``Ledger`` entries add);
- the sweep's ``abandoned`` estimate adds only once its charge went through (``Sweeper``), so a repeated
  estimate (a sweep that stopped between its entry and its charge audits again) counts once;
- a late settle that corrects the sweep's charge (``Pool.corrected``) takes the estimate back out
  (``abandoned_change(...).negated()``), as ``without_superseded`` drops it: the request counts once.

``verify`` recomputes a range from the audit entries (the tamper-evident record) and names every row that
differs; ``repair`` adds the differences (for past days: an entry written while it runs may be counted on
one side only). Data written before rollups existed is handled the same way: ``tollgate costs --verify
--repair --since <first day>`` backfills it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from .accounting import TOTALS, Pricing, refused, token_parts, usd, without_superseded
from .store.audit_base import ABANDONED, AuditEntry
from .store.base import Reservation
from .store.rollup_base import COUNTERS, Rollup, RollupStore, by_cell
from .timeutil import format_time, parse_time

Cell = tuple[str, str, str, str, str]
LAST_DAY = "9999-12-32"  # after every day (days compare as strings)


def change_of(entry: AuditEntry) -> Rollup:
    """What one request entry adds to its row."""
    cell = (entry.tenant, entry.at[:10], entry.key_id, entry.provider, entry.model)
    if refused(entry):
        return Rollup(*cell, refused=1)
    parts = token_parts(entry)
    return Rollup(
        *cell,
        requests=1,
        prompt_tokens=entry.prompt_tokens,
        completion_tokens=entry.completion_tokens,
        cost_micro_usd=entry.cost_micro_usd or 0,
        unpriced_requests=int(entry.cost_micro_usd is None),
        cached_tokens=parts["cached_tokens"],
        cache_write_tokens=parts["cache_write_tokens"],
        cache_write_1h_tokens=parts["cache_write_1h_tokens"],
        reasoning_tokens=parts["reasoning_tokens"],
    )


def abandoned_entry(pricing: Pricing, reservation: Reservation, at: str, digest: str = "") -> AuditEntry:
    """The sweep's entry for a reservation nobody settled (not yet chained): status ``abandoned`` (itself
    the mark that the usage is an estimate), charged its reserved upper bound, counted as completion
    tokens. Its cost is the bound the request's USD budgets held (``Holder.cost_bound``: the dearest
    candidate, rounded up), so the audit, the rollups and the budgets agree on what the sweep charged,
    also when a fallback model would have served it; a hold written without that bound (an older
    tollgate, an unpriced model) is priced as completion tokens of the holder's model.
    ``Ledger.audit_abandoned`` appends it; ``abandoned_change`` rolls it up."""
    holder = reservation.holder
    provider, model = holder.provider or "unknown", holder.model or "unknown"
    cost = holder.cost_bound or pricing.cost_micro_usd(provider, model, 0, reservation.tokens)
    return AuditEntry(
        tenant=reservation.tenant,
        seq=0,
        at=at,
        request_id=reservation.reservation_id,
        key_id=holder.key_id or "unknown",
        provider=provider,
        model=model,
        status=ABANDONED,
        prompt_tokens=0,
        completion_tokens=reservation.tokens,
        cost_micro_usd=cost,
        request_sha256=digest,
        response_sha256=digest,
        prev_hash="",
        hash="",
    )


def abandoned_change(pricing: Pricing, reservation: Reservation, at: str) -> Rollup:
    """What the sweep's ``abandoned`` entry of ``reservation`` (written at ``at``) adds to the rollups."""
    return change_of(abandoned_entry(pricing, reservation, at))


def recompute(entries: Iterable[AuditEntry]) -> dict[Cell, Rollup]:
    """The rows the entries add up to (registry entries left out, superseded estimates dropped)."""
    return by_cell(
        change_of(e) for e in without_superseded(e for e in entries if e.status != "segment_opened")
    )


def day_range(since: str | None, until: str | None) -> tuple[str | None, str | None]:
    """Whole UTC days covering [since, until): since rounds down to its day, until up to the next midnight."""
    since_day = None if since is None else since[:10]
    if until is None:
        return since_day, None
    end = parse_time(until)
    day = until[:10]
    if (end.hour, end.minute, end.second, end.microsecond) != (0, 0, 0, 0):
        # the next day; past the last date there is (9999-12-31) any later string bounds the range
        day = format_time(end + timedelta(days=1))[:10] if end.date() < date.max else LAST_DAY
    return since_day, day


def _group(row: Rollup, group_by: str | None) -> str:
    if group_by == "model":
        return f"{row.provider}/{row.model}"
    if group_by == "day":
        return row.day
    if group_by == "key":
        return row.key_id
    if group_by == "tenant":
        return row.tenant
    return "all"


def summarize(rows: Iterable[Rollup], group_by: str | None) -> dict[str, Any]:
    """The same shape as ``accounting.summarize_costs``, from the rows."""
    groups: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    for row in rows:
        group = groups[_group(row, group_by)]
        for name, value in row.counts().items():
            group[name] += value
    groups = {name: g for name, g in groups.items() if any(g.values())}
    total = sum(g["cost_micro_usd"] for g in groups.values())
    return {
        "group_by": group_by,
        "total_cost_micro_usd": total,
        "total_cost_usd": float(usd(total)),
        "requests": sum(g["requests"] for g in groups.values()),
        "unpriced_requests": sum(g["unpriced_requests"] for g in groups.values()),
        "refused": sum(g["refused"] for g in groups.values()),
        **{name: sum(g[name] for g in groups.values()) for name in TOTALS},
        "groups": [
            {"group": name, **values, "cost_usd": float(usd(values["cost_micro_usd"]))}
            for name, values in sorted(groups.items())
        ],
    }


async def cost_report(
    store: RollupStore, tenant: str | None, since: str | None, until: str | None, group_by: str | None
) -> dict[str, Any]:
    """``/v1/costs``, ``GET /admin/costs`` and ``tollgate costs``: the rows of whole UTC days."""
    since_day, until_day = day_range(since, until)
    rows = await store.rollup_totals(tenant, since_day, until_day, group_by)  # summed in the store
    return {"since_day": since_day, "until_day": until_day, **summarize(rows, group_by)}


async def verify(
    store: Any, tenant: str | None, since: str | None, until: str | None, *, repair: bool = False
) -> dict[str, Any]:
    """Recompute the rows of whole days from the audit entries and compare: every differing row is named
    with both sides; ``repair`` adds the differences to the rollups."""
    since_day, until_day = day_range(since, until)
    low = None if since_day is None else f"{since_day}T00:00:00.000000Z"
    high = None if until_day is None else f"{until_day}T00:00:00.000000Z"
    expected = recompute(await store.list_costs(tenant, since=low, until=high))
    found = {row.cell: row for row in await store.list_rollups(tenant, since_day, until_day)}
    differences: list[dict[str, Any]] = []
    for cell in sorted(set(expected) | set(found)):
        want = expected.get(cell) or Rollup(*cell)
        have = found.get(cell) or Rollup(*cell)
        if want.counts() == have.counts():
            continue
        differences.append(
            {
                **dict(zip(("tenant", "day", "key_id", "provider", "model"), cell, strict=True)),
                "audit": want.counts(),
                "rollup": have.counts(),
            }
        )
        if repair:
            await store.add_rollup(want.plus(have.negated()))
    return {
        "valid": not differences,
        "since_day": since_day,
        "until_day": until_day,
        "rows": len(set(expected) | set(found)),
        "differences": differences,
        "repaired": repair and bool(differences),
    }
